import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import path from 'node:path';
import { isLeft } from 'fp-ts/lib/Either';
import * as t from 'io-ts';
import { AppId } from '../domain/app/app';
import {
  DEFAULT_RETENTION,
  parseKeep,
  RETENTION_CATEGORIES,
  type Keep,
  type RetentionCategory,
  type RetentionPolicy,
} from '../domain/retention';
import type { ApnsCredentials, ApnsEndpoint } from './platformPush/apns';
import { checkApnsCredentials, checkFcmCredentials, checkVapidCredentials } from './platformPush/credentials';
import type { FcmCredentials, FcmEndpoint } from './platformPush/fcm';
import type { VapidCredentials, WebPushEndpointPolicy } from './platformPush/webPush';

/**
 * herald's configuration, decoded from the environment at start-up. A bad value stops start-up with a
 * message naming the variable and the form it expects. See docs/operations.md for each variable.
 */

/** A codec from an environment string; its `name` is the expected form, shown in error messages. */
function fromEnvString<A>(expected: string, parse: (raw: string) => A | undefined): t.Type<A, string, unknown> {
  return new t.Type<A, string, unknown>(
    expected,
    (_u): _u is A => false,
    (u, context) => {
      if (typeof u !== 'string') return t.failure(u, context);
      const parsed = parse(u.trim());
      return parsed === undefined ? t.failure(u, context) : t.success(parsed);
    },
    String,
  );
}

const Port = fromEnvString('an integer from 1 to 65535', (raw) => {
  const n = Number(raw);
  return /^\d+$/.test(raw) && n >= 1 && n <= 65535 ? n : undefined;
});

const urlWithScheme = (schemes: readonly string[]) =>
  fromEnvString(`a URL starting with ${schemes.map((s) => `${s}://`).join(' or ')}`, (raw) => {
    try {
      return schemes.includes(new URL(raw).protocol.replace(/:$/, '')) ? raw : undefined;
    } catch {
      return undefined;
    }
  });

export interface AppCredentials {
  readonly appId: string;
  readonly secret: string;
}

const AppList = fromEnvString<readonly AppCredentials[]>(
  'a comma-separated list of appId:secret (appId: 1-64 of A-Z a-z 0-9 _ . -)',
  (raw) => {
    if (raw === '') return [];
    const apps = raw.split(',').map((entry) => {
      const colon = entry.indexOf(':');
      return colon < 0
        ? { appId: '', secret: '' }
        : { appId: entry.slice(0, colon).trim(), secret: entry.slice(colon + 1).trim() };
    });
    const valid = apps.every((a) => AppId.is(a.appId) && a.secret.length > 0 && a.secret.length <= 256);
    const unique = new Set(apps.map((a) => a.appId)).size === apps.length;
    return valid && unique ? apps : undefined;
  },
);

const LogLevel = t.keyof(
  { fatal: null, error: null, warn: null, info: null, debug: null, trace: null, silent: null },
  'one of fatal, error, warn, info, debug, trace, silent',
);

const NonEmptyString = fromEnvString('a non-empty string', (raw) => (raw.length > 0 ? raw : undefined));

const Secret = fromEnvString('a secret of at least 32 characters', (raw) => (raw.length >= 32 ? raw : undefined));

const PositiveInt = (max: number) =>
  fromEnvString(`an integer from 1 to ${max}`, (raw) => {
    const n = Number(raw);
    return /^\d+$/.test(raw) && n >= 1 && n <= max ? n : undefined;
  });

const NonNegativeInt = (max: number) =>
  fromEnvString(`an integer from 0 to ${max}`, (raw) => {
    const n = Number(raw);
    return /^\d+$/.test(raw) && n <= max ? n : undefined;
  });

/** `a.b.c.d/n` or `ipv6/n` entries, comma-separated; a bare address is a /32 (/128). */
export interface Cidr {
  readonly address: string;
  readonly prefix: number;
  readonly family: 'ipv4' | 'ipv6';
}
const CidrList = fromEnvString<readonly Cidr[]>(
  'a comma-separated list of CIDRs (e.g. 127.0.0.0/8,::1/128,10.0.0.0/8)',
  (raw) => {
    const entries = raw
      .split(',')
      .map((entry) => entry.trim())
      .filter((entry) => entry.length > 0);
    const cidrs = entries.map((entry): Cidr | undefined => {
      const [address = '', prefixText] = entry.split('/');
      const version = isIP(address);
      if (version === 0) return undefined;
      const max = version === 4 ? 32 : 128;
      const prefix = prefixText === undefined ? max : /^\d{1,3}$/.test(prefixText) ? Number(prefixText) : NaN;
      return prefix >= 0 && prefix <= max ? { address, prefix, family: version === 4 ? 'ipv4' : 'ipv6' } : undefined;
    });
    return cidrs.every((c) => c !== undefined) ? (cidrs as Cidr[]) : undefined;
  },
);

/**
 * The browser origins allowed to call herald's REST shims and /graphql (src/cors.ts): `*` alone, or
 * origins exactly as a browser sends them in `Origin` (scheme://host[:port], lower case, no default
 * port, no path), so a configured origin either matches byte for byte or is refused at start-up.
 */
export type CorsOrigins = '*' | readonly string[];
const CORS_FORM =
  '* or a comma-separated list of origins as browsers send them: http(s)://host[:port], lower case, no path or trailing slash, no default port, an IDN host in punycode (e.g. https://app.example.com,http://localhost:3000)';
const CorsOriginList = new t.Type<CorsOrigins, string, unknown>(
  CORS_FORM,
  (_u): _u is CorsOrigins => false,
  (u, context) => {
    if (typeof u !== 'string') return t.failure(u, context);
    const entries = u.split(',').map((entry) => entry.trim());
    if (entries.length === 1 && entries[0] === '*') return t.success('*');
    // Origins are not secrets: the message names the entry that is not one.
    const wrong = entries.find((entry) => entry !== serializedOrigin(entry));
    if (wrong !== undefined)
      return t.failure(u, context, `${JSON.stringify(wrong)} is not an origin; expected ${CORS_FORM}`);
    return t.success([...new Set(entries)]);
  },
  (a) => (a === '*' ? a : a.join(',')),
);

/** The origin a browser would send for `entry`'s page (WHATWG URL), or undefined when it has none (not http(s)). */
function serializedOrigin(entry: string): string | undefined {
  try {
    const url = new URL(entry);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url.origin : undefined;
  } catch {
    return undefined;
  }
}

const optional = <C extends t.Mixed>(codec: C) => t.union([codec, t.undefined], codec.name);

const KeepDuration = fromEnvString<Keep>(
  'a duration: <n>s, <n>m, <n>h or <n>d (at most 36500d), 0, or forever',
  parseKeep,
);

/** The variable that sets each category's retention (HERALD_RETENTION_RTIO_REPORTS for rtioReports). */
export const retentionVariable = (category: RetentionCategory): string =>
  `HERALD_RETENTION_${category.replace(/[A-Z]/g, (c) => `_${c}`).toUpperCase()}`;

const retentionVariables = Object.fromEntries(
  RETENTION_CATEGORIES.map((category) => [retentionVariable(category), optional(KeepDuration)]),
);

const Environment = t.type({
  PORT: optional(Port),
  HOST: optional(NonEmptyString),
  DATABASE_URL: optional(urlWithScheme(['postgres', 'postgresql'])),
  EVENTSTORE_URL: optional(urlWithScheme(['esdb', 'esdb+discover'])),
  REDIS_URL: optional(urlWithScheme(['redis', 'rediss'])),
  HERALD_DATA_DIR: optional(NonEmptyString),
  HERALD_EMBEDDED_POSTGRES_PORT: optional(Port),
  HERALD_APPS: optional(AppList),
  LOG_LEVEL: optional(LogLevel),
  HERALD_TICKET_SECRET: optional(Secret),
  HERALD_METRICS_TOKEN: optional(Secret),
  HERALD_TICKET_TTL_SECONDS: optional(PositiveInt(30 * 24 * 3600)),
  HERALD_SEND_RATE_PER_MINUTE: optional(PositiveInt(1_000_000)),
  HERALD_READ_YOUR_WRITES_TIMEOUT_MS: optional(NonNegativeInt(30_000)),
  HERALD_PROJECTION_ON_ERROR: optional(t.keyof({ park: null, stop: null }, 'park or stop')),
  HERALD_READY_MAX_LAG_SECONDS: optional(PositiveInt(3600)),
  HERALD_DATABASE_POOL_SIZE: optional(PositiveInt(1000)),
  SMTP_URL: optional(urlWithScheme(['smtp', 'smtps'])),
  HERALD_CALLBACK_PRIVATE_NETWORKS: optional(t.keyof({ allow: null, refuse: null }, 'allow or refuse')),
  RTIO_TRUSTED_CIDRS: optional(CidrList),
  RTIO_NOTIFY_URL: optional(urlWithScheme(['http', 'https'])),
  RTIO_MANAGE_PORT: optional(Port),
  RTIO_CALL_PORT: optional(Port),
  RTIO_APP_ID: optional(
    fromEnvString('an app id (1-64 of A-Z a-z 0-9 _ . -)', (raw) => (AppId.is(raw) ? raw : undefined)),
  ),
  HERALD_CORS_ORIGINS: optional(CorsOriginList),
  HERALD_RETENTION_BATCH_SIZE: optional(PositiveInt(100_000)),
  HERALD_RETENTION_INTERVAL_SECONDS: optional(PositiveInt(86_400)),
  HERALD_ARCHIVE_DIR: optional(NonEmptyString),
  ...retentionVariables,
  HERALD_CREDENTIALS_KEY: optional(
    fromEnvString('64 hex digits (a 256-bit key)', (raw) => (/^[0-9a-fA-F]{64}$/.test(raw) ? raw : undefined)),
  ),
  HERALD_APNS_APP: optional(
    fromEnvString('an app id (1-64 of A-Z a-z 0-9 _ . -)', (raw) => (AppId.is(raw) ? raw : undefined)),
  ),
  HERALD_APNS_KEY_FILE: optional(NonEmptyString),
  HERALD_APNS_KEY_ID: optional(NonEmptyString),
  HERALD_APNS_TEAM_ID: optional(NonEmptyString),
  HERALD_APNS_TOPIC: optional(NonEmptyString),
  HERALD_APNS_ENVIRONMENT: optional(t.keyof({ production: null, sandbox: null }, 'production or sandbox')),
  HERALD_APNS_HOST: optional(urlWithScheme(['https'])),
  HERALD_APNS_CA_FILE: optional(NonEmptyString),
  HERALD_FCM_APP: optional(
    fromEnvString('an app id (1-64 of A-Z a-z 0-9 _ . -)', (raw) => (AppId.is(raw) ? raw : undefined)),
  ),
  HERALD_FCM_SERVICE_ACCOUNT_FILE: optional(NonEmptyString),
  HERALD_FCM_BASE_URL: optional(urlWithScheme(['https', 'http'])),
  HERALD_FCM_TOKEN_URI: optional(urlWithScheme(['https', 'http'])),
  HERALD_VAPID_APP: optional(
    fromEnvString('an app id (1-64 of A-Z a-z 0-9 _ . -)', (raw) => (AppId.is(raw) ? raw : undefined)),
  ),
  HERALD_VAPID_PUBLIC_KEY: optional(NonEmptyString),
  HERALD_VAPID_PRIVATE_KEY: optional(NonEmptyString),
  HERALD_VAPID_SUBJECT: optional(NonEmptyString),
  HERALD_WEBPUSH_ALLOWED_ORIGINS: optional(
    fromEnvString('a comma-separated list of origins (http(s)://host[:port])', (raw) => {
      const origins = raw.split(',').map((o) => o.trim());
      return origins.every((o) => URL.canParse(o) && /^https?:$/.test(new URL(o).protocol) && new URL(o).origin === o)
        ? origins
        : undefined;
    }),
  ),
  HERALD_MAIL_FROM: optional(
    fromEnvString('an address or Name <address>', (raw) =>
      /^(?:[^\s@<>]{1,64}@[^\s@<>]{1,190}|[^<>\r\n]{1,100} <[^\s@<>]{1,64}@[^\s@<>]{1,190}>)$/.test(raw)
        ? raw
        : undefined,
    ),
  ),
});

export interface Config {
  readonly port: number;
  readonly host: string;
  /** Unset → embedded PostgreSQL under dataDir. */
  readonly databaseUrl?: string;
  /** Set → EventStoreDB is the event store; otherwise PostgreSQL is. */
  readonly eventStoreUrl?: string;
  readonly redisUrl?: string;
  readonly dataDir: string;
  readonly embeddedPostgresPort: number;
  readonly apps: readonly AppCredentials[];
  readonly logLevel: string;
  /** Signs tickets; unset → a key generated on first start and kept in the database. */
  readonly ticketSecret?: string;
  /** The bearer token Prometheus scrapes /metrics with; unset: /metrics is off. */
  readonly metricsToken?: string;
  readonly ticketTtlSeconds: number;
  /** Messages one sender may send per minute (Koala 4001 beyond it). */
  readonly sendRatePerMinute: number;
  /**
   * How long a command's answer waits for the read models that serve its caller to show its effect
   * (read your writes); then it answers anyway and the lag is logged. 0 = do not wait.
   */
  readonly readYourWritesTimeoutMs: number;
  /** An event a projection keeps failing on: `park` it and go on (default), or `stop` and retry it until it applies. */
  readonly projectionOnError: 'park' | 'stop';
  /** /readyz is not ready while a projection has not applied an event older than this (docs/operations.md, "Probes"). */
  readonly readyMaxLagSeconds: number;
  /** PostgreSQL connections herald's pool opens at most; unset → defaultPoolSize() (src/postgres/database.ts). */
  readonly databasePoolSize?: number;
  /** The SMTP server the mailer sends through (its password is never logged); unset → emails are recorded, not sent. */
  readonly smtpUrl?: string;
  /** The From address of herald's emails; unset → the mailer's default (herald@localhost). */
  readonly mailFrom?: string;
  /**
   * Whether apps' callback URLs (topvdn `callback: 1`) may reach loopback, private and link-local
   * addresses: refused by default, so an app cannot make herald probe its own network.
   */
  readonly callbackPrivateNetworks: 'allow' | 'refuse';
  /** RTIO's REST routes take callers from these networks without app credentials (the seed: an internal network). */
  readonly rtioTrustedCidrs: readonly Cidr[];
  /** The app RTIO's credential-less trusted callers act for. */
  readonly rtioAppId: string;
  /** RTIO's `$notifyurl`: where devices' reports are forwarded; unset → recorded only. */
  readonly rtioNotifyUrl?: string;
  /** Also serve RTIO's /manage routes on this port (the seed's 8095), and /call on this one (8090). */
  readonly rtioManagePort?: number;
  readonly rtioCallPort?: number;
  /** Browser origins that may call the REST shims and /graphql (CORS); none by default. */
  readonly corsOrigins: CorsOrigins;
  /** How long what has ended is kept, per category (domain/retention.ts; docs/operations.md, "Retention"). */
  readonly retention: RetentionPolicy;
  /** Rows one pruning statement removes at most (one short transaction each). */
  readonly retentionBatchSize: number;
  /** How often the leader runs a pruning pass. */
  readonly retentionIntervalSeconds: number;
  /** Where retention archives the events it removes from the event store (a directory; default `<dataDir>/archive`). */
  readonly archiveDir: string;
  /** Seals apps' platform-push keys (64 hex digits); unset → `credentials.key` in the data dir. */
  readonly credentialsKey?: string;
  /** A one-app deployment's APNs credentials (`HERALD_APNS_…`); an app's own, set over GraphQL, come first. */
  readonly apns?: { readonly appId: string; readonly credentials: ApnsCredentials };
  /** Where APNs is reached: Apple's hosts unless `HERALD_APNS_HOST` (with `HERALD_APNS_CA_FILE`) says otherwise. */
  readonly apnsEndpoint: ApnsEndpoint;
  /** A one-app deployment's FCM service account (`HERALD_FCM_…`); an app's own, set over GraphQL, comes first. */
  readonly fcm?: { readonly appId: string; readonly credentials: FcmCredentials };
  /** Where FCM is reached: Google unless `HERALD_FCM_BASE_URL` / `HERALD_FCM_TOKEN_URI` say otherwise. */
  readonly fcmEndpoint: FcmEndpoint;
  /** A one-app deployment's VAPID key pair (`HERALD_VAPID_…`); an app's own, set over GraphQL, comes first. */
  readonly vapid?: { readonly appId: string; readonly credentials: VapidCredentials };
  /** Where Web Push may POST besides public https endpoints (`HERALD_WEBPUSH_ALLOWED_ORIGINS`). */
  readonly webPushEndpoint: WebPushEndpointPolicy;
}

export class ConfigError extends Error {
  override readonly name = 'ConfigError';
}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty variable counts as unset, as shells and compose files often leave them.
  const present = Object.fromEntries(
    Object.keys(Environment.props).map((key) => [key, env[key] === '' ? undefined : env[key]]),
  );
  const decoded = Environment.decode(present);
  if (isLeft(decoded)) {
    // A codec that explains itself (names what is wrong) is heard; the others say the form they expect.
    const explained = new Set(
      decoded.left.filter((error) => error.message !== undefined).map((error) => error.context[1]?.key),
    );
    const problems = decoded.left.flatMap((error) => {
      const variable = error.context[1]?.key ?? '?';
      if (error.message !== undefined) return [`${variable}: ${error.message}`];
      if (explained.has(variable)) return [];
      const expected = error.context[1]?.type.name ?? 'a valid value';
      // Secrets may be in the value (HERALD_APPS, URLs with passwords): name the variable, not the value.
      return [`${variable}: expected ${expected}`];
    });
    throw new ConfigError(`invalid configuration:\n  ${[...new Set(problems)].join('\n  ')}`);
  }
  const e = decoded.right;
  const apns = apnsFromEnvironment(e);
  const fcm = fcmFromEnvironment(e);
  const vapid = vapidFromEnvironment(e);
  let apnsCa: string | undefined;
  if (e.HERALD_APNS_CA_FILE !== undefined) {
    // The CA file replaces the default CAs: with Apple's own hosts it would distrust them (or trust another).
    if (e.HERALD_APNS_HOST === undefined)
      throw new ConfigError('invalid configuration:\n  HERALD_APNS_CA_FILE: only with HERALD_APNS_HOST');
    try {
      apnsCa = readFileSync(e.HERALD_APNS_CA_FILE, 'utf8');
    } catch {
      throw new ConfigError('invalid configuration:\n  HERALD_APNS_CA_FILE: expected a readable PEM file');
    }
  }
  return {
    port: e.PORT ?? 8080,
    host: e.HOST ?? '0.0.0.0',
    ...(e.DATABASE_URL !== undefined && { databaseUrl: e.DATABASE_URL }),
    ...(e.EVENTSTORE_URL !== undefined && { eventStoreUrl: e.EVENTSTORE_URL }),
    ...(e.REDIS_URL !== undefined && { redisUrl: e.REDIS_URL }),
    dataDir: e.HERALD_DATA_DIR ?? './.herald',
    embeddedPostgresPort: e.HERALD_EMBEDDED_POSTGRES_PORT ?? 25432,
    apps: e.HERALD_APPS ?? [],
    logLevel: e.LOG_LEVEL ?? 'info',
    ...(e.HERALD_TICKET_SECRET !== undefined && { ticketSecret: e.HERALD_TICKET_SECRET }),
    ...(e.HERALD_METRICS_TOKEN !== undefined && { metricsToken: e.HERALD_METRICS_TOKEN }),
    ticketTtlSeconds: e.HERALD_TICKET_TTL_SECONDS ?? 24 * 3600,
    sendRatePerMinute: e.HERALD_SEND_RATE_PER_MINUTE ?? 600,
    readYourWritesTimeoutMs: e.HERALD_READ_YOUR_WRITES_TIMEOUT_MS ?? 2000,
    projectionOnError: e.HERALD_PROJECTION_ON_ERROR ?? 'park',
    readyMaxLagSeconds: e.HERALD_READY_MAX_LAG_SECONDS ?? 10,
    ...(e.HERALD_DATABASE_POOL_SIZE !== undefined && { databasePoolSize: e.HERALD_DATABASE_POOL_SIZE }),
    ...(e.SMTP_URL !== undefined && { smtpUrl: e.SMTP_URL }),
    ...(e.HERALD_MAIL_FROM !== undefined && { mailFrom: e.HERALD_MAIL_FROM }),
    callbackPrivateNetworks: e.HERALD_CALLBACK_PRIVATE_NETWORKS ?? 'refuse',
    rtioTrustedCidrs: e.RTIO_TRUSTED_CIDRS ?? [
      { address: '127.0.0.0', prefix: 8, family: 'ipv4' },
      { address: '::1', prefix: 128, family: 'ipv6' },
    ],
    rtioAppId: e.RTIO_APP_ID ?? 'rtio',
    ...(e.RTIO_NOTIFY_URL !== undefined && { rtioNotifyUrl: e.RTIO_NOTIFY_URL }),
    ...(e.RTIO_MANAGE_PORT !== undefined && { rtioManagePort: e.RTIO_MANAGE_PORT }),
    ...(e.RTIO_CALL_PORT !== undefined && { rtioCallPort: e.RTIO_CALL_PORT }),
    corsOrigins: e.HERALD_CORS_ORIGINS ?? [],
    retention: Object.fromEntries(
      RETENTION_CATEGORIES.map((category) => [
        category,
        (e as Record<string, unknown>)[retentionVariable(category)] ?? DEFAULT_RETENTION[category],
      ]),
    ) as RetentionPolicy,
    retentionBatchSize: e.HERALD_RETENTION_BATCH_SIZE ?? 1000,
    retentionIntervalSeconds: e.HERALD_RETENTION_INTERVAL_SECONDS ?? 60,
    archiveDir: e.HERALD_ARCHIVE_DIR ?? path.join(e.HERALD_DATA_DIR ?? './.herald', 'archive'),
    ...(e.HERALD_CREDENTIALS_KEY !== undefined && { credentialsKey: e.HERALD_CREDENTIALS_KEY }),
    ...(apns && { apns }),
    apnsEndpoint: {
      ...(e.HERALD_APNS_HOST !== undefined && { host: e.HERALD_APNS_HOST }),
      ...(apnsCa !== undefined && { ca: apnsCa }),
    },
    ...(fcm && { fcm }),
    fcmEndpoint: {
      ...(e.HERALD_FCM_BASE_URL !== undefined && { baseUrl: e.HERALD_FCM_BASE_URL }),
      ...(e.HERALD_FCM_TOKEN_URI !== undefined && { tokenUri: e.HERALD_FCM_TOKEN_URI }),
    },
    ...(vapid && { vapid }),
    webPushEndpoint: { allowedOrigins: e.HERALD_WEBPUSH_ALLOWED_ORIGINS ?? [] },
  };
}

const VAPID_VARIABLES = {
  publicKey: 'HERALD_VAPID_PUBLIC_KEY',
  privateKey: 'HERALD_VAPID_PRIVATE_KEY',
  subject: 'HERALD_VAPID_SUBJECT',
} as const;

/** HERALD_VAPID_APP with the key pair and subject: all or none, checked as GraphQL checks them. */
function vapidFromEnvironment(e: t.TypeOf<typeof Environment>): Config['vapid'] {
  const app = e.HERALD_VAPID_APP;
  const names = Object.values(VAPID_VARIABLES);
  if (app === undefined) {
    if (names.some((name) => e[name] !== undefined))
      throw new ConfigError(
        'invalid configuration:\n  HERALD_VAPID_APP: required with the other HERALD_VAPID_ variables',
      );
    return undefined;
  }
  const missing = names.filter((name) => e[name] === undefined);
  if (missing.length > 0)
    throw new ConfigError(
      `invalid configuration:\n  ${missing.map((name) => `${name}: required with HERALD_VAPID_APP`).join('\n  ')}`,
    );
  try {
    return {
      appId: app,
      credentials: checkVapidCredentials({
        publicKey: e.HERALD_VAPID_PUBLIC_KEY,
        privateKey: e.HERALD_VAPID_PRIVATE_KEY,
        subject: e.HERALD_VAPID_SUBJECT,
      }),
    };
  } catch (error) {
    // "privateKey: …" → named after its variable; the key is never in the message.
    const message = (error as Error).message;
    const field = (Object.keys(VAPID_VARIABLES) as Array<keyof typeof VAPID_VARIABLES>).find((f) =>
      message.startsWith(`${f}:`),
    );
    throw new ConfigError(
      `invalid configuration:\n  ${field ? message.replace(field, VAPID_VARIABLES[field]) : `HERALD_VAPID_PRIVATE_KEY: ${message}`}`,
    );
  }
}

/** HERALD_FCM_APP with HERALD_FCM_SERVICE_ACCOUNT_FILE (Google's JSON key file): both or neither, checked as GraphQL checks it. */
function fcmFromEnvironment(e: t.TypeOf<typeof Environment>): Config['fcm'] {
  const app = e.HERALD_FCM_APP;
  const file = e.HERALD_FCM_SERVICE_ACCOUNT_FILE;
  if (app === undefined && file === undefined) return undefined;
  if (app === undefined)
    throw new ConfigError('invalid configuration:\n  HERALD_FCM_APP: required with HERALD_FCM_SERVICE_ACCOUNT_FILE');
  if (file === undefined)
    throw new ConfigError('invalid configuration:\n  HERALD_FCM_SERVICE_ACCOUNT_FILE: required with HERALD_FCM_APP');
  let json: string;
  try {
    json = readFileSync(file, 'utf8');
  } catch {
    throw new ConfigError(
      'invalid configuration:\n  HERALD_FCM_SERVICE_ACCOUNT_FILE: expected a readable service-account JSON file',
    );
  }
  try {
    return { appId: app, credentials: checkFcmCredentials(json) };
  } catch (error) {
    // "serviceAccount.private_key: …" → named after the variable; the key's text is never in the message.
    const message = (error as Error).message.replace(/^serviceAccount/, '');
    throw new ConfigError(`invalid configuration:\n  HERALD_FCM_SERVICE_ACCOUNT_FILE${message}`);
  }
}

const APNS_VARIABLES = {
  keyPem: 'HERALD_APNS_KEY_FILE',
  keyId: 'HERALD_APNS_KEY_ID',
  teamId: 'HERALD_APNS_TEAM_ID',
  topic: 'HERALD_APNS_TOPIC',
  environment: 'HERALD_APNS_ENVIRONMENT',
} as const;

/** HERALD_APNS_APP with its key file, key id, team id and topic: all or none, checked as GraphQL checks them. */
function apnsFromEnvironment(e: t.TypeOf<typeof Environment>): Config['apns'] {
  const given = [
    e.HERALD_APNS_KEY_FILE,
    e.HERALD_APNS_KEY_ID,
    e.HERALD_APNS_TEAM_ID,
    e.HERALD_APNS_TOPIC,
    e.HERALD_APNS_ENVIRONMENT,
  ];
  if (e.HERALD_APNS_APP === undefined) {
    if (given.some((v) => v !== undefined))
      throw new ConfigError(
        'invalid configuration:\n  HERALD_APNS_APP: required with the other HERALD_APNS_ variables',
      );
    return undefined;
  }
  const missing = Object.values(APNS_VARIABLES)
    .filter((name) => name !== 'HERALD_APNS_ENVIRONMENT')
    .filter((name) => e[name] === undefined);
  if (missing.length > 0)
    throw new ConfigError(
      `invalid configuration:\n  ${missing.map((name) => `${name}: required with HERALD_APNS_APP`).join('\n  ')}`,
    );
  let keyPem: string;
  try {
    keyPem = readFileSync(e.HERALD_APNS_KEY_FILE!, 'utf8');
  } catch {
    throw new ConfigError('invalid configuration:\n  HERALD_APNS_KEY_FILE: expected a readable .p8 file');
  }
  try {
    const credentials = checkApnsCredentials({
      keyPem,
      keyId: e.HERALD_APNS_KEY_ID,
      teamId: e.HERALD_APNS_TEAM_ID,
      topic: e.HERALD_APNS_TOPIC,
      environment: e.HERALD_APNS_ENVIRONMENT ?? 'production',
    });
    return { appId: e.HERALD_APNS_APP, credentials };
  } catch (error) {
    // "keyId: expected …" → the variable it came from; the key's text is never in the message.
    const message = (error as Error).message;
    const field = message.slice(0, message.indexOf(':')) as keyof typeof APNS_VARIABLES;
    throw new ConfigError(
      `invalid configuration:\n  ${APNS_VARIABLES[field] ?? 'HERALD_APNS_APP'}${message.slice(message.indexOf(':'))}`,
    );
  }
}
