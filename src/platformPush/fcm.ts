import { createHash, createPrivateKey, sign, type KeyObject } from 'node:crypto';
import { untilAborted } from '../runtime/dueWork';
import type { PlatformNotification, PlatformPushOutcome, PlatformPushService } from './platformPush';

/**
 * FCM HTTP v1, the platform-push adapter for ANDROID devices (docs/platform-push.md, "FCM"): an OAuth2
 * access token from the app's service account (an RS256 JWT assertion to the account's `token_uri`, the
 * jwt-bearer grant), kept until shortly before it expires and made anew on a 401/403; then
 * `POST <base>/v1/projects/<project_id>/messages:send` with one `message` per device. Node's fetch: one
 * POST per notification and a form POST for the token need no client library, and the stand-in's URLs
 * are configuration.
 */

export const FCM_BASE_URL = 'https://fcm.googleapis.com';
export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';
export const JWT_BEARER_GRANT = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
/** FCM's limit for a message's payload (data and notification). */
export const FCM_PAYLOAD_LIMIT_BYTES = 4096;
/** An access token is made anew this long before Google says it expires. */
export const ACCESS_TOKEN_MARGIN_MS = 5 * 60_000;
/** FCM keeps a message at most 4 weeks (`android.ttl`'s maximum). */
export const FCM_MAX_TTL_SECONDS = 28 * 86_400;
/** Google answers `expires_in` 3599; an assertion asks for an hour (its maximum). */
const ASSERTION_LIFETIME_S = 3600;
/** Answers are small JSON: more is not read. */
const ANSWER_LIMIT_BYTES = 16_384;
/** A Retry-After over this is taken as this (the outbox's schedule caps the rest). */
const MAX_RETRY_AFTER_MS = 3600_000;
/**
 * The budget of a token request, its own: concurrent sends share it, so it cannot stop at the signal of
 * whichever send asked first (each send stops waiting at its own).
 */
export const TOKEN_REQUEST_TIMEOUT_MS = 10_000;

/** An app's FCM service account: the parts herald uses of Google's JSON key file. */
export interface FcmCredentials {
  readonly projectId: string;
  readonly clientEmail: string;
  /** PEM (PKCS#8) RSA private key. */
  readonly privateKey: string;
  readonly tokenUri: string;
}

/** Where herald reaches FCM: Google, or (tests, a proxy) the given URLs. */
export interface FcmEndpoint {
  /** Replaces https://fcm.googleapis.com (`HERALD_FCM_BASE_URL`). */
  readonly baseUrl?: string;
  /** Where every account's token request goes instead of its `token_uri` (`HERALD_FCM_TOKEN_URI`, a proxy); the assertion's `aud` stays the account's. */
  readonly tokenUri?: string;
}

/** An RSA private key as a key object; throws (without the key's text) when it is anything else. */
export function fcmKey(privateKeyPem: string): KeyObject {
  let key: KeyObject;
  try {
    key = createPrivateKey({ key: privateKeyPem, format: 'pem' });
  } catch {
    throw new Error('not a PEM private key');
  }
  if (key.asymmetricKeyType !== 'rsa') throw new Error('not an RSA key, as service-account keys are');
  return key;
}

const base64url = (data: string | Buffer) => Buffer.from(data).toString('base64url');

/** The OAuth2 assertion (RFC 7523): RS256, `{iss: client email, scope, aud: token URI, iat, exp}`. */
export function accessTokenAssertion(key: KeyObject, clientEmail: string, aud: string, nowSeconds: number): string {
  const header = base64url(JSON.stringify({ alg: 'RS256', typ: 'JWT' }));
  const claims = base64url(
    JSON.stringify({
      iss: clientEmail,
      scope: FCM_SCOPE,
      aud,
      iat: nowSeconds,
      exp: nowSeconds + ASSERTION_LIFETIME_S,
    }),
  );
  const signed = `${header}.${claims}`;
  return `${signed}.${base64url(sign('sha256', Buffer.from(signed), key))}`;
}

/** FCM's data map takes strings only. */
const text = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value ?? null));

/**
 * The `messages:send` body for one notification: the frame's fields in `data` (strings, as FCM wants),
 * named as the socket's frame names them; a `MSG` also shows `alert` as the notification's body (the
 * seed's `sound`/`badge` are iOS only), a `CMD` is data only and NORMAL priority. `android.ttl` is the
 * time left until the message expires, `collapse_key` the message id (a retry FCM took replaces the
 * first). Undefined when the payload is over FCM's 4 KB.
 */
export function fcmMessage(notification: PlatformNotification, nowMs: number): { message: object } | undefined {
  const background = notification.pushMsgType === 'CMD';
  const data = {
    messageId: notification.messageId,
    appId: notification.appId,
    tenantCode: notification.tenantCode,
    alert: notification.alert,
    extra: text(notification.extra),
    pushMsgType: notification.pushMsgType,
    needConfirm: String(notification.needConfirm),
  };
  const notificationPart = background ? undefined : { body: notification.alert };
  if (Buffer.byteLength(JSON.stringify({ data, notification: notificationPart })) > FCM_PAYLOAD_LIMIT_BYTES)
    return undefined;
  const ttlSeconds = Math.min(
    FCM_MAX_TTL_SECONDS,
    Math.max(0, Math.floor((notification.expiresAt.getTime() - nowMs) / 1000)),
  );
  return {
    message: {
      token: notification.token,
      data,
      ...(notificationPart && { notification: notificationPart }),
      android: {
        ttl: `${ttlSeconds}s`,
        collapse_key: notification.messageId,
        priority: background ? 'NORMAL' : 'HIGH',
        // The notification's tag (APNs' collapse id): a retry of an attempt FCM took but did not answer
        // replaces the shown notification instead of showing it twice (collapse_key merges only undelivered).
        ...(notificationPart && { notification: { tag: notification.messageId } }),
      },
    },
  };
}

/** FCM's error body: `{error: {code, status, message, details: [{@type, errorCode} | {@type, fieldViolations}]}}`. */
interface FcmError {
  readonly status: string | undefined;
  readonly errorCode: string | undefined;
  readonly tokenViolation: boolean;
}

export function parseFcmError(body: string): FcmError {
  try {
    const parsed = JSON.parse(body) as { error?: { status?: unknown; details?: unknown } };
    const details = Array.isArray(parsed.error?.details) ? (parsed.error.details as unknown[]).slice(0, 10) : [];
    let errorCode: string | undefined;
    let tokenViolation = false;
    for (const detail of details) {
      if (typeof detail !== 'object' || detail === null) continue;
      const d = detail as { errorCode?: unknown; fieldViolations?: unknown };
      if (typeof d.errorCode === 'string') errorCode = d.errorCode.slice(0, 64);
      if (Array.isArray(d.fieldViolations))
        tokenViolation ||= (d.fieldViolations as unknown[])
          .slice(0, 10)
          .some((v) => typeof v === 'object' && v !== null && (v as { field?: unknown }).field === 'message.token');
    }
    const status = typeof parsed.error?.status === 'string' ? parsed.error.status.slice(0, 64) : undefined;
    return { status, errorCode, tokenViolation };
  } catch {
    return { status: undefined, errorCode: undefined, tokenViolation: false };
  }
}

/** Retry-After in seconds or an HTTP date, as milliseconds from now; undefined when absent or unreadable. */
export function retryAfterMs(header: string | null, nowMs: number): number | undefined {
  if (header === null) return undefined;
  const seconds = /^\s*\d+\s*$/.test(header) ? Number(header) * 1000 : Date.parse(header) - nowMs;
  return Number.isFinite(seconds) ? Math.min(MAX_RETRY_AFTER_MS, Math.max(0, seconds)) : undefined;
}

/** How FCM's answer is taken (docs/platform-push.md, "Outcomes"; FCM's ErrorCode reference). */
export function fcmOutcome(status: number, error: FcmError, retryAfter?: number): PlatformPushOutcome {
  if (status === 200) return { ok: true };
  const code = error.errorCode ?? error.status;
  const why = `${status} ${code ?? 'no reason given'}`;
  // UNREGISTERED: the app was uninstalled or the token expired. INVALID_ARGUMENT on message.token: not a token.
  const dead =
    (status === 404 && code === 'UNREGISTERED') ||
    (status === 400 && (error.errorCode ?? error.status) === 'INVALID_ARGUMENT' && error.tokenViolation);
  if (dead) return { ok: false, reason: why, retry: false, tokenDead: true };
  if (status === 429 || status >= 500)
    return {
      ok: false,
      reason: why,
      retry: true,
      tokenDead: false,
      ...(retryAfter !== undefined && { retryAfterMs: retryAfter }),
    };
  return { ok: false, reason: why, retry: false, tokenDead: false };
}

/** Which service account an app has (stored over GraphQL, or from `HERALD_FCM_…`), if any. */
export type FcmCredentialsOf = (appId: string) => Promise<FcmCredentials | undefined>;

/**
 * Where access tokens are asked for: Google's OAuth2 token endpoint (every service account's `token_uri`),
 * unless the operator names a proxy (`HERALD_FCM_TOKEN_URI`).
 */
export const GOOGLE_TOKEN_URI = 'https://oauth2.googleapis.com/token';

const fingerprint = (c: FcmCredentials, tokenUri: string) =>
  createHash('sha256').update(`${c.projectId}\n${c.clientEmail}\n${tokenUri}\n${c.privateKey}`).digest('hex');

interface AccessToken {
  readonly value: string;
  readonly expiresAt: number;
}
type TokenResult = { readonly ok: true; readonly token: string } | Extract<PlatformPushOutcome, { ok: false }>;

/**
 * FCM for every app: each app's messages go with its own access token, made from its own service account
 * (so one app's account never authenticates another app's pushes). A token is cached per app and account
 * (a changed account makes a new one).
 */
export class Fcm implements PlatformPushService {
  private readonly tokens = new Map<string, { fingerprint: string; token: AccessToken }>();
  private readonly pending = new Map<string, Promise<TokenResult>>();
  private readonly keys = new Map<string, KeyObject>();

  constructor(
    private readonly credentialsOf: FcmCredentialsOf,
    private readonly endpoint: FcmEndpoint = {},
    /** herald's clock, for the time left until a message expires (`android.ttl`); tokens go by the real time. */
    private readonly options: { readonly clock?: () => number } = {},
  ) {}

  async send(notification: PlatformNotification, signal: AbortSignal): Promise<PlatformPushOutcome> {
    const credentials = await this.credentialsOf(notification.appId);
    if (!credentials)
      return { ok: false, reason: 'NoCredentials: the app has no FCM service account', retry: false, tokenDead: false };
    const body = fcmMessage(notification, this.options.clock?.() ?? Date.now());
    if (!body)
      return {
        ok: false,
        reason: `PayloadTooLarge: over ${FCM_PAYLOAD_LIMIT_BYTES} bytes`,
        retry: false,
        tokenDead: false,
      };
    const url = `${(this.endpoint.baseUrl ?? FCM_BASE_URL).replace(/\/$/, '')}/v1/projects/${encodeURIComponent(credentials.projectId)}/messages:send`;
    let failed: string | undefined;
    for (;;) {
      const token = await this.accessToken(notification.appId, credentials, failed, signal);
      if (!token.ok) return token;
      const response = await fetch(url, {
        method: 'POST',
        redirect: 'error',
        headers: { authorization: `Bearer ${token.token}`, 'content-type': 'application/json; charset=UTF-8' },
        body: JSON.stringify(body),
        signal,
      });
      const answer = await limitedText(response);
      // 401/403: the token may have expired or been revoked early: a new one, tried once.
      if ((response.status === 401 || response.status === 403) && failed === undefined) {
        failed = token.token;
        continue;
      }
      return fcmOutcome(
        response.status,
        parseFcmError(answer),
        retryAfterMs(response.headers.get('retry-after'), this.now()),
      );
    }
  }

  async close(): Promise<void> {
    this.tokens.clear();
    this.keys.clear();
  }

  private now(): number {
    return Date.now();
  }

  /**
   * The app's access token: cached, or one request to the token endpoint shared by concurrent sends. After
   * FCM refused `failed`, a new one only if `failed` is still the cached one: the sends refused together
   * share one renewal (a send refused after another renewed takes the new token).
   */
  private accessToken(
    appId: string,
    credentials: FcmCredentials,
    failed: string | undefined,
    signal: AbortSignal,
  ): Promise<TokenResult> {
    // Never the account's own token_uri: an app's admin sets the account, and herald would POST where it
    // says, from inside the deployment's network (SSRF). Google's endpoint, or the operator's proxy.
    const tokenUri = this.endpoint.tokenUri ?? GOOGLE_TOKEN_URI;
    const print = fingerprint(credentials, tokenUri);
    const cached = this.tokens.get(appId);
    if (cached?.fingerprint === print && failed !== undefined && cached.token.value === failed)
      this.tokens.delete(appId);
    else if (cached?.fingerprint === print && cached.token.expiresAt - ACCESS_TOKEN_MARGIN_MS > this.now())
      return Promise.resolve({ ok: true, token: cached.token.value });
    const key = `${appId}/${print}`;
    const inFlight = this.pending.get(key);
    if (inFlight) return untilAborted(signal, inFlight);
    const made = this.requestToken(credentials, tokenUri, AbortSignal.timeout(TOKEN_REQUEST_TIMEOUT_MS))
      .then((result): TokenResult => {
        if (!result.ok) return result;
        this.tokens.set(appId, { fingerprint: print, token: result.token });
        return { ok: true, token: result.token.value };
      })
      .finally(() => this.pending.delete(key));
    this.pending.set(key, made);
    return untilAborted(signal, made);
  }

  private async requestToken(
    credentials: FcmCredentials,
    tokenUri: string,
    signal: AbortSignal,
  ): Promise<{ ok: true; token: AccessToken } | Extract<PlatformPushOutcome, { ok: false }>> {
    let key = this.keys.get(credentials.privateKey);
    if (!key) {
      try {
        key = fcmKey(credentials.privateKey);
      } catch (error) {
        // Checked when set; a key that no longer reads is the app's to fix.
        return { ok: false, reason: `InvalidKey: ${(error as Error).message}`, retry: false, tokenDead: false };
      }
      if (this.keys.size >= 1000) this.keys.clear();
      this.keys.set(credentials.privateKey, key);
    }
    const now = this.now();
    // Google checks `aud` against its own token URI: the account's, wherever the request goes.
    const assertion = accessTokenAssertion(key, credentials.clientEmail, credentials.tokenUri, Math.floor(now / 1000));
    const response = await fetch(tokenUri, {
      method: 'POST',
      redirect: 'error',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({ grant_type: JWT_BEARER_GRANT, assertion }).toString(),
      signal,
    });
    const answer = await limitedText(response);
    let parsed: { access_token?: unknown; expires_in?: unknown; error?: unknown } = {};
    try {
      parsed = JSON.parse(answer) as typeof parsed;
    } catch {
      parsed = {};
    }
    if (response.status !== 200 || typeof parsed.access_token !== 'string' || parsed.access_token.length === 0) {
      const error = typeof parsed.error === 'string' ? parsed.error.slice(0, 64) : 'no access token';
      const retry = response.status === 429 || response.status >= 500;
      return { ok: false, reason: `OAuth ${response.status} ${error}`, retry, tokenDead: false };
    }
    const expiresIn = typeof parsed.expires_in === 'number' && parsed.expires_in > 0 ? parsed.expires_in : 3600;
    return { ok: true, token: { value: parsed.access_token, expiresAt: now + expiresIn * 1000 } };
  }
}

/** A response's body, at most ANSWER_LIMIT_BYTES of it (the rest is not read). */
async function limitedText(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      size += value.length;
      if (size > ANSWER_LIMIT_BYTES) break;
      chunks.push(value);
    }
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return Buffer.concat(chunks).toString('utf8');
}
