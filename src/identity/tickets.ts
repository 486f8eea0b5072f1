import { createHash, createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { AppId, appStreamName } from '../../domain/app/app';
import { HeraldError } from '../../domain/heraldError';
import { TICKET_LIMITS, ticketStreamName } from '../../domain/ticket/ticket';
import { appAggregate, ticketAggregate } from '../command/aggregates';
import { handleCommand, loadState } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import { verifyAppSecret } from './appSecret';

/**
 * Tickets: signed, expiring tokens for (appId, userId, roles). Format `<payload>.<signature>`, both
 * base64url; the payload is JSON, the signature HMAC-SHA256 with a key shared by every herald node
 * (HERALD_TICKET_SECRET, or one generated on first start and kept in the database).
 *
 * A ticket also carries a fingerprint of its app's secret: when the app's secret changes, its tickets
 * stop working ("session error", Koala 1005) — that is how an app revokes every session at once.
 */

export interface Viewer {
  readonly ticketId: string;
  readonly appId: string;
  readonly userId: string;
  readonly roles: readonly string[];
  readonly expiresAt: string;
}

/** The role that acts on the whole app: any user's devices, pushes to all, the app's event stream. */
export const isAdmin = (viewer: Viewer): boolean => viewer.roles.includes('admin');

export type TicketProblem = 'malformed' | 'expired' | 'revoked';

export class TicketError extends HeraldError {
  override readonly name = 'TicketError';
  declare readonly code: `ticket_${TicketProblem}`;
  constructor(readonly problem: TicketProblem) {
    super(
      `ticket_${problem}`,
      problem === 'malformed'
        ? 'the ticket is not valid'
        : problem === 'expired'
          ? 'the ticket has expired'
          : 'the ticket belongs to a session that has ended',
    );
  }
}

export type AppAuthProblem = 'unknown_app' | 'wrong_secret';

export class AppAuthError extends HeraldError {
  override readonly name = 'AppAuthError';
  declare readonly code: AppAuthProblem;
  constructor(readonly problem: AppAuthProblem) {
    super(problem, problem === 'unknown_app' ? 'unknown app' : 'wrong app secret');
  }
}

/** What tickets read of the apps read model (implemented by projections/apps.ts). */
export interface AppSecrets {
  /** The app's current secret hash, or undefined for an app the read model does not know (yet). */
  secretHash(appId: string): Promise<string | undefined>;
}

/** The ticket key every node shares when none is configured (implemented by projections/settings.ts). */
export interface KeptTicketKey {
  /** The key kept for every node; `candidate` becomes it when none is kept yet (the first start). */
  keep(candidate: string): Promise<string>;
}

const ROLE_PATTERN = new RegExp(`^[A-Za-z0-9_.:-]{1,${TICKET_LIMITS.roleLength}}$`);
const APP_SECRET_CACHE_MS = 1000;
const MAX_CACHED_APPS = 10_000;
const MAX_CACHED_TICKETS = 10_000;

interface Payload {
  v: 1;
  tid: string;
  app: string;
  sub: string;
  roles: string[];
  iat: number;
  exp: number;
  /** Fingerprint of the app's secret hash at issue time. */
  sf: string;
}

export class Tickets {
  private constructor(
    private readonly key: Buffer,
    private readonly ttlSeconds: number,
    private readonly store: EventStore,
    private readonly apps: AppSecrets,
  ) {}

  /**
   * Fingerprints of current app secrets, so authenticating a request costs no round trip. An entry is
   * trusted for APP_SECRET_CACHE_MS: a changed secret ends the old sessions within that time.
   */
  private readonly currentSecrets = new Map<string, { fingerprint: string; checkedAt: number }>();
  /**
   * The last secret verified per app (its SHA-256, next to the hash it matched): a back-end service
   * presenting it again while the app's secret is unchanged costs no scrypt.
   */
  private readonly verifiedSecrets = new Map<string, { secretHash: string; digest: Buffer }>();
  /**
   * Tickets whose signature has been verified, with their claims: a client sends the same ticket with
   * every request, and its HMAC, base64 and JSON need checking once. Only the signature is cached:
   * expiry and the app's secret are checked on every request as before. An entry goes when its ticket
   * is presented after expiry, or, at the bound, oldest first: memory is bounded either way.
   */
  private readonly verifiedTickets = new Map<string, { payload: Payload; viewer: Viewer }>();
  /** Reads of an app's current secret in flight (currentSecretHash). */
  private readonly secretReads = new Map<string, Promise<string | undefined>>();

  /** Uses `configuredSecret` when given; otherwise the key kept in the database (made on first start). */
  static async open(options: {
    store: EventStore;
    keptKey: KeptTicketKey;
    apps: AppSecrets;
    ttlSeconds: number;
    configuredSecret?: string;
  }): Promise<Tickets> {
    const secret = options.configuredSecret || (await options.keptKey.keep(randomBytes(32).toString('base64url')));
    return new Tickets(Buffer.from(secret, 'utf8'), options.ttlSeconds, options.store, options.apps);
  }

  /**
   * Checks the app's credentials against its event stream (strongly consistent: a just-registered app
   * works at once), then signs a ticket and records TicketIssued.
   */
  async issue(request: {
    appId: string;
    secret: string;
    userId: string;
    roles: readonly string[];
    now: Date;
  }): Promise<{ ticket: string; viewer: Viewer }> {
    // Not even the form of an app id (NUL, spaces, too long): no such app, and no store read with it.
    if (!AppId.is(request.appId)) throw new AppAuthError('unknown_app');
    const { state } = await loadState(this.store, appAggregate, appStreamName(request.appId));
    if (state.status !== 'registered') throw new AppAuthError('unknown_app');
    await this.checkSecret(request.appId, request.secret, state.secretHash);

    const ticketId = randomUUID();
    // Rounded up, so a ticket is never valid for less than the configured time.
    const iat = Math.ceil(request.now.getTime() / 1000);
    const payload: Payload = {
      v: 1,
      tid: ticketId,
      app: request.appId,
      sub: request.userId,
      roles: [...request.roles],
      iat,
      exp: iat + this.ttlSeconds,
      sf: fingerprint(state.secretHash),
    };
    const viewer = toViewer(payload);
    await handleCommand(
      this.store,
      ticketAggregate,
      ticketStreamName(ticketId),
      {
        type: 'IssueTicket',
        ticketId,
        appId: viewer.appId,
        userId: viewer.userId,
        roles: viewer.roles,
        issuedAt: request.now.toISOString(),
        expiresAt: viewer.expiresAt,
      },
      { appId: viewer.appId, actor: `user:${viewer.userId}` },
    );
    return { ticket: this.sign(payload), viewer };
  }

  /**
   * A back-end service's credentials (datahub's topics): the app's id and secret. Checked on the apps
   * read model; an app it does not know (yet) is looked up on the app's stream, as in `issue`.
   */
  async authenticateApp(appId: string, secret: string): Promise<void> {
    if (!AppId.is(appId)) throw new AppAuthError('unknown_app');
    let secretHash = await this.apps.secretHash(appId);
    if (secretHash === undefined) {
      const { state } = await loadState(this.store, appAggregate, appStreamName(appId));
      if (state.status !== 'registered') throw new AppAuthError('unknown_app');
      secretHash = state.secretHash;
    }
    await this.checkSecret(appId, secret, secretHash);
  }

  /** Whether the app is registered (its stream decides when the read model does not know it yet). */
  async isRegisteredApp(appId: string): Promise<boolean> {
    if (!AppId.is(appId)) return false;
    if ((await this.apps.secretHash(appId)) !== undefined) return true;
    const { state } = await loadState(this.store, appAggregate, appStreamName(appId));
    return state.status === 'registered';
  }

  /**
   * A key for another purpose (device ids, device tokens), derived from the ticket key: the same on
   * every node, and not the ticket key itself.
   */
  derivedKey(purpose: string): Buffer {
    return createHmac('sha256', this.key).update(`herald:${purpose}`).digest();
  }

  private async checkSecret(appId: string, secret: string, secretHash: string): Promise<void> {
    const digest = createHash('sha256').update(secret).digest();
    const verified = this.verifiedSecrets.get(appId);
    if (verified && verified.secretHash === secretHash && timingSafeEqual(verified.digest, digest)) return;
    if (!(await verifyAppSecret(appId, secret, secretHash))) throw new AppAuthError('wrong_secret');
    if (this.verifiedSecrets.size >= MAX_CACHED_APPS) this.verifiedSecrets.clear();
    this.verifiedSecrets.set(appId, { secretHash, digest });
  }

  /** Verifies signature and expiry, then that the app still has the secret the ticket was issued under. */
  async authenticate(ticket: string, now: Date): Promise<Viewer> {
    const { payload, viewer } = this.verifiedTickets.get(ticket) ?? this.verify(ticket);
    if (payload.exp * 1000 <= now.getTime()) {
      this.verifiedTickets.delete(ticket);
      throw new TicketError('expired');
    }
    if (!(await this.isCurrentSecret(payload.app, payload.sf, now))) throw new TicketError('revoked');
    return viewer;
  }

  /** The ticket's signature verified (else TicketError), its claims kept for its next request. */
  private verify(ticket: string): { payload: Payload; viewer: Viewer } {
    const payload = this.verifySignature(ticket);
    // Frozen: one viewer now serves every request of the ticket.
    const viewer = Object.freeze({ ...toViewer(payload), roles: Object.freeze([...payload.roles]) });
    const verified = { payload, viewer };
    if (this.verifiedTickets.size >= MAX_CACHED_TICKETS)
      this.verifiedTickets.delete(this.verifiedTickets.keys().next().value!);
    this.verifiedTickets.set(ticket, verified);
    return verified;
  }

  /** Checked on the apps read model; a refusal is confirmed on the app's stream, as the read model may lag. */
  private async isCurrentSecret(appId: string, secretFingerprint: string, now: Date): Promise<boolean> {
    const cached = this.currentSecrets.get(appId);
    if (cached && cached.fingerprint === secretFingerprint && now.getTime() - cached.checkedAt < APP_SECRET_CACHE_MS)
      return true;
    const secretHash = await this.currentSecretHash(appId);
    if (secretHash !== undefined && fingerprint(secretHash) === secretFingerprint) {
      if (this.currentSecrets.size >= MAX_CACHED_APPS) this.currentSecrets.clear();
      this.currentSecrets.set(appId, { fingerprint: secretFingerprint, checkedAt: now.getTime() });
      return true;
    }
    const { state } = await loadState(this.store, appAggregate, appStreamName(appId));
    return state.status === 'registered' && fingerprint(state.secretHash) === secretFingerprint;
  }

  /**
   * The app's secret hash on the read model; requests that miss the cache together share one read (at
   * 64 concurrent requests, each second's expiry otherwise sent dozens of identical queries).
   */
  private currentSecretHash(appId: string): Promise<string | undefined> {
    let read = this.secretReads.get(appId);
    if (read === undefined) {
      read = this.apps.secretHash(appId).finally(() => this.secretReads.delete(appId));
      this.secretReads.set(appId, read);
    }
    return read;
  }

  private sign(payload: Payload): string {
    const body = Buffer.from(JSON.stringify(payload)).toString('base64url');
    return `${body}.${this.mac(body)}`;
  }

  private verifySignature(ticket: string): Payload {
    const [body, signature, extra] = ticket.split('.');
    if (!body || !signature || extra !== undefined || ticket.length > TICKET_LIMITS.ticketLength)
      throw new TicketError('malformed');
    const expected = Buffer.from(this.mac(body));
    const actual = Buffer.from(signature);
    if (expected.length !== actual.length || !timingSafeEqual(expected, actual)) throw new TicketError('malformed');
    let payload: Payload;
    try {
      payload = JSON.parse(Buffer.from(body, 'base64url').toString('utf8')) as Payload;
    } catch {
      throw new TicketError('malformed');
    }
    if (payload.v !== 1) throw new TicketError('malformed');
    return payload;
  }

  private mac(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}

export function validRoles(roles: readonly string[]): boolean {
  return roles.length <= TICKET_LIMITS.roles && roles.every((r) => ROLE_PATTERN.test(r));
}

function toViewer(payload: Payload): Viewer {
  return {
    ticketId: payload.tid,
    appId: payload.app,
    userId: payload.sub,
    roles: payload.roles,
    expiresAt: new Date(payload.exp * 1000).toISOString(),
  };
}

function fingerprint(secretHash: string): string {
  return createHash('sha256').update(secretHash).digest('base64url').slice(0, 12);
}
