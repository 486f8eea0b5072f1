import { createECDH } from 'node:crypto';
import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import webpush from 'web-push';
import { isPublicAddress, NOT_PUBLIC, publicLookup } from '../runtime/publicAddress';
import { retryAfterMs } from './fcm';
import type { PlatformNotification, PlatformPushOutcome, PlatformPushService } from './platformPush';

/**
 * Web Push for WEB devices (docs/platform-push.md, "Web Push"): RFC 8030 (the push service's protocol),
 * RFC 8291 (the message encrypted to the browser's keys, `aes128gcm`) and RFC 8292 (VAPID: the app's key
 * pair signs a JWT per request, the public key is the browser's `applicationServerKey`). The `web-push`
 * library makes each request (encryption, VAPID, headers); herald sends it itself, so the endpoint — a URL
 * a browser gave, which the leader POSTs to — is bounded like every other outbound call: https only,
 * public addresses only (checked on the address connected to), no redirects followed, the attempt's
 * signal, the answer read up to 4 KB.
 */

/** A VAPID JWT's validity (RFC 8292: at most 24 h; web-push's default 12 h) and how long one is reused. */
const VAPID_TOKEN_TTL_S = 12 * 3600;
const VAPID_TOKEN_REUSE_MS = 3600_000;
const MAX_VAPID_TOKENS = 10_000;

/** An app's VAPID key pair (base64url, as browsers and `web-push` take them) and its contact. */
export interface VapidCredentials {
  /** The uncompressed P-256 public key (65 bytes): the browser's `applicationServerKey`. */
  readonly publicKey: string;
  /** The private scalar (32 bytes). */
  readonly privateKey: string;
  /** `mailto:` or `https:`: who the push service contacts about the app's pushes (RFC 8292 `sub`). */
  readonly subject: string;
}

/** Where herald may POST besides public https endpoints (`HERALD_WEBPUSH_ALLOWED_ORIGINS`). */
export interface WebPushEndpointPolicy {
  /**
   * Origins (`scheme://host:port`) taken as they are: http, or a loopback or private address — a push
   * service inside the deployment's network, or the tests' local one. Empty: public https only.
   */
  readonly allowedOrigins: readonly string[];
}

export const WEB_PUSH_LIMITS = {
  /**
   * RFC 8291: one 4,096-byte record, less its header (86 bytes), the AEAD tag (16) and the padding
   * delimiter (1): the largest JSON payload a push service must take.
   */
  payloadBytes: 4096 - 86 - 16 - 1,
  /** What is read of a push service's answer (its reason); the rest is dropped. */
  answerBytes: 4096,
  /** Push services keep a message at most about 4 weeks (FCM's, Mozilla's); a longer TTL is cut to it. */
  ttlSeconds: 28 * 86_400,
} as const;

/** The subscription the request carries (PlatformPushRequested's `nativeToken` for `webpush`, as JSON). */
interface RequestedSubscription {
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
}

/** Why herald does not POST to an endpoint, or undefined when it may. */
export function endpointRefusal(endpoint: string, policy: WebPushEndpointPolicy): string | undefined {
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return 'not a URL';
  }
  if (url.username !== '' || url.password !== '') return 'a user or password in the URL';
  if (policy.allowedOrigins.includes(url.origin)) return undefined;
  if (url.protocol !== 'https:') return 'not https';
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (isIP(host) && !isPublicAddress(host)) return `${host} is not a public address`;
  if (host === 'localhost' || host.endsWith('.localhost')) return `${host} is not a public address`;
  return undefined;
}

/** Checks a public key: an uncompressed P-256 point (on the curve), base64url. */
export function isP256PublicKey(base64url: string): boolean {
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.generateKeys();
    // Throws for bytes that are no point of the curve.
    ecdh.computeSecret(Buffer.from(base64url, 'base64url'));
    return true;
  } catch {
    return false;
  }
}

/** `Urgency` (RFC 8030 §5.3) from the message: shown to the user (MSG) `high`, background (CMD) `normal`. */
export const urgencyOf = (pushMsgType: PlatformNotification['pushMsgType']) =>
  pushMsgType === 'MSG' ? 'high' : 'normal';

/** `Topic` (RFC 8030 §5.4): the message id's 32 hex digits, so a retry the service took replaces the first. */
export const topicOf = (messageId: string) => messageId.replace(/-/g, '').slice(0, 32);

/** `TTL` (RFC 8030 §5.2): the seconds the message has left, at most WEB_PUSH_LIMITS.ttlSeconds. */
export const ttlOf = (expiresAt: Date, nowMs: number) =>
  Math.max(0, Math.min(WEB_PUSH_LIMITS.ttlSeconds, Math.floor((expiresAt.getTime() - nowMs) / 1000)));

/** What the service worker gets: the socket frame's fields (docs/api/onepush.md). */
export function webPushPayload(n: PlatformNotification): string {
  return JSON.stringify({
    messageId: n.messageId,
    appId: n.appId,
    tenantCode: n.tenantCode,
    alert: n.alert,
    extra: n.extra,
    pushMsgType: n.pushMsgType,
    needConfirm: n.needConfirm,
    ...(n.sound !== null && { sound: n.sound }),
    ...(n.badge !== null && { badge: n.badge }),
  });
}

/** How a push service's answer is taken (docs/platform-push.md, "Web Push"). */
export function webPushOutcome(
  status: number,
  reason: string,
  retryAfter: number | undefined,
  sentAt: number,
): PlatformPushOutcome {
  if (status === 201 || status === 202 || status === 200) return { ok: true };
  const described = `${status}${reason ? ` ${reason}` : ''}`;
  // The subscription is gone (RFC 8030 §7.3: 404 unknown, 410 expired or unsubscribed): dropped, never used again.
  if (status === 404 || status === 410)
    return { ok: false, reason: described, retry: false, tokenDead: true, deadSince: sentAt };
  if (status === 429 || status >= 500)
    return {
      ok: false,
      reason: described,
      retry: true,
      tokenDead: false,
      ...(retryAfter !== undefined && { retryAfterMs: retryAfter }),
    };
  // 400 (a request it refuses), 401/403 (VAPID refused: the key pair is not the one the browser subscribed
  // with), 413 (too large), a redirect: the same request would fail again.
  return { ok: false, reason: described, retry: false, tokenDead: false };
}

export class WebPush implements PlatformPushService {
  /**
   * Connections kept open per push service (a push to ALL is thousands of requests to a few hosts: one TLS
   * handshake each, not one per request). A kept socket was opened through the public-address lookup
   * when its origin is not an allowed one, and is reused only for the same host and port.
   */
  private readonly agents = {
    https: new https.Agent({ keepAlive: true, maxSockets: 64 }),
    http: new http.Agent({ keepAlive: true, maxSockets: 64 }),
  };

  /** VAPID JWTs by app and push service origin, with the key pair and subject they were signed with. */
  private readonly vapidTokens = new Map<string, VapidCredentials & { authorization: string; madeAt: number }>();

  constructor(
    private readonly credentialsOf: (appId: string) => Promise<VapidCredentials | undefined>,
    private readonly policy: WebPushEndpointPolicy,
    private readonly options: { readonly clock?: () => number } = {},
  ) {}

  private now(): number {
    return this.options.clock?.() ?? Date.now();
  }

  async send(n: PlatformNotification, signal: AbortSignal): Promise<PlatformPushOutcome> {
    const final = (reason: string): PlatformPushOutcome => ({ ok: false, reason, retry: false, tokenDead: false });
    const subscription = parseSubscription(n.token);
    if (!subscription) return final('InvalidSubscription: not a browser subscription');
    const refusal = endpointRefusal(subscription.endpoint, this.policy);
    // Checked when it was given too; the policy may have changed since.
    if (refusal) return final(`EndpointRefused: ${refusal}`);
    const vapid = await this.credentialsOf(n.appId);
    if (!vapid) return final('NoCredentials: the app has no VAPID key pair');
    const payload = n.payload ?? webPushPayload(n);
    if (Buffer.byteLength(payload) > WEB_PUSH_LIMITS.payloadBytes)
      return final(`PayloadTooLarge: over ${WEB_PUSH_LIMITS.payloadBytes} bytes`);
    const sentAt = this.now();
    const request = webpush.generateRequestDetails(subscription, payload, {
      // Signed here once an hour per push service, not once per request (web-push would sign each); no
      // vapidDetails, and none set globally (webpush.setVapidDetails is never called), so it keeps this one.
      headers: { Authorization: this.vapidAuthorization(n.appId, new URL(subscription.endpoint).origin, vapid) },
      TTL: ttlOf(n.expiresAt, sentAt),
      urgency: urgencyOf(n.pushMsgType),
      topic: topicOf(n.messageId),
      contentEncoding: 'aes128gcm',
    });
    const answer = await post(
      subscription.endpoint,
      request.headers as Record<string, string | number>,
      request.body as Buffer | null,
      signal,
      !this.policy.allowedOrigins.includes(new URL(subscription.endpoint).origin),
      this.agents,
    ).catch((error: unknown) => {
      // The endpoint's name resolves to a non-public address: the same next time, and which address stays
      // out of the event (an app's admin reads it).
      if ((error as NodeJS.ErrnoException | null)?.code === NOT_PUBLIC) return undefined;
      throw error;
    });
    if (!answer) return final('EndpointRefused: not a public address');
    return webPushOutcome(answer.status, answer.reason, retryAfterMs(answer.retryAfter ?? null, this.now()), sentAt);
  }

  /**
   * The VAPID `Authorization` for the app and the push service (`aud` is its origin): an ES256 JWT, valid
   * VAPID_TOKEN_TTL_S (12 h, web-push's own), made anew after VAPID_TOKEN_REUSE_MS or when the app's key
   * pair or subject changed. By the real time, not herald's clock: the push service checks `exp`.
   */
  private vapidAuthorization(appId: string, audience: string, vapid: VapidCredentials): string {
    const key = `${appId}\n${audience}`;
    const now = Date.now();
    const kept = this.vapidTokens.get(key);
    if (
      kept &&
      now - kept.madeAt < VAPID_TOKEN_REUSE_MS &&
      kept.publicKey === vapid.publicKey &&
      kept.privateKey === vapid.privateKey &&
      kept.subject === vapid.subject
    )
      return kept.authorization;
    const { Authorization: authorization } = webpush.getVapidHeaders(
      audience,
      vapid.subject,
      vapid.publicKey,
      vapid.privateKey,
      'aes128gcm',
      Math.floor(now / 1000) + VAPID_TOKEN_TTL_S,
    );
    if (this.vapidTokens.size >= MAX_VAPID_TOKENS) this.vapidTokens.clear();
    this.vapidTokens.set(key, { ...vapid, authorization, madeAt: now });
    return authorization;
  }

  async close(): Promise<void> {
    this.vapidTokens.clear();
    this.agents.https.destroy();
    this.agents.http.destroy();
  }
}

function parseSubscription(token: string): RequestedSubscription | undefined {
  try {
    const parsed = JSON.parse(token) as Partial<RequestedSubscription>;
    const { endpoint, keys } = parsed;
    return typeof endpoint === 'string' && typeof keys?.p256dh === 'string' && typeof keys.auth === 'string'
      ? { endpoint, keys: { p256dh: keys.p256dh, auth: keys.auth } }
      : undefined;
  } catch {
    return undefined;
  }
}

/**
 * One POST with node's own client: no redirects (a 3xx is an answer), stopped at `signal`, connecting to
 * public addresses only when `guarded`, the answer's body read up to WEB_PUSH_LIMITS.answerBytes.
 */
function post(
  endpoint: string,
  headers: Record<string, string | number>,
  body: Buffer | null,
  signal: AbortSignal,
  guarded: boolean,
  agents: { readonly https: https.Agent; readonly http: http.Agent },
): Promise<{ status: number; reason: string; retryAfter: string | undefined }> {
  return new Promise((resolve, reject) => {
    const target = new URL(endpoint);
    const secure = target.protocol === 'https:';
    const client = secure ? https : http;
    const request = client.request(
      target,
      {
        method: 'POST',
        headers,
        signal,
        agent: secure ? agents.https : agents.http,
        ...(guarded && { lookup: publicLookup }),
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        const done = () => {
          const status = response.statusCode ?? 0;
          const retryAfter = response.headers['retry-after'];
          resolve({ status, reason: reasonOf(status, Buffer.concat(chunks).toString('utf8')), retryAfter });
        };
        response.on('data', (chunk: Buffer) => {
          if (size >= WEB_PUSH_LIMITS.answerBytes) return;
          chunks.push(chunk.subarray(0, WEB_PUSH_LIMITS.answerBytes - size));
          size += chunk.length;
          // Enough to say why: the rest is not read.
          if (size >= WEB_PUSH_LIMITS.answerBytes) {
            response.destroy();
            done();
          }
        });
        response.on('end', done);
        response.on('error', reject);
      },
    );
    request.on('error', reject);
    request.end(body ?? undefined);
  });
}

/** The service's reason, short and on one line: its JSON `reason`/`message`/`error`, or its text. */
function reasonOf(status: number, text: string): string {
  let reason = text;
  try {
    const parsed = JSON.parse(text) as { reason?: unknown; message?: unknown; error?: { message?: unknown } | unknown };
    const candidates = [
      parsed.reason,
      parsed.message,
      typeof parsed.error === 'object' && parsed.error !== null
        ? (parsed.error as { message?: unknown }).message
        : parsed.error,
    ];
    reason = (candidates.find((c) => typeof c === 'string') as string | undefined) ?? text;
  } catch {
    // Not JSON: its text.
  }
  const line = reason
    .replace(/[\u0000-\u001f\u007f]+/g, ' ')
    .trim()
    .slice(0, 200);
  return line || (http.STATUS_CODES[status] ?? '');
}
