import { createPrivateKey, sign, type KeyObject } from 'node:crypto';
import http2 from 'node:http2';
import type { PlatformNotification, PlatformPushOutcome, PlatformPushService } from './platformPush';

/**
 * APNs, the platform-push adapter for IOS devices (docs/platform-push.md): Apple's HTTP/2 provider API
 * with token-based authentication. The seed (shared/seeds/003_834cb051d61fc48e.txt) on `nativeToken`:
 * "ios要使用ios token,用于apns发送离线消息" — an iOS device's token is how it gets messages while offline.
 *
 * One long-lived HTTP/2 session per app (Apple asks providers to keep connections open rather than open one
 * per notification), its streams bounded; a GOAWAY or a closed session is dropped and the next request
 * connects again. The provider token (an ES256 JWT) is reused and made anew after 50 minutes (Apple
 * takes one 20 to 60 minutes old and refuses more than one new token per 20 minutes) or when Apple answers
 * 403 ExpiredProviderToken / InvalidProviderToken, then the request is tried once more.
 */

export const APNS_HOSTS = {
  production: 'https://api.push.apple.com',
  sandbox: 'https://api.sandbox.push.apple.com',
} as const;
export type ApnsEnvironment = keyof typeof APNS_HOSTS;

/** An app's APNs credentials (the key is a `.p8` file's PEM). */
export interface ApnsCredentials {
  readonly keyPem: string;
  readonly keyId: string;
  readonly teamId: string;
  /** The app's bundle id: `apns-topic`. */
  readonly topic: string;
  readonly environment: ApnsEnvironment;
}

/** Apple's limit for a notification's payload (VoIP's 5 KB does not apply: herald sends alerts and background). */
export const APNS_PAYLOAD_LIMIT_BYTES = 4096;
/** A provider token is made anew at this age (Apple: 20 to 60 minutes). */
export const PROVIDER_TOKEN_REFRESH_MS = 50 * 60_000;
/** Streams one app's session has open at once, unless Apple allows fewer. */
export const DEFAULT_MAX_STREAMS = 500;
/** An answer body is a small JSON `{"reason"}`: more is not read. */
const ANSWER_LIMIT_BYTES = 4096;
/** A session that has not connected (TCP + TLS + settings) by then is destroyed. */
export const CONNECT_TIMEOUT_MS = 10_000;
/** An idle session is pinged this often, and destroyed when the ping is not answered in PING_TIMEOUT_MS. */
export const PING_INTERVAL_MS = 60_000;
export const PING_TIMEOUT_MS = 10_000;
/** After an attempt timed out without an answer, the session is pinged and destroyed only if no answer comes by then. */
export const PROBE_TIMEOUT_MS = 3_000;
/** TCP keepalive on the session's socket (a NAT that forgot the connection is found by the kernel too). */
const KEEPALIVE_MS = 30_000;

export interface ApnsRequest {
  readonly path: string;
  readonly headers: Record<string, string>;
  readonly body: string;
}

/**
 * The request for one notification: the seed's iOS fields (alert, sound, badge) in `aps`, and the frame's
 * other fields beside it, as the socket's frame names them, so an app reads both the same way. A `CMD`
 * message (a command for the app, nothing to show) is a background notification: `content-available`,
 * priority 5, no alert, sound or badge (Apple drops a background push that has them); its alert text is in
 * `alert` beside `aps`. `apns-collapse-id` is the message id, so a retry Apple did receive replaces the
 * first on the device rather than showing twice. Undefined when the payload is over Apple's 4 KB.
 */
export function apnsRequest(notification: PlatformNotification, topic: string): ApnsRequest | undefined {
  const body = apnsPayload(notification);
  return body === undefined
    ? undefined
    : { path: apnsPath(notification), headers: apnsHeaders(notification, topic), body };
}

/** The notification's payload (JSON), or undefined when it is over Apple's 4 KB: see apnsRequest. */
export function apnsPayload(notification: PlatformNotification): string | undefined {
  const background = notification.pushMsgType === 'CMD';
  const aps: Record<string, unknown> = background
    ? { 'content-available': 1 }
    : {
        alert: notification.alert,
        ...(notification.sound !== null && { sound: notification.sound }),
        ...(notification.badge !== null && { badge: notification.badge }),
      };
  const body = JSON.stringify({
    aps,
    messageId: notification.messageId,
    appId: notification.appId,
    tenantCode: notification.tenantCode,
    ...(background && { alert: notification.alert }),
    extra: notification.extra,
    pushMsgType: notification.pushMsgType,
    needConfirm: notification.needConfirm,
  });
  return Buffer.byteLength(body) > APNS_PAYLOAD_LIMIT_BYTES ? undefined : body;
}

const apnsPath = (notification: PlatformNotification) => `/3/device/${encodeURIComponent(notification.token)}`;

function apnsHeaders(notification: PlatformNotification, topic: string): Record<string, string> {
  const background = notification.pushMsgType === 'CMD';
  return {
    'apns-topic': topic,
    'apns-push-type': background ? 'background' : 'alert',
    'apns-priority': background ? '5' : '10',
    // Seconds since the epoch; Apple stores and retries the notification until then.
    'apns-expiration': String(Math.max(0, Math.floor(notification.expiresAt.getTime() / 1000))),
    'apns-id': notification.messageId,
    'apns-collapse-id': notification.messageId,
    'content-type': 'application/json',
  };
}

/** Whether two notifications have the same payload (apnsPayload reads only these fields). */
const samePayload = (a: PlatformNotification, b: PlatformNotification): boolean =>
  a.messageId === b.messageId &&
  a.appId === b.appId &&
  a.tenantCode === b.tenantCode &&
  a.alert === b.alert &&
  a.sound === b.sound &&
  a.badge === b.badge &&
  a.extra === b.extra &&
  a.pushMsgType === b.pushMsgType &&
  a.needConfirm === b.needConfirm;

/** Messages whose payload a connection keeps (a send to ALL is thousands of requests with one payload). */
const MAX_KEPT_PAYLOADS = 64;

const base64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

/** The provider token: an ES256 JWT, header `{alg, kid}`, claims `{iss: team id, iat}` (seconds). */
export function providerToken(key: KeyObject, keyId: string, teamId: string, issuedAtSeconds: number): string {
  const signed = `${base64url(JSON.stringify({ alg: 'ES256', kid: keyId }))}.${base64url(JSON.stringify({ iss: teamId, iat: issuedAtSeconds }))}`;
  // JWS wants the raw r||s form of the signature, not DER.
  return `${signed}.${base64url(sign('sha256', Buffer.from(signed), { key, dsaEncoding: 'ieee-p1363' }))}`;
}

/** A `.p8` key as a key object; throws (without the key's text) when it is not an EC P-256 private key. */
export function apnsKey(keyPem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: keyPem, format: 'pem' });
  } catch {
    throw new Error('the key is not a PEM private key (.p8)');
  }
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== 'prime256v1')
    throw new Error('the key is not an EC P-256 key, as APNs keys (.p8) are');
  return key;
}

/**
 * How Apple's answer is taken (docs/platform-push.md, "Outcomes"). Only 410 Unregistered calls the token
 * dead: 400 BadDeviceToken is also what every token of a wrong environment gets (a sandbox token sent to
 * production), so it fails this message for good but revokes nothing. A 410's `timestamp` (ms: when Apple
 * last knew the token valid) goes with it, so a 410 older than the device's registration revokes nothing.
 */
export function apnsOutcome(status: number, reason: string | undefined, timestamp?: number): PlatformPushOutcome {
  if (status === 200) return { ok: true };
  const why = `${status} ${reason ?? 'no reason given'}`;
  // 410: the token is no longer active for the topic (the app was removed, notifications turned off).
  if (status === 410)
    return {
      ok: false,
      reason: why,
      retry: false,
      tokenDead: true,
      ...(timestamp !== undefined && { deadSince: timestamp }),
    };
  if (status === 429 || status >= 500) return { ok: false, reason: why, retry: true, tokenDead: false };
  return { ok: false, reason: why, retry: false, tokenDead: false };
}

/** Where herald reaches APNs: Apple's hosts, or (tests, a proxy) one given host with its CA. */
export interface ApnsEndpoint {
  /** Replaces both of Apple's hosts when set (`HERALD_APNS_HOST`). */
  readonly host?: string;
  /** Extra CA certificates (PEM) to trust for it (`HERALD_APNS_CA_FILE`). */
  readonly ca?: string;
}

interface Answer {
  readonly status: number;
  readonly reason: string | undefined;
  /** A 410's `timestamp` (ms since the epoch). */
  readonly timestamp?: number;
}

export interface ApnsConnectionOptions {
  readonly maxStreams?: number;
  readonly now?: () => number;
  readonly connectTimeoutMs?: number;
  readonly pingIntervalMs?: number;
  readonly pingTimeoutMs?: number;
  readonly probeTimeoutMs?: number;
}

/** One app's session to APNs, with its provider token and its bound on streams. */
export class ApnsConnection {
  private session: http2.ClientHttp2Session | undefined;
  private token: { readonly value: string; readonly issuedAt: number } | undefined;
  private readonly key: KeyObject;
  private inFlight = 0;
  /** Requests waiting for a stream; an aborted one takes itself out. */
  private readonly waiting = new Set<() => void>();
  private closed = false;
  /** The session a timed-out attempt is having pinged (one ping at a time, however many attempts timed out). */
  private probing: http2.ClientHttp2Session | undefined;
  private readonly payloads = new Map<
    string,
    { readonly of: PlatformNotification; readonly body: string | undefined }
  >();

  constructor(
    readonly credentials: ApnsCredentials,
    private readonly endpoint: ApnsEndpoint,
    private readonly options: ApnsConnectionOptions = {},
  ) {
    this.key = apnsKey(credentials.keyPem);
  }

  async send(notification: PlatformNotification, signal: AbortSignal): Promise<PlatformPushOutcome> {
    const body = this.payloadOf(notification);
    if (body === undefined)
      return {
        ok: false,
        reason: `PayloadTooLarge: over ${APNS_PAYLOAD_LIMIT_BYTES} bytes`,
        retry: false,
        tokenDead: false,
      };
    const request = { path: apnsPath(notification), headers: apnsHeaders(notification, this.credentials.topic), body };
    await this.slot(signal);
    try {
      const bearer = this.bearer();
      let answer = await this.post(request, bearer, signal);
      if (
        answer.status === 403 &&
        (answer.reason === 'ExpiredProviderToken' || answer.reason === 'InvalidProviderToken')
      )
        answer = await this.post(request, this.renewed(bearer), signal);
      return apnsOutcome(answer.status, answer.reason, answer.timestamp);
    } finally {
      this.release();
    }
  }

  /** The notification's payload, serialized once per message (the same object's `extra`: the same message). */
  private payloadOf(notification: PlatformNotification): string | undefined {
    const kept = this.payloads.get(notification.messageId);
    if (kept && samePayload(kept.of, notification)) return kept.body;
    const body = apnsPayload(notification);
    if (this.payloads.size >= MAX_KEPT_PAYLOADS) this.payloads.delete(this.payloads.keys().next().value!);
    this.payloads.set(notification.messageId, { of: notification, body });
    return body;
  }

  /** Whether a session is open (tests: a hung one was dropped). */
  get connected(): boolean {
    return this.session !== undefined && !this.session.destroyed && !this.session.closed;
  }

  async close(): Promise<void> {
    this.closed = true;
    const session = this.session;
    this.session = undefined;
    if (session && !session.destroyed) await new Promise<void>((resolve) => session.close(resolve));
    for (const wake of this.waiting) wake();
  }

  private now(): number {
    return this.options.now?.() ?? Date.now();
  }

  private bearer(): string {
    const now = this.now();
    if (!this.token || now - this.token.issuedAt >= PROVIDER_TOKEN_REFRESH_MS) this.newToken(now);
    return this.token!.value;
  }

  /**
   * The token after Apple refused `failed`: a new one only if `failed` is still the current one, so the
   * in-flight requests refused together share one renewal (Apple refuses more than one new token per 20 minutes).
   */
  private renewed(failed: string): string {
    if (this.token?.value === failed) this.newToken(this.now());
    return this.token!.value;
  }

  private newToken(now: number): void {
    const { keyId, teamId } = this.credentials;
    this.token = { value: providerToken(this.key, keyId, teamId, Math.floor(now / 1000)), issuedAt: now };
  }

  private maxStreams(): number {
    const configured = this.options.maxStreams ?? DEFAULT_MAX_STREAMS;
    const allowed = this.session?.remoteSettings.maxConcurrentStreams;
    return allowed === undefined ? configured : Math.max(1, Math.min(configured, allowed));
  }

  private async slot(signal: AbortSignal): Promise<void> {
    signal.throwIfAborted();
    while (this.inFlight >= this.maxStreams()) {
      if (this.closed) throw new Error('the APNs connection is closed');
      await new Promise<void>((resolve, reject) => {
        const wake = () => {
          signal.removeEventListener('abort', abort);
          resolve();
        };
        // An aborted waiter leaves the queue, so a release wakes a live one.
        const abort = () => {
          this.waiting.delete(wake);
          reject(signal.reason as Error);
        };
        this.waiting.add(wake);
        signal.addEventListener('abort', abort, { once: true });
      });
    }
    this.inFlight += 1;
  }

  private release(): void {
    this.inFlight -= 1;
    this.wakeWaiting();
  }

  /** Wakes as many waiters as there are free streams (after a release, or Apple allowing more). */
  private wakeWaiting(): void {
    let room = this.maxStreams() - this.inFlight;
    for (const wake of this.waiting) {
      if (room-- <= 0) break;
      this.waiting.delete(wake);
      wake();
    }
  }

  private connect(): http2.ClientHttp2Session {
    if (this.closed) throw new Error('the APNs connection is closed');
    const current = this.session;
    if (current && !current.closed && !current.destroyed) return current;
    const host = this.endpoint.host ?? APNS_HOSTS[this.credentials.environment];
    const session = http2.connect(
      host,
      this.endpoint.ca === undefined ? {} : { ca: this.endpoint.ca },
      // The listener gets the real socket (session.socket refuses keepalive changes).
      (_, socket) => socket.setKeepAlive(true, KEEPALIVE_MS),
    );
    // A connect or TLS handshake that never finishes would hold every request until its timeout.
    const connecting = setTimeout(
      () => session.destroy(new Error('connecting to APNs timed out')),
      this.options.connectTimeoutMs ?? CONNECT_TIMEOUT_MS,
    );
    // A hung session (a dead peer, a NAT that forgot it) answers no ping: destroyed, the next request connects anew.
    const pings = setInterval(
      () => this.ping(session, this.options.pingTimeoutMs ?? PING_TIMEOUT_MS),
      this.options.pingIntervalMs ?? PING_INTERVAL_MS,
    );
    pings.unref();
    session.once('connect', () => clearTimeout(connecting));
    const drop = () => {
      clearTimeout(connecting);
      clearInterval(pings);
      if (this.session === session) this.session = undefined;
    };
    // A GOAWAY (Apple closes idle or old connections) ends this session for new streams: the next request connects anew.
    session.on('goaway', drop);
    session.on('close', drop);
    // Errors reach the streams that were open; the session itself is dropped.
    session.on('error', drop);
    // Apple allowing more streams lets waiting requests go.
    session.on('remoteSettings', () => this.wakeWaiting());
    this.session = session;
    return session;
  }

  /** Pings the session; destroys it when the ping is not answered within `timeoutMs`. Calls `done` either way. */
  private ping(session: http2.ClientHttp2Session, timeoutMs: number, done?: () => void): void {
    if (session.destroyed || session.closed || session.connecting) return done?.();
    const deadline = setTimeout(() => {
      session.destroy(new Error('APNs did not answer a ping'));
      done?.();
    }, timeoutMs);
    const sent = session.ping((error) => {
      clearTimeout(deadline);
      if (error && !session.destroyed) session.destroy(error);
      done?.();
    });
    if (!sent) {
      clearTimeout(deadline);
      done?.();
    }
  }

  /**
   * After an attempt timed out without an answer: the attempt's budget also went on store reads and waiting
   * for a stream, so a slow request says little about the session. It is pinged, and destroyed (its other
   * streams fail and are retried) only when the ping goes unanswered — a hung peer is still replaced, while
   * the in-flight streams of a healthy one (that Apple may have taken) are not failed and sent twice.
   */
  private probe(session: http2.ClientHttp2Session): void {
    if (this.probing === session) return;
    this.probing = session;
    this.ping(session, this.options.probeTimeoutMs ?? PROBE_TIMEOUT_MS, () => {
      if (this.probing === session) this.probing = undefined;
    });
  }

  private post(request: ApnsRequest, bearer: string, signal: AbortSignal): Promise<Answer> {
    return new Promise<Answer>((resolve, reject) => {
      signal.throwIfAborted();
      let stream: http2.ClientHttp2Stream;
      try {
        stream = this.connect().request({
          ':method': 'POST',
          ':path': request.path,
          authorization: `bearer ${bearer}`,
          ...request.headers,
        });
      } catch (error) {
        reject(error as Error);
        return;
      }
      let settled = false;
      const fail = (error: Error) => {
        settled = true;
        reject(error);
      };
      // Our own abort rather than request's `signal` option, whose listener outlives the stream. An attempt
      // that timed out without an answer makes the session suspect: it is probed, not destroyed at once.
      const session = this.session;
      const abort = () => {
        fail(signal.reason as Error);
        stream.close(http2.constants.NGHTTP2_CANCEL);
        if (session && this.session === session) this.probe(session);
      };
      signal.addEventListener('abort', abort, { once: true });
      stream.on('close', () => {
        signal.removeEventListener('abort', abort);
        // Reset without an answer (RST_STREAM, even NO_ERROR): retried, not left to the timeout.
        if (!settled) fail(new Error(`APNs closed the stream without an answer (rstCode ${stream.rstCode})`));
      });
      let status = 0;
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('response', (headers) => {
        status = Number(headers[':status'] ?? 0);
      });
      stream.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= ANSWER_LIMIT_BYTES) chunks.push(chunk);
      });
      stream.on('end', () => {
        if (settled) return;
        if (status === 0) {
          fail(new Error(`APNs ended the stream without an answer (rstCode ${stream.rstCode})`));
          return;
        }
        let reason: string | undefined;
        let timestamp: number | undefined;
        if (chunks.length > 0) {
          try {
            const parsed = JSON.parse(Buffer.concat(chunks).toString('utf8')) as {
              reason?: unknown;
              timestamp?: unknown;
            };
            if (typeof parsed.reason === 'string') reason = parsed.reason.slice(0, 64);
            if (typeof parsed.timestamp === 'number' && Number.isSafeInteger(parsed.timestamp))
              timestamp = parsed.timestamp;
          } catch {
            reason = undefined;
          }
        }
        settled = true;
        resolve({ status, reason, ...(timestamp !== undefined && { timestamp }) });
      });
      stream.on('error', (error) => {
        if (!settled) fail(error);
      });
      stream.end(request.body);
    });
  }
}

/** Which credentials an app has (stored over GraphQL, or from `HERALD_APNS_…`), if any. */
export type ApnsCredentialsOf = (appId: string) => Promise<ApnsCredentials | undefined>;

/**
 * APNs for every app: each app's notifications go over its own connection with its own credentials (so one
 * app's key never authenticates another app's pushes). A connection whose app's credentials changed is
 * closed and made anew.
 */
export class Apns implements PlatformPushService {
  private readonly connections = new Map<string, ApnsConnection>();

  constructor(
    private readonly credentialsOf: ApnsCredentialsOf,
    private readonly endpoint: ApnsEndpoint,
    private readonly options: ApnsConnectionOptions = {},
  ) {}

  async send(notification: PlatformNotification, signal: AbortSignal): Promise<PlatformPushOutcome> {
    const credentials = await this.credentialsOf(notification.appId);
    if (!credentials)
      return { ok: false, reason: 'NoCredentials: the app has no APNs key', retry: false, tokenDead: false };
    let connection = this.connections.get(notification.appId);
    if (connection && !sameCredentials(connection.credentials, credentials)) {
      void connection.close();
      connection = undefined;
    }
    if (!connection) {
      try {
        connection = new ApnsConnection(credentials, this.endpoint, this.options);
      } catch (error) {
        // Checked when set; a key that no longer reads is the app's to fix, not worth retrying.
        return { ok: false, reason: `InvalidKey: ${(error as Error).message}`, retry: false, tokenDead: false };
      }
      this.connections.set(notification.appId, connection);
    }
    return connection.send(notification, signal);
  }

  async close(): Promise<void> {
    const all = [...this.connections.values()];
    this.connections.clear();
    await Promise.all(all.map((connection) => connection.close()));
  }
}

const sameCredentials = (a: ApnsCredentials, b: ApnsCredentials): boolean =>
  a.keyPem === b.keyPem &&
  a.keyId === b.keyId &&
  a.teamId === b.teamId &&
  a.topic === b.topic &&
  a.environment === b.environment;
