import { createCipheriv, createDecipheriv, createECDH, randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { isLeft } from 'fp-ts/lib/Either';
import * as t from 'io-ts';
import webpush from 'web-push';
import { HeraldError } from '../../domain/heraldError';
import { apnsKey, type ApnsCredentials, type ApnsEnvironment } from './apns';
import { fcmKey, type FcmCredentials } from './fcm';
import { isP256PublicKey, type VapidCredentials } from './webPush';

/**
 * Apps' platform-push credentials (docs/platform-push.md, "Configuration"): set by an app's admin over
 * GraphQL (`setApnsCredentials`) and kept in PostgreSQL with the private key sealed (AES-256-GCM under the
 * credentials key, the app id as associated data, so a sealed key copied to another app's row does not
 * open); or, for a one-app deployment, given as `HERALD_APNS_…` variables. The key is never returned,
 * logged, or put in an event; what is shown is `configured`, the key id, team id, topic and environment.
 */

export const APNS_CREDENTIAL_LIMITS = {
  /** A .p8 file is about 250 characters; room for line ends and a comment, not for a megabyte. */
  keyPemLength: 4096,
  topicLength: 255,
} as const;

const bounded = (name: string, pattern: RegExp, max: number) =>
  new t.Type<string, string, unknown>(
    name,
    (u): u is string => typeof u === 'string' && u.length <= max && pattern.test(u),
    (u, c) => (typeof u === 'string' && u.length <= max && pattern.test(u) ? t.success(u) : t.failure(u, c)),
    t.identity,
  );

/** What an admin gives: checked here, and the key parsed, before anything is stored. */
export const ApnsCredentialsInput = t.type({
  keyPem: bounded(
    `a .p8 key's PEM text (at most ${APNS_CREDENTIAL_LIMITS.keyPemLength} characters)`,
    /^\s*-----BEGIN PRIVATE KEY-----[\s\S]+-----END PRIVATE KEY-----\s*$/,
    APNS_CREDENTIAL_LIMITS.keyPemLength,
  ),
  // Apple's key and team ids are 10 upper-case letters and digits.
  keyId: bounded('10 characters of A-Z 0-9', /^[A-Z0-9]{10}$/, 10),
  teamId: bounded('10 characters of A-Z 0-9', /^[A-Z0-9]{10}$/, 10),
  topic: bounded(
    `a bundle id (1-${APNS_CREDENTIAL_LIMITS.topicLength} of A-Z a-z 0-9 . - _)`,
    /^[A-Za-z0-9][A-Za-z0-9._-]*$/,
    APNS_CREDENTIAL_LIMITS.topicLength,
  ),
  environment: t.keyof({ production: null, sandbox: null }, 'production or sandbox'),
});
export type ApnsCredentialsInput = t.TypeOf<typeof ApnsCredentialsInput>;

export class CredentialsError extends HeraldError {
  override readonly name = 'CredentialsError';
  constructor(message: string) {
    super('invalid', message);
  }
}

/** Checks an admin's input: a CredentialsError naming the field (never quoting the key), or the credentials. */
export function checkApnsCredentials(input: unknown): ApnsCredentials {
  const decoded = ApnsCredentialsInput.decode(input);
  if (isLeft(decoded)) {
    const error = decoded.left[0]!;
    const field = error.context[1]?.key ?? 'input';
    throw new CredentialsError(`${field}: expected ${error.context[error.context.length - 1]?.type.name ?? 'a value'}`);
  }
  try {
    apnsKey(decoded.right.keyPem);
  } catch (error) {
    throw new CredentialsError(`keyPem: ${(error as Error).message}`);
  }
  return { ...decoded.right, keyPem: decoded.right.keyPem.trim() };
}

export const FCM_CREDENTIAL_LIMITS = {
  /** A service-account JSON file is about 2,400 characters (a 2048-bit key); room for a 4096-bit one. */
  serviceAccountLength: 16_384,
  privateKeyLength: 8192,
  fieldLength: 255,
} as const;

/** The parts of Google's service-account JSON key file herald uses; its other fields are ignored. */
export const FcmServiceAccount = t.type({
  type: t.literal('service_account'),
  project_id: bounded('a project id (6-30 of a-z 0-9 -)', /^[a-z][a-z0-9-]{4,28}[a-z0-9]$/, 30),
  client_email: bounded(
    `an email address (at most ${FCM_CREDENTIAL_LIMITS.fieldLength} characters)`,
    /^[^\s@]{1,64}@[A-Za-z0-9.-]{1,190}$/,
    FCM_CREDENTIAL_LIMITS.fieldLength,
  ),
  private_key: bounded(
    `an RSA private key's PEM (at most ${FCM_CREDENTIAL_LIMITS.privateKeyLength} characters)`,
    /^\s*-----BEGIN PRIVATE KEY-----[\s\S]+-----END PRIVATE KEY-----\s*$/,
    FCM_CREDENTIAL_LIMITS.privateKeyLength,
  ),
  token_uri: bounded(
    `an https:// or http:// URL (at most ${FCM_CREDENTIAL_LIMITS.fieldLength} characters)`,
    /^https?:\/\/[^\s]+$/,
    FCM_CREDENTIAL_LIMITS.fieldLength,
  ),
});

/**
 * Checks an admin's service-account JSON (the text of the file Google gives): a CredentialsError naming
 * the field (`serviceAccount.<field>`, never quoting the key), or the credentials.
 */
export function checkFcmCredentials(serviceAccountJson: unknown): FcmCredentials {
  if (typeof serviceAccountJson !== 'string' || serviceAccountJson.length > FCM_CREDENTIAL_LIMITS.serviceAccountLength)
    throw new CredentialsError(
      `serviceAccount: expected a service-account JSON key file (at most ${FCM_CREDENTIAL_LIMITS.serviceAccountLength} characters)`,
    );
  let parsed: unknown;
  try {
    parsed = JSON.parse(serviceAccountJson);
  } catch {
    throw new CredentialsError('serviceAccount: not JSON');
  }
  const decoded = FcmServiceAccount.decode(parsed);
  if (isLeft(decoded)) {
    const error = decoded.left[0]!;
    const field = error.context[1]?.key;
    const expected = error.context[error.context.length - 1]?.type.name ?? 'a value';
    throw new CredentialsError(
      field ? `serviceAccount.${field}: expected ${expected}` : 'serviceAccount: expected a JSON object',
    );
  }
  try {
    fcmKey(decoded.right.private_key);
  } catch (error) {
    throw new CredentialsError(`serviceAccount.private_key: ${(error as Error).message}`);
  }
  const { project_id, client_email, private_key, token_uri } = decoded.right;
  // The URL must parse too (the pattern only shapes it).
  if (!URL.canParse(token_uri)) throw new CredentialsError('serviceAccount.token_uri: not a URL');
  return { projectId: project_id, clientEmail: client_email, privateKey: private_key.trim(), tokenUri: token_uri };
}

export const VAPID_CREDENTIAL_LIMITS = { subjectLength: 255 } as const;

/** A base64url text (no padding) of exactly `bytes` bytes. */
const base64urlOf = (name: string, bytes: number) =>
  bounded(name, new RegExp(`^[A-Za-z0-9_-]{${Math.ceil((bytes * 4) / 3)}}$`), Math.ceil((bytes * 4) / 3));

/**
 * What an admin gives for Web Push: the VAPID subject, and a key pair to import — or none, and herald
 * makes one (a browser needs only the public key, which is then read back).
 */
export const VapidCredentialsInput = t.type({
  subject: bounded(
    `a mailto: or https: URL (at most ${VAPID_CREDENTIAL_LIMITS.subjectLength} characters)`,
    /^(mailto:[^\s@]+@[^\s@]+|https:\/\/[^\s]+)$/,
    VAPID_CREDENTIAL_LIMITS.subjectLength,
  ),
  publicKey: t.union([
    t.null,
    t.undefined,
    base64urlOf('an uncompressed P-256 public key: 65 bytes, base64url (no padding)', 65),
  ]),
  privateKey: t.union([t.null, t.undefined, base64urlOf('a P-256 private key: 32 bytes, base64url (no padding)', 32)]),
});

/**
 * Checks an admin's VAPID input: a CredentialsError naming the field (never quoting the private key), or
 * the key pair — the one given (both keys, which must be a pair), or a new one when neither is.
 */
export function checkVapidCredentials(input: unknown): VapidCredentials {
  const decoded = VapidCredentialsInput.decode(input);
  if (isLeft(decoded)) {
    const error = decoded.left[0]!;
    const field = error.context[1]?.key ?? 'input';
    throw new CredentialsError(`${field}: expected ${error.context[1]?.type.name ?? 'a value'}`);
  }
  const { subject, publicKey, privateKey } = decoded.right;
  if (!URL.canParse(subject)) throw new CredentialsError('subject: not a URL');
  if ((publicKey ?? null) === null && (privateKey ?? null) === null) {
    const made = webpush.generateVAPIDKeys();
    return { subject, publicKey: made.publicKey, privateKey: made.privateKey };
  }
  if (!publicKey || !privateKey)
    throw new CredentialsError('publicKey, privateKey: give both (a key pair) or neither (herald makes one)');
  if (!isP256PublicKey(publicKey)) throw new CredentialsError('publicKey: not a point of P-256');
  let derived: string;
  try {
    const ecdh = createECDH('prime256v1');
    ecdh.setPrivateKey(Buffer.from(privateKey, 'base64url'));
    derived = ecdh.getPublicKey().toString('base64url');
  } catch {
    throw new CredentialsError('privateKey: not a P-256 private key');
  }
  if (derived !== publicKey) throw new CredentialsError('privateKey: not the private key of publicKey');
  return { subject, publicKey, privateKey };
}

/** What is shown of an app's VAPID key pair: the public key (a browser's `applicationServerKey`), never the private. */
export interface VapidCredentialsView {
  readonly configured: boolean;
  readonly publicKey: string | null;
  readonly subject: string | null;
}
export interface StoredVapidCredentials {
  readonly publicKey: string;
  readonly subject: string;
  readonly sealedKey: string;
}
export interface VapidCredentialStore {
  put(appId: string, credentials: StoredVapidCredentials, now: Date): Promise<void>;
  get(appId: string): Promise<StoredVapidCredentials | undefined>;
  apps(): Promise<readonly string[]>;
}

/** What is shown of an app's FCM service account: never the key. */
export interface FcmCredentialsView {
  readonly configured: boolean;
  readonly projectId: string | null;
  readonly clientEmail: string | null;
  readonly tokenUri: string | null;
}

/** The stored row (projections/platformPushes.ts): the private key sealed. */
export interface StoredFcmCredentials {
  readonly projectId: string;
  readonly clientEmail: string;
  readonly tokenUri: string;
  readonly sealedKey: string;
}
export interface FcmCredentialStore {
  put(appId: string, credentials: StoredFcmCredentials, now: Date): Promise<void>;
  get(appId: string): Promise<StoredFcmCredentials | undefined>;
  apps(): Promise<readonly string[]>;
}

/** What is shown of an app's APNs credentials: never the key. */
export interface ApnsCredentialsView {
  readonly configured: boolean;
  readonly keyId: string | null;
  readonly teamId: string | null;
  readonly topic: string | null;
  readonly environment: ApnsEnvironment | null;
}

/** The stored row (implemented by projections/platformCredentials.ts): the key sealed. */
export interface StoredApnsCredentials {
  readonly keyId: string;
  readonly teamId: string;
  readonly topic: string;
  readonly environment: ApnsEnvironment;
  readonly sealedKey: string;
}
export interface ApnsCredentialStore {
  put(appId: string, credentials: StoredApnsCredentials, now: Date): Promise<void>;
  get(appId: string): Promise<StoredApnsCredentials | undefined>;
  /** Apps with credentials stored. */
  apps(): Promise<readonly string[]>;
}

const SEALED = /^v1\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)\.([A-Za-z0-9_-]+)$/;

/** AES-256-GCM: `v1.<iv>.<tag>.<ciphertext>` (base64url), bound to `context` (the app id). */
export function seal(key: Buffer, plaintext: string, context: string): string {
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context));
  const ciphertext = Buffer.concat([cipher.update(plaintext, 'utf8'), cipher.final()]);
  return `v1.${iv.toString('base64url')}.${cipher.getAuthTag().toString('base64url')}.${ciphertext.toString('base64url')}`;
}

/** Opens what `seal` made for the same context; throws when the key, the context or the text differ. */
export function unseal(key: Buffer, sealed: string, context: string): string {
  const match = SEALED.exec(sealed);
  if (!match) throw new Error('not a sealed secret');
  const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(match[1]!, 'base64url'));
  decipher.setAAD(Buffer.from(context));
  decipher.setAuthTag(Buffer.from(match[2]!, 'base64url'));
  return Buffer.concat([decipher.update(Buffer.from(match[3]!, 'base64url')), decipher.final()]).toString('utf8');
}

/**
 * The credentials key: HERALD_CREDENTIALS_KEY (64 hex digits) when set — every node of a deployment must
 * share it — else `credentials.key` in the data dir, made on first start (mode 0600). Kept out of the
 * database, so a copy of the database alone opens no key.
 */
export function credentialsKey(configured: string | undefined, dataDir: string): Buffer {
  if (configured !== undefined) return Buffer.from(configured, 'hex');
  const file = path.join(dataDir, 'credentials.key');
  if (!existsSync(file)) {
    mkdirSync(dataDir, { recursive: true });
    try {
      writeFileSync(file, randomBytes(32).toString('hex'), { mode: 0o600, flag: 'wx' });
    } catch (error) {
      // Another process of this data dir made it first: that one is the key.
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
  }
  chmodSync(file, 0o600);
  const hex = readFileSync(file, 'utf8').trim();
  if (!/^[0-9a-f]{64}$/i.test(hex)) throw new Error(`${file}: not 64 hex digits`);
  return Buffer.from(hex, 'hex');
}

const CACHE_MS = 2000;
const MAX_CACHED = 10_000;
/** How long `apps()` trusts its look at whether an app's stored key opens (a look is a read of the row). */
const CHECK_MS = 60_000;

export type CredentialService = 'apns' | 'fcm' | 'webpush';

/** One service's stored credentials: how a row, its key opened, becomes what its adapter takes. */
interface SealedCredentials<C, S extends { readonly sealedKey: string }> {
  readonly service: CredentialService;
  readonly store: { get(appId: string): Promise<S | undefined>; apps(): Promise<readonly string[]> };
  /**
   * What the key is sealed to. APNs keys to the app id alone (as first stored); the others to
   * `<service>/<app id>`, so a sealed text copied to another app's or another service's row does not open.
   */
  readonly context: (appId: string) => string;
  readonly open: (stored: S, secret: string) => C;
  /** A one-app deployment's credentials from the environment, used when the app stored none. */
  readonly fromEnvironment?: { readonly appId: string; readonly credentials: C } | undefined;
}

/** An app's credentials as looked up, and whether it has a stored key that does not open on this node. */
interface Looked<C> {
  readonly credentials: C | undefined;
  readonly unusable: boolean;
}

/**
 * One service's credentials per app, key opened, cached briefly (every send asks): the same lookup for
 * APNs keys, FCM service accounts and VAPID key pairs.
 */
export class CredentialsLookup<C> {
  private readonly cache = new Map<string, Looked<C> & { readonly at: number }>();
  /** Per stored app, whether its key opened when last looked at. */
  private readonly checked = new Map<string, { at: number; usable: boolean }>();
  /** The lookups under way, by app. */
  private readonly asking = new Map<string, Promise<Looked<C>>>();

  constructor(
    private readonly kind: SealedCredentials<C, { readonly sealedKey: string }>,
    private readonly unsealed: (appId: string, sealed: string, context: string) => string | undefined,
    private readonly now: () => number,
  ) {}

  /** The app's credentials, key opened; undefined when it has none or its stored key does not open. */
  async of(appId: string): Promise<C | undefined> {
    return (await this.looked(appId)).credentials;
  }

  /**
   * The app's credentials and whether its stored key does not open on this node, as one answer: a send
   * that joined a lookup not cached (forget ran meanwhile, or the cache was cleared) still learns the key
   * is unusable here, and is retried rather than failed for good.
   */
  private looked(appId: string): Promise<Looked<C>> {
    const now = this.now();
    const cached = this.cache.get(appId);
    if (cached && now - cached.at < CACHE_MS) return Promise.resolve(cached);
    // The sends in flight (hundreds for a send to ALL) find the entry stale together: one lookup for all.
    const asking = this.asking.get(appId);
    if (asking) return asking;
    const lookup: Promise<Looked<C>> = this.lookUp(appId).then((looked) => {
      // Not cached when the app set new credentials meanwhile (forget): it may have read the old ones.
      if (this.asking.get(appId) === lookup) {
        if (this.cache.size >= MAX_CACHED) this.cache.clear();
        this.cache.set(appId, { at: now, ...looked });
      }
      return looked;
    });
    this.asking.set(appId, lookup);
    const done = () => {
      if (this.asking.get(appId) === lookup) this.asking.delete(appId);
    };
    lookup.then(done, done);
    return lookup;
  }

  private async lookUp(appId: string): Promise<Looked<C>> {
    const stored = await this.kind.store.get(appId);
    const secret = stored && this.unsealed(appId, stored.sealedKey, this.kind.context(appId));
    const env = this.kind.fromEnvironment;
    const credentials =
      stored && secret !== undefined
        ? this.kind.open(stored, secret)
        : env?.appId === appId
          ? env.credentials
          : undefined;
    return { credentials, unusable: stored !== undefined && secret === undefined };
  }

  /**
   * For a send: the app's credentials, undefined when it has none, and a throw (retried, not a final
   * failure) when it has a stored key this node cannot open — another node's credentials key, or none to
   * be had: the deployment's to fix, not the app's.
   */
  async forSending(appId: string): Promise<C | undefined> {
    const { credentials, unusable } = await this.looked(appId);
    if (!credentials && unusable)
      throw new Error(
        `the app's ${SERVICE_NAMES[this.kind.service]} key does not open with this node's credentials key`,
      );
    return credentials;
  }

  /**
   * Apps with credentials this node can use (the leader looks for their offline devices only): an app
   * whose stored key does not open is left out — nothing is requested for it, so nothing fails for good —
   * until the key opens (a shared HERALD_CREDENTIALS_KEY) or the app sets it again. Each stored app is
   * looked at again at most every CHECK_MS.
   */
  async apps(): Promise<readonly string[]> {
    const now = this.now();
    const usable: string[] = [];
    for (const appId of await this.kind.store.apps()) {
      let check = this.checked.get(appId);
      if (!check || now - check.at >= CHECK_MS) {
        check = { at: now, usable: (await this.of(appId)) !== undefined };
        if (this.checked.size >= MAX_CACHED) this.checked.clear();
        this.checked.set(appId, check);
      }
      if (check.usable) usable.push(appId);
    }
    const env = this.kind.fromEnvironment?.appId;
    return env === undefined || usable.includes(env) ? usable : [...usable, env];
  }

  /** The app set new credentials: read them at the next ask. */
  forget(appId: string): void {
    this.cache.delete(appId);
    this.asking.delete(appId);
    this.checked.delete(appId);
  }
}

const SERVICE_NAMES = { apns: 'APNs', fcm: 'FCM', webpush: 'VAPID' } as const satisfies Record<
  CredentialService,
  string
>;

/**
 * Sets and reads apps' APNs credentials, FCM service accounts and VAPID key pairs; `HERALD_APNS_…` /
 * `HERALD_FCM_…` / `HERALD_VAPID_…` for one app when nothing was set over GraphQL.
 */
export class PlatformCredentials {
  readonly apns: CredentialsLookup<ApnsCredentials>;
  readonly fcm: CredentialsLookup<FcmCredentials>;
  readonly vapid: CredentialsLookup<VapidCredentials>;
  private sealingKey: Buffer | undefined;

  constructor(
    private readonly deps: {
      readonly store: ApnsCredentialStore;
      readonly fcmStore: FcmCredentialStore;
      readonly vapidStore: VapidCredentialStore;
      /** Made or read when first needed (a deployment without platform push never makes one). */
      readonly key: () => Buffer;
      /** The one app's credentials from the environment, if given. */
      readonly fromEnvironment?: { readonly appId: string; readonly credentials: ApnsCredentials };
      /** The one app's FCM service account from the environment, if given. */
      readonly fcmFromEnvironment?: { readonly appId: string; readonly credentials: FcmCredentials };
      /** The one app's VAPID key pair from the environment, if given. */
      readonly vapidFromEnvironment?: { readonly appId: string; readonly credentials: VapidCredentials };
      readonly now?: () => number;
      /** Told when an app's stored key does not open (the credentials key changed). */
      readonly onUnreadable?: (appId: string, service: CredentialService) => void;
      /** Told when the credentials key itself cannot be had (an unwritable data dir): not a changed key. */
      readonly onNoKey?: (error: Error) => void;
    },
  ) {
    const now = () => this.deps.now?.() ?? Date.now();
    const opener = (service: CredentialService) => (appId: string, sealed: string, context: string) =>
      this.unsealed(appId, sealed, context, service);
    this.apns = new CredentialsLookup<ApnsCredentials>(
      {
        service: 'apns',
        store: deps.store,
        context: apnsContext,
        open: (stored, keyPem) => {
          const { keyId, teamId, topic, environment } = stored as StoredApnsCredentials;
          return { keyPem, keyId, teamId, topic, environment };
        },
        fromEnvironment: deps.fromEnvironment,
      },
      opener('apns'),
      now,
    );
    this.fcm = new CredentialsLookup<FcmCredentials>(
      {
        service: 'fcm',
        store: deps.fcmStore,
        context: fcmContext,
        open: (stored, privateKey) => {
          const { projectId, clientEmail, tokenUri } = stored as StoredFcmCredentials;
          return { projectId, clientEmail, tokenUri, privateKey };
        },
        fromEnvironment: deps.fcmFromEnvironment,
      },
      opener('fcm'),
      now,
    );
    this.vapid = new CredentialsLookup<VapidCredentials>(
      {
        service: 'webpush',
        store: deps.vapidStore,
        context: vapidContext,
        open: (stored, privateKey) => {
          const { publicKey, subject } = stored as StoredVapidCredentials;
          return { publicKey, privateKey, subject };
        },
        fromEnvironment: deps.vapidFromEnvironment,
      },
      opener('webpush'),
      now,
    );
  }

  /**
   * Checks and stores a VAPID key pair (imported, or made when none is given); a CredentialsError
   * (nothing stored) for bad input. Setting another pair strands the browsers subscribed with the old
   * public key: their push services refuse the new one (403) until they subscribe again.
   */
  async setVapid(appId: string, input: unknown, now: Date): Promise<VapidCredentialsView> {
    const { privateKey, ...shown } = checkVapidCredentials(input);
    await this.deps.vapidStore.put(
      appId,
      { ...shown, sealedKey: seal(this.key(), privateKey, vapidContext(appId)) },
      now,
    );
    this.vapid.forget(appId);
    return { configured: true, ...shown };
  }

  async describeVapid(appId: string): Promise<VapidCredentialsView> {
    const credentials = await this.vapid.of(appId);
    if (!credentials) return { configured: false, publicKey: null, subject: null };
    return { configured: true, publicKey: credentials.publicKey, subject: credentials.subject };
  }

  /** Checks and stores; a CredentialsError (nothing stored) for bad input. */
  async setApns(appId: string, input: unknown, now: Date): Promise<ApnsCredentialsView> {
    const credentials = checkApnsCredentials(input);
    const { keyPem, ...shown } = credentials;
    await this.deps.store.put(appId, { ...shown, sealedKey: seal(this.key(), keyPem, apnsContext(appId)) }, now);
    this.apns.forget(appId);
    return { configured: true, ...shown };
  }

  async describeApns(appId: string): Promise<ApnsCredentialsView> {
    const credentials = await this.apns.of(appId);
    if (!credentials) return { configured: false, keyId: null, teamId: null, topic: null, environment: null };
    const { keyPem: _, ...shown } = credentials;
    return { configured: true, ...shown };
  }

  /** Checks and stores an FCM service account (its JSON text); a CredentialsError (nothing stored) for bad input. */
  async setFcm(appId: string, serviceAccountJson: unknown, now: Date): Promise<FcmCredentialsView> {
    const { privateKey, ...shown } = checkFcmCredentials(serviceAccountJson);
    await this.deps.fcmStore.put(appId, { ...shown, sealedKey: seal(this.key(), privateKey, fcmContext(appId)) }, now);
    this.fcm.forget(appId);
    return { configured: true, ...shown };
  }

  async describeFcm(appId: string): Promise<FcmCredentialsView> {
    const credentials = await this.fcm.of(appId);
    if (!credentials) return { configured: false, projectId: null, clientEmail: null, tokenUri: null };
    const { privateKey: _, ...shown } = credentials;
    return { configured: true, ...shown };
  }

  /**
   * The key, or undefined when it does not open (sealed under another credentials key: nodes must share
   * HERALD_CREDENTIALS_KEY, or the app sets it again) or there is no credentials key to open it with.
   */
  private unsealed(appId: string, sealed: string, context: string, service: CredentialService): string | undefined {
    let key: Buffer;
    try {
      key = this.key();
    } catch (error) {
      this.deps.onNoKey?.(error as Error);
      return undefined;
    }
    try {
      return unseal(key, sealed, context);
    } catch {
      this.deps.onUnreadable?.(appId, service);
      return undefined;
    }
  }

  private key(): Buffer {
    return (this.sealingKey ??= this.deps.key());
  }
}

/** APNs keys were sealed to the app id alone when they came first; kept so stored keys still open. */
const apnsContext = (appId: string) => appId;
/** An FCM key is sealed to its app and service: an APNs key's sealed text copied to the FCM row does not open. */
const fcmContext = (appId: string) => `fcm/${appId}`;
const vapidContext = (appId: string) => `webpush/${appId}`;
