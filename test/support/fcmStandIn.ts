import { generateKeyPairSync, randomBytes, verify, type KeyObject } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/**
 * TEST DOUBLE — an FCM HTTP v1 stand-in: Google's OAuth2 token endpoint for service accounts (the
 * jwt-bearer grant, RFC 7523) and `POST /v1/projects/<project>/messages:send`, as documented ("Authorize
 * send requests", "Send a message using FCM HTTP v1", the FCM ErrorCode reference). It checks what Google
 * checks — the assertion's RS256 signature against the test account's public key, `iss`, `scope`, `aud`,
 * `iat`/`exp`; the Bearer access token, that the project in the path is the token's account's; the
 * message's shape — and answers 200, or the status and error code a test queued for a token. Plain HTTP on
 * loopback: herald's token URI and FCM base URL are configuration.
 */

export interface FcmTestAccount {
  readonly projectId: string;
  readonly clientEmail: string;
  /** PKCS#8 PEM, as in Google's JSON key file. */
  readonly privateKey: string;
  readonly publicKey: KeyObject;
}

/** An RSA service account as Google issues them, with names of its own. */
export function fcmTestAccount(name = 'a'): FcmTestAccount {
  const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const projectId = `herald-test-${name.toLowerCase()}`;
  return {
    projectId,
    clientEmail: `firebase-adminsdk@${projectId}.iam.gserviceaccount.com`,
    privateKey: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKey,
  };
}

/** The JSON key file's text for an account, its `token_uri` the stand-in's. */
export function serviceAccountJson(account: FcmTestAccount, tokenUri: string, overrides: object = {}): string {
  return JSON.stringify({
    type: 'service_account',
    project_id: account.projectId,
    private_key_id: randomBytes(20).toString('hex'),
    private_key: account.privateKey,
    client_email: account.clientEmail,
    client_id: '100000000000000000001',
    auth_uri: 'https://accounts.google.com/o/oauth2/auth',
    token_uri: tokenUri,
    ...overrides,
  });
}

export const FCM_SCOPE = 'https://www.googleapis.com/auth/firebase.messaging';

export interface FcmRequestSeen {
  readonly token: string;
  readonly projectId: string;
  /** The account whose access token authorised it. */
  readonly clientEmail: string;
  readonly message: Record<string, unknown>;
  readonly status: number;
  readonly errorCode?: string;
  readonly at: number;
}

/** An answer a test queues: FCM's status, its ErrorCode, and a Retry-After (seconds). */
export interface FcmAnswer {
  readonly status: number;
  readonly errorCode?: string;
  readonly retryAfter?: number;
  /** 400 INVALID_ARGUMENT naming `message.token` (an invalid registration token). */
  readonly tokenViolation?: boolean;
}

export interface FcmStandIn {
  /** `http://127.0.0.1:<port>`: the FCM base URL. */
  readonly url: string;
  /** `<url>/token`: the token endpoint (`token_uri`, the assertion's `aud`). */
  readonly tokenUri: string;
  readonly requests: FcmRequestSeen[];
  /** Access tokens issued, by account. */
  readonly tokensIssued: Array<{ clientEmail: string; at: number }>;
  /** Assertions refused, with why. */
  readonly refused: string[];
  /** The next answers for a registration token (consumed in order; then 200). */
  answer(token: string, ...answers: FcmAnswer[]): void;
  /** The `expires_in` of the access tokens it issues from now on (Google: 3599). */
  setExpiresIn(seconds: number): void;
  /** Makes every access token issued so far unknown (401 UNAUTHENTICATED), as an early revocation. */
  forgetAccessTokens(): void;
  /** Holds every token request until turned off (a slow token endpoint). */
  holdTokens(on: boolean): void;
  /** Holds every `messages:send` request (before it is looked at) until turned off or released. */
  holdSends(on: boolean): void;
  /** Lets the `count` longest-held sends go (they are then looked at as if just arrived). */
  releaseSends(count: number): void;
  /** Requests held now. */
  held(): { readonly tokens: number; readonly sends: number };
  close(): Promise<void>;
}

const STATUS_NAMES: Record<number, string> = {
  400: 'INVALID_ARGUMENT',
  401: 'UNAUTHENTICATED',
  403: 'PERMISSION_DENIED',
  404: 'NOT_FOUND',
  429: 'RESOURCE_EXHAUSTED',
  500: 'INTERNAL',
  503: 'UNAVAILABLE',
};

function errorBody(status: number, errorCode: string | undefined, tokenViolation = false): string {
  const details: object[] = [];
  if (errorCode) details.push({ '@type': 'type.googleapis.com/google.firebase.fcm.v1.FcmError', errorCode });
  if (tokenViolation)
    details.push({
      '@type': 'type.googleapis.com/google.rpc.BadRequest',
      fieldViolations: [{ field: 'message.token', description: 'Invalid registration token' }],
    });
  return JSON.stringify({
    error: {
      code: status,
      message: `stand-in ${errorCode ?? status}`,
      status: STATUS_NAMES[status] ?? 'UNKNOWN',
      details,
    },
  });
}

const readBody = (request: http.IncomingMessage): Promise<string> =>
  new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    request.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size <= 65_536) chunks.push(chunk);
    });
    request.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    request.on('error', reject);
  });

/**
 * Starts the stand-in on an ephemeral loopback port; `accounts` are the service accounts it knows. The
 * assertion's `aud` must be its own token URI, or `options.audience` (Google's, when herald reaches it
 * through HERALD_FCM_TOKEN_URI as through a proxy).
 */
export async function startFcmStandIn(
  accounts: readonly FcmTestAccount[],
  options: { readonly audience?: string } = {},
): Promise<FcmStandIn> {
  const requests: FcmRequestSeen[] = [];
  const tokensIssued: Array<{ clientEmail: string; at: number }> = [];
  const refused: string[] = [];
  const accessTokens = new Map<string, { account: FcmTestAccount; expiresAt: number }>();
  const queued = new Map<string, FcmAnswer[]>();
  let tokenUri = '';
  let expiresIn = 3599;
  const holding = { tokens: false, sends: false };
  const heldTokens: Array<() => void> = [];
  const heldSends: Array<() => void> = [];

  const assertionProblem = (assertion: string): string | FcmTestAccount => {
    const parts = assertion.split('.');
    if (parts.length !== 3) return 'not a JWT';
    const [header, claims, signature] = parts as [string, string, string];
    let h: { alg?: unknown };
    let c: { iss?: unknown; scope?: unknown; aud?: unknown; iat?: unknown; exp?: unknown };
    try {
      h = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as typeof h;
      c = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as typeof c;
    } catch {
      return 'not JSON';
    }
    if (h.alg !== 'RS256') return 'alg';
    const account = accounts.find((a) => a.clientEmail === c.iss);
    if (!account) return 'iss';
    if (!verify('sha256', Buffer.from(`${header}.${claims}`), account.publicKey, Buffer.from(signature, 'base64url')))
      return 'signature';
    if (c.scope !== FCM_SCOPE) return 'scope';
    if (c.aud !== (options.audience ?? tokenUri)) return 'aud';
    const now = Date.now() / 1000;
    if (typeof c.iat !== 'number' || typeof c.exp !== 'number') return 'iat/exp';
    if (c.iat > now + 60 || c.exp < now - 60 || c.exp - c.iat > 3600 || c.exp <= c.iat) return 'iat/exp';
    return account;
  };

  const server = http.createServer((request, response) => {
    void (async () => {
      const body = await readBody(request);
      const reply = (status: number, json: string, headers: Record<string, string> = {}) => {
        response.writeHead(status, { 'content-type': 'application/json; charset=UTF-8', ...headers });
        response.end(json);
      };
      const url = request.url ?? '';
      if (url === '/token' ? holding.tokens : holding.sends)
        await new Promise<void>((resolve) => (url === '/token' ? heldTokens : heldSends).push(resolve));
      if (request.method === 'POST' && url === '/token') {
        const form = new URLSearchParams(body);
        if (!String(request.headers['content-type']).startsWith('application/x-www-form-urlencoded'))
          return reply(400, JSON.stringify({ error: 'invalid_request' }));
        if (form.get('grant_type') !== 'urn:ietf:params:oauth:grant-type:jwt-bearer')
          return reply(400, JSON.stringify({ error: 'unsupported_grant_type' }));
        const checked = assertionProblem(form.get('assertion') ?? '');
        if (typeof checked === 'string') {
          refused.push(checked);
          return reply(400, JSON.stringify({ error: 'invalid_grant', error_description: checked }));
        }
        const accessToken = `ya29.${randomBytes(24).toString('base64url')}`;
        accessTokens.set(accessToken, { account: checked, expiresAt: Date.now() + expiresIn * 1000 });
        tokensIssued.push({ clientEmail: checked.clientEmail, at: Date.now() });
        return reply(200, JSON.stringify({ access_token: accessToken, expires_in: expiresIn, token_type: 'Bearer' }));
      }
      const path = /^\/v1\/projects\/([^/]+)\/messages:send$/.exec(url);
      if (request.method !== 'POST' || !path) return reply(404, errorBody(404, undefined));
      const bearer = /^Bearer (\S+)$/.exec(String(request.headers.authorization ?? ''))?.[1];
      const access = bearer === undefined ? undefined : accessTokens.get(bearer);
      if (!access || access.expiresAt < Date.now()) return reply(401, errorBody(401, undefined));
      const projectId = decodeURIComponent(path[1]!);
      if (projectId !== access.account.projectId) return reply(403, errorBody(403, 'SENDER_ID_MISMATCH'));
      let message: Record<string, unknown> = {};
      try {
        message = ((JSON.parse(body) as { message?: unknown }).message ?? {}) as Record<string, unknown>;
      } catch {
        message = {};
      }
      const token = typeof message.token === 'string' ? message.token : '';
      const record = (status: number, errorCode?: string) =>
        requests.push({
          token,
          projectId,
          clientEmail: access.account.clientEmail,
          message,
          status,
          ...(errorCode !== undefined && { errorCode }),
          at: Date.now(),
        });
      const android = (message.android ?? {}) as Record<string, unknown>;
      const data = (message.data ?? {}) as Record<string, unknown>;
      const shapeOk =
        token.length > 0 &&
        typeof message.data === 'object' &&
        Object.values(data).every((v) => typeof v === 'string') &&
        typeof android.ttl === 'string' &&
        /^\d+(\.\d{1,9})?s$/.test(android.ttl) &&
        (android.priority === 'HIGH' || android.priority === 'NORMAL') &&
        (android.collapse_key === undefined || typeof android.collapse_key === 'string') &&
        Buffer.byteLength(JSON.stringify({ data: message.data, notification: message.notification })) <= 4096;
      if (!shapeOk) {
        record(400, 'INVALID_ARGUMENT');
        return reply(400, errorBody(400, 'INVALID_ARGUMENT'));
      }
      const next = queued.get(token)?.shift();
      if (next && next.status !== 200) {
        record(next.status, next.errorCode);
        return reply(
          next.status,
          errorBody(next.status, next.errorCode, next.tokenViolation),
          next.retryAfter === undefined ? {} : { 'retry-after': String(next.retryAfter) },
        );
      }
      record(200);
      return reply(200, JSON.stringify({ name: `projects/${projectId}/messages/${randomBytes(8).toString('hex')}` }));
    })().catch(() => {
      if (!response.headersSent) response.writeHead(500);
      response.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const url = `http://127.0.0.1:${port}`;
  tokenUri = `${url}/token`;
  return {
    url,
    tokenUri,
    requests,
    tokensIssued,
    refused,
    answer(token, ...answers) {
      queued.set(token, [...(queued.get(token) ?? []), ...answers]);
    },
    setExpiresIn(seconds) {
      expiresIn = seconds;
    },
    forgetAccessTokens() {
      accessTokens.clear();
    },
    holdTokens(on) {
      holding.tokens = on;
      if (!on) for (const release of heldTokens.splice(0)) release();
    },
    holdSends(on) {
      holding.sends = on;
      if (!on) for (const release of heldSends.splice(0)) release();
    },
    releaseSends(count) {
      for (const release of heldSends.splice(0, count)) release();
    },
    held: () => ({ tokens: heldTokens.length, sends: heldSends.length }),
    async close() {
      for (const release of [...heldTokens.splice(0), ...heldSends.splice(0)]) release();
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
