import { execFileSync } from 'node:child_process';
import { generateKeyPairSync, verify, type KeyObject } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';

/**
 * TEST DOUBLE — an APNs stand-in: Apple's HTTP/2 provider API as documented ("Sending notification requests
 * to APNs", "Handling notification responses from APNs"), over TLS with a self-signed certificate made
 * for the run (herald trusts it through HERALD_APNS_CA_FILE / the endpoint's `ca`). It checks what Apple
 * checks — the provider token (ES256 signature against the test key, `kid`, `iss`, `iat` not older than
 * an hour), the path `/3/device/<token>`, the headers, the 4 KB payload limit — and answers 200, or the
 * status and reason a test queued for a token.
 */

export interface ApnsTestKey {
  /** The `.p8` PEM herald is given. */
  readonly keyPem: string;
  readonly publicKey: KeyObject;
  readonly keyId: string;
  readonly teamId: string;
  readonly topic: string;
}

/** A P-256 key as Apple issues them (PKCS#8 PEM), with ids of its own. */
export function apnsTestKey(name = 'A'): ApnsTestKey {
  const { privateKey, publicKey } = generateKeyPairSync('ec', { namedCurve: 'prime256v1' });
  return {
    keyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    publicKey,
    keyId: `KEY${name}123456`.slice(0, 10),
    teamId: `TEAM${name}12345`.slice(0, 10),
    topic: `com.example.${name.toLowerCase()}`,
  };
}

export interface ApnsRequestSeen {
  readonly token: string;
  readonly headers: Record<string, string>;
  readonly payload: Record<string, unknown>;
  /** The team of the key that signed it. */
  readonly teamId: string;
  /** The provider token's `iat`. */
  readonly issuedAt: number;
  readonly status: number;
  readonly reason?: string;
  /** When it was answered (epoch ms). */
  readonly at: number;
}

export interface ApnsStandIn {
  /** `https://127.0.0.1:<port>` */
  readonly url: string;
  /** The certificate herald must trust (PEM). */
  readonly ca: string;
  /** Its file, for HERALD_APNS_CA_FILE. */
  readonly caFile: string;
  /** Every request, answered, in order. */
  readonly requests: ApnsRequestSeen[];
  /** Requests answered 200. */
  delivered(): ApnsRequestSeen[];
  /**
   * The next answers for a token (consumed in order; then 200). `timestamp` goes in the body (a 410's, ms);
   * status 0 resets the stream with NO_ERROR and no answer.
   */
  answer(token: string, ...answers: StandInAnswer[]): void;
  /** Answers every request with this until cleared (undefined). */
  answerAll(answer: StandInAnswer | undefined): void;
  /** Announces a new SETTINGS_MAX_CONCURRENT_STREAMS on every open session. */
  maxStreams(n: number): void;
  /** Holds every request until released (a restart mid-retry; a timeout). */
  hold(on: boolean): void;
  /** Sends GOAWAY on every open session (Apple closing a connection). */
  goAway(): void;
  /** Requests held now. */
  heldCount(): number;
  /** The most streams open at once so far. */
  readonly peakStreams: number;
  /** Sessions (connections) opened so far. */
  readonly sessions: number;
  close(): Promise<void>;
}

export interface StandInAnswer {
  readonly status: number;
  readonly reason?: string;
  readonly timestamp?: number;
}

const MAX_TOKEN_AGE_SECONDS = 3600;

/** A self-signed certificate for 127.0.0.1 and localhost, made with the openssl CLI. */
function selfSignedCertificate(): { key: string; cert: string; certFile: string; cleanup: () => void } {
  const dir = mkdtempSync(path.join(tmpdir(), 'apns-standin-'));
  const keyFile = path.join(dir, 'key.pem');
  const certFile = path.join(dir, 'cert.pem');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=apns-standin',
      '-addext',
      'subjectAltName=IP:127.0.0.1,DNS:localhost',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
  return {
    key: readFileSync(keyFile, 'utf8'),
    cert: readFileSync(certFile, 'utf8'),
    certFile,
    cleanup: () => rmSync(dir, { recursive: true, force: true }),
  };
}

/** Verified signatures (a provider token is reused for up to an hour: verified once, as Apple caches them). */
const verified = new Map<string, boolean>();

function checkToken(
  authorization: string | undefined,
  keys: readonly ApnsTestKey[],
): { teamId: string; issuedAt: number } | { reason: string } {
  const match = /^bearer ([\w-]+)\.([\w-]+)\.([\w-]+)$/.exec(authorization ?? '');
  if (!match) return { reason: 'MissingProviderToken' };
  const [, header, claims, signature] = match as unknown as [string, string, string, string];
  let h: { alg?: unknown; kid?: unknown };
  let c: { iss?: unknown; iat?: unknown };
  try {
    h = JSON.parse(Buffer.from(header, 'base64url').toString('utf8')) as typeof h;
    c = JSON.parse(Buffer.from(claims, 'base64url').toString('utf8')) as typeof c;
  } catch {
    return { reason: 'InvalidProviderToken' };
  }
  const key = keys.find((k) => k.keyId === h.kid && k.teamId === c.iss);
  if (h.alg !== 'ES256' || !key) return { reason: 'InvalidProviderToken' };
  const cacheKey = `${key.keyId}.${header}.${claims}.${signature}`;
  let valid = verified.get(cacheKey);
  if (valid === undefined) {
    valid = verify(
      'sha256',
      Buffer.from(`${header}.${claims}`),
      { key: key.publicKey, dsaEncoding: 'ieee-p1363' },
      Buffer.from(signature, 'base64url'),
    );
    if (verified.size > 1000) verified.clear();
    verified.set(cacheKey, valid);
  }
  if (!valid) return { reason: 'InvalidProviderToken' };
  const age = Date.now() / 1000 - Number(c.iat);
  if (!Number.isInteger(c.iat) || age > MAX_TOKEN_AGE_SECONDS) return { reason: 'ExpiredProviderToken' };
  if (age < -60) return { reason: 'InvalidProviderToken' };
  return { teamId: key.teamId, issuedAt: Number(c.iat) };
}

/** Starts the stand-in on an ephemeral loopback port; `keys` are the provider keys it accepts (each with its topic). */
export async function startApnsStandIn(keys: readonly ApnsTestKey[]): Promise<ApnsStandIn> {
  const tls = selfSignedCertificate();
  const server = http2.createSecureServer({ key: tls.key, cert: tls.cert, settings: { maxConcurrentStreams: 1000 } });
  const requests: ApnsRequestSeen[] = [];
  const queued = new Map<string, StandInAnswer[]>();
  let all: StandInAnswer | undefined;
  let holding = false;
  const held: Array<() => void> = [];
  const open = new Set<http2.ServerHttp2Session>();
  let sessions = 0;
  let openStreams = 0;
  let peakStreams = 0;
  server.on('session', (session) => {
    sessions++;
    open.add(session);
    session.on('close', () => open.delete(session));
    session.on('error', () => undefined);
  });
  server.on('stream', (stream, headers) => {
    stream.on('error', () => undefined);
    openStreams++;
    peakStreams = Math.max(peakStreams, openStreams);
    stream.on('close', () => openStreams--);
    const chunks: Buffer[] = [];
    stream.on('data', (chunk: Buffer) => chunks.push(chunk));
    stream.on('end', () => {
      const respond = () => {
        const answer = (
          status: number,
          reason?: string,
          seen?: Omit<ApnsRequestSeen, 'status' | 'reason' | 'at'>,
          timestamp?: number,
        ) => {
          if (seen) requests.push({ ...seen, status, ...(reason !== undefined && { reason }), at: Date.now() });
          if (stream.destroyed) return;
          if (status === 0) return stream.close(http2.constants.NGHTTP2_NO_ERROR);
          stream.respond({ ':status': status, 'apns-id': String(headers['apns-id'] ?? '') });
          stream.end(
            reason === undefined
              ? undefined
              : JSON.stringify({ reason, ...(timestamp !== undefined && { timestamp }) }),
          );
        };
        const body = Buffer.concat(chunks);
        const pathMatch = /^\/3\/device\/([^/?]+)$/.exec(String(headers[':path'] ?? ''));
        if (headers[':method'] !== 'POST') return answer(405, 'MethodNotAllowed');
        if (!pathMatch) return answer(404, 'BadPath');
        const token = decodeURIComponent(pathMatch[1]!);
        const auth = checkToken(headers.authorization, keys);
        const plain = Object.fromEntries(
          Object.entries(headers)
            .filter(([name]) => !name.startsWith(':') && name !== 'authorization')
            .map(([name, value]) => [name, String(value)]),
        );
        let payload: Record<string, unknown> = {};
        try {
          payload = JSON.parse(body.toString('utf8')) as Record<string, unknown>;
        } catch {
          payload = {};
        }
        const seen = {
          token,
          headers: plain,
          payload,
          teamId: 'teamId' in auth ? auth.teamId : '',
          issuedAt: 'issuedAt' in auth ? auth.issuedAt : 0,
        };
        if ('reason' in auth) return answer(403, auth.reason, seen);
        const key = keys.find((k) => k.teamId === auth.teamId)!;
        if (headers['apns-topic'] !== key.topic) return answer(400, 'TopicDisallowed', seen);
        const pushType = headers['apns-push-type'];
        if (pushType !== 'alert' && pushType !== 'background') return answer(400, 'InvalidPushType', seen);
        if (!['5', '10'].includes(String(headers['apns-priority']))) return answer(400, 'BadPriority', seen);
        if (!/^\d+$/.test(String(headers['apns-expiration'] ?? ''))) return answer(400, 'BadExpirationDate', seen);
        if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(String(headers['apns-id'] ?? '')))
          return answer(400, 'BadMessageId', seen);
        if (Buffer.byteLength(String(headers['apns-collapse-id'] ?? '')) > 64)
          return answer(400, 'BadCollapseId', seen);
        if (body.length > 4096) return answer(413, 'PayloadTooLarge', seen);
        if (body.length === 0 || typeof payload.aps !== 'object') return answer(400, 'PayloadEmpty', seen);
        if (!/^[0-9a-f]{64,200}$/i.test(token)) return answer(400, 'BadDeviceToken', seen);
        const next = queued.get(token)?.shift() ?? all;
        if (next) return answer(next.status, next.reason, seen, next.timestamp);
        return answer(200, undefined, seen);
      };
      if (holding) held.push(respond);
      else respond();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `https://127.0.0.1:${port}`,
    ca: tls.cert,
    caFile: tls.certFile,
    requests,
    delivered: () => requests.filter((r) => r.status === 200),
    answer(token, ...answers) {
      queued.set(token, [...(queued.get(token) ?? []), ...answers]);
    },
    answerAll(answer) {
      all = answer;
    },
    maxStreams(n) {
      for (const session of open) session.settings({ maxConcurrentStreams: n });
    },
    hold(on) {
      holding = on;
      if (!on) for (const respond of held.splice(0)) respond();
    },
    goAway() {
      for (const session of open) session.goaway();
    },
    heldCount: () => held.length,
    get peakStreams() {
      return peakStreams;
    },
    get sessions() {
      return sessions;
    },
    async close() {
      for (const session of open) session.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
      tls.cleanup();
    },
  };
}
