import { isOpen, type DeliveryStatus } from '../../domain/device/delivery';
import { deviceStreamName, isKoalaBrowserOf } from '../../domain/device/device';
import {
  platformPushStreamName,
  type PlatformPushCommand,
  type PlatformPushServiceName,
  type PlatformPushState,
} from '../../domain/device/platformPush';
import type { PushMessage } from '../../domain/device/push';
import { requestedEndpoint } from '../../domain/device/webPushSubscription';
import { deviceAggregate, platformPushAggregate } from '../command/aggregates';
import { handleCommand, loadState, newStream, type LoadedStream } from '../command/commandHandler';
import type { Presence } from '../devices/presence';
import type { EventStore } from '../eventStore/eventStore';
import type { Metrics } from '../nodes/metrics';
import { BackgroundLoop } from '../runtime/backgroundLoop';
import { Batcher } from '../runtime/batcher';
import type { Clock } from '../runtime/clock';
import { DueWork } from '../runtime/dueWork';
import type { Logger } from '../runtime/logger';
import { outboxWork } from '../runtime/outbox';
import type { Service } from '../runtime/services';
import type { KoalaWebPushes } from './koalaWebPushes';
import type { PlatformNotification, PlatformPushService } from './platformPush';

/**
 * Platform pushes on the leader (docs/platform-push.md): two workers over the platform-push read model
 * (projections/platformPushes.ts).
 *
 * - The trigger finds open ONE-PUSH deliveries to IOS devices of apps with APNs credentials and ANDROID
 *   devices of apps with an FCM service account that need one — never written and the device connected to
 *   no node (presence), or a needConfirm message unconfirmed when its first re-send fell due, connected or
 *   not — and requests it on the item's stream (PlatformPushRequested, once per
 *   message and device whatever the re-sends, restarts or leaders).
 * - The outbox (src/runtime/outbox.ts) sends what is requested, side by side and bounded per app, each
 *   attempt with a timeout; records PlatformPushSent or PlatformPushFailed (the service's reason), retried
 *   with back-off while the message lives; a token the service calls dead is revoked on the device's
 *   stream (NativeTokenRevoked) and used for no later message until the device registers again.
 *
 * The socket path is untouched: a device that reconnects still gets its backlog; a message that reached
 * it both ways has the same `messageId`.
 */

/** An open delivery that may need a platform push (read from the read models). */
export interface PlatformPushCandidate {
  readonly pushId: string;
  readonly deviceId: string;
  readonly appId: string;
  /** Attempts over the socket: 0 = never written; ≥ 1 = written, unconfirmed when its re-send fell due. */
  readonly attempts: number;
  readonly nativeToken: string;
  readonly registration: number;
  readonly expiresAt: string;
  readonly platform: PushedPlatform;
}

/** The platforms with a push service, and theirs. */
export type PushedPlatform = 'IOS' | 'ANDROID' | 'WEB';
const SERVICE_OF = { IOS: 'apns', ANDROID: 'fcm', WEB: 'webpush' } as const satisfies Record<
  PushedPlatform,
  PlatformPushServiceName
>;
const PLATFORM_OF = { apns: 'IOS', fcm: 'ANDROID', webpush: 'WEB' } as const satisfies Record<
  PlatformPushServiceName,
  PushedPlatform
>;

/** A delivery's place in push order (its push's position, then its device). */
export interface DeliveryKey {
  readonly position: string;
  readonly deviceId: string;
}

export interface PlatformPushItemKey {
  readonly pushId: string;
  readonly deviceId: string;
  readonly appId: string;
}

/** A requested item as the sender takes it: its service too (the sends in flight are bounded per app and service). */
export interface PlatformPushWork extends PlatformPushItemKey {
  readonly service: PlatformPushServiceName;
}

/** Whether a requested item may still be sent, as the read models show it now. */
export interface Sendability {
  /** The device is registered with the registration the item was requested for, its token not revoked. */
  readonly tokenLive: boolean;
  /** The delivery as the devices read model shows it; undefined once it is gone (ended and pruned). */
  readonly delivery: { readonly status: DeliveryStatus; readonly needsConfirm: boolean } | undefined;
}

/** What the workers read (implemented by projections/platformPushes.ts). */
export interface PlatformPushQueries {
  /**
   * Open deliveries that may need one, to the platforms' devices of the apps given for each: the
   * never-written ones of a window of `limit` deliveries in push order after `tail` (from the start when
   * undefined), of one of `limit` before `sweep.before` going back (from the newest when undefined; none
   * without `sweep`) and of `again`; and up to `limit` attempted needConfirm ones unconfirmed past their
   * first re-send. `tailThrough`/`sweepThrough`: where the windows ended (the next look's); `tailFull`: the
   * tail's or the unconfirmed part was full; `sweepDone`: the sweep reached the oldest.
   */
  candidates(
    apps: Readonly<Record<PushedPlatform, readonly string[]>>,
    now: Date,
    limit: number,
    windows: {
      readonly tail: DeliveryKey | undefined;
      readonly sweep: { readonly before: DeliveryKey | undefined } | undefined;
    },
    again: readonly PlatformPushItemKey[],
  ): Promise<{
    readonly candidates: readonly PlatformPushCandidate[];
    readonly tailThrough: DeliveryKey | undefined;
    readonly sweepThrough: DeliveryKey | undefined;
    readonly tailFull: boolean;
    readonly sweepDone: boolean;
  }>;
  /** The newest never-written delivery (where a new leader's tail begins). */
  latestDelivery(): Promise<DeliveryKey | undefined>;
  due(now: Date, limit: number): Promise<readonly PlatformPushWork[]>;
  nextAttemptAt(): Promise<Date | undefined>;
  /** The push's message and whether the device must confirm it. */
  messageOf(pushId: string): Promise<{ message: PushMessage; needsConfirm: boolean } | undefined>;
  statusOf(
    pushId: string,
    deviceId: string,
  ): Promise<{ status: string; attempts: number; lastError: string | null } | undefined>;
  /** For each item, in order: whether it may still be sent (one query for many items). */
  sendability(
    items: ReadonlyArray<{ readonly pushId: string; readonly deviceId: string; readonly registration: number }>,
  ): Promise<readonly Sendability[]>;
}

/** One attempt's bound: Apple answers in milliseconds; a stalled connection fails the attempt (retried). */
export const PLATFORM_PUSH_TIMEOUT_MS = 10_000;
/** How often the trigger looks for offline devices when nothing wakes it. */
const TRIGGER_WAIT_MS = 500;
/**
 * Candidates per look, their requests appended at once: the store commits concurrent appends together
 * (PostgreSQL: up to 256 streams in one statement and transaction, each with its expected revision), so a
 * page is a few commits, not a thousand.
 */
const TRIGGER_PAGE = 1000;
/**
 * Never-written deliveries looked at again by each look: passed over while their devices were connected, or
 * their request failed (beyond it: found by the sweep).
 */
const MAX_LOOKED_AGAIN = TRIGGER_PAGE;
/** Requests appended at once (the store commits up to 256 streams a statement; more only queue). */
const REQUESTS_AT_ONCE = 256;
/** Devices whose token this leader revoked, until the read model shows it (bounded; oldest dropped). */
const MAX_REVOKED_HERE = 10_000;
/**
 * Attempts in flight per app and service: one APNs connection's streams (apns.ts, DEFAULT_MAX_STREAMS; the
 * adapter waits for a free stream past Apple's own bound), so a send to ALL keeps the connection full; and
 * in all, so two apps' floods still leave room for a third.
 */
const SENDS_PER_DESTINATION = 500;
const SENDS_IN_FLIGHT = 1000;
/** Items this node requested and has not attempted yet, kept with their stream's state (bounded). */
const MAX_KNOWN_REQUESTS = 20_000;

type Outcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: string; readonly retry: boolean; readonly retryAfterMs?: number };

/** Pushes' messages kept in memory: a push to ALL is thousands of items of one message, which never changes. */
const MAX_CACHED_MESSAGES = 256;

export class PlatformPushes implements Service {
  readonly name = 'platform pushes';
  /** A push's message once asked for: the first attempts of a send to ALL share one query. */
  private readonly messages = new Map<string, Promise<{ message: PushMessage; needsConfirm: boolean }>>();
  /**
   * The streams of the items this node just requested, as its appends left them: their first attempt reads
   * no stream (a send to ALL is thousands of first attempts). Taken by that attempt; past the bound, or
   * after a restart, the attempt reads the stream.
   */
  private readonly requested = new Map<string, LoadedStream<PlatformPushState>>();
  /** The attempts' checks of the device and the delivery, many in one query. */
  private readonly sendability: Batcher<
    { readonly pushId: string; readonly deviceId: string; readonly registration: number },
    Sendability
  >;
  /** Looks for deliveries that need a platform push, a page at a time. */
  private readonly trigger = new BackgroundLoop(() => this.runTrigger());
  /**
   * Two cursors over the never-written deliveries in push order. The tail: where the next look at those
   * pushed since starts (after it); never moved back while leading, so new pushes are never starved by
   * old ones; undefined until the first look of a lead reads the newest. The sweep: walks back from the
   * newest to the oldest, one window a look while the tail is not full, and begins again at the top; it
   * finds what the tail passed over that became due since (a device subscribing again, an app setting its
   * credentials: the sweep begins again at once) or that was pushed before this node led.
   */
  private tail: { readonly through: DeliveryKey | undefined } | undefined;
  private sweep: { readonly before: DeliveryKey | undefined } = { before: undefined };
  private tailWasFull = false;
  /**
   * Never-written deliveries the last look passed over because their devices were connected or their
   * request failed: looked at again by the next (a device that goes away before anything is written to it
   * is pushed at once), until they are written, requested or over.
   */
  private lookAgain: PlatformPushItemKey[] = [];
  /**
   * deviceId → registration whose token this leader revoked and the read model does not show yet: an
   * attempt for another message to the device checks it too (the read model lagging, it would be sent to
   * the dead token). Forgotten once shown: a registration anew (the same number) clears it there.
   */
  private readonly revokedHere = new Map<string, number>();
  private appsLookedAt = '';
  private readonly sender: DueWork<PlatformPushWork>;

  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly queries: PlatformPushQueries;
      readonly presence: Presence;
      /** The adapters by service: APNs (IOS), FCM (ANDROID); Web Push joins them. */
      readonly services: Readonly<Record<PlatformPushServiceName, PlatformPushService>>;
      /** Apps with each platform's credentials: only their devices of that platform are looked at. */
      readonly appsWith: () => Promise<Readonly<Record<PushedPlatform, readonly string[]>>>;
      readonly clock: Clock;
      readonly log: Logger;
      readonly metrics?: Metrics;
      /** Resolves once the platform-push read model shows this position. */
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
      readonly attemptTimeoutMs?: number;
      /** Koala's messages to users' browsers (an item with a `userId`): what to send, or why not. */
      readonly koala?: Pick<KoalaWebPushes, 'notificationOf'>;
    },
  ) {
    const { store, queries, clock, log } = deps;
    this.sendability = new Batcher((items) => queries.sendability(items));
    this.sender = new DueWork<PlatformPushWork>(
      outboxWork(
        {
          store,
          clock,
          log,
          pending: { due: queries.due, nextAttemptAt: queries.nextAttemptAt },
          readYourWrites: deps.readYourWrites,
        },
        {
          doing: 'sending a platform push',
          actor: 'herald:platform-push',
          aggregate: platformPushAggregate,
          streamOf: (item) => platformPushStreamName(item.pushId, item.deviceId),
          idOf: (item) => `${item.pushId}/${item.deviceId}`,
          // One APNs connection per app (FCM's, Web Push's apart): an app's APNs flood leaves its FCM sends room.
          keyOf: (item) => `${item.appId}/${item.service}`,
          maxInFlight: SENDS_IN_FLIGHT,
          maxInFlightPerKey: SENDS_PER_DESTINATION,
          known: (item) => {
            const id = `${item.pushId}/${item.deviceId}`;
            const known = this.requested.get(id);
            this.requested.delete(id);
            return known;
          },
          attemptTimeoutMs: deps.attemptTimeoutMs ?? PLATFORM_PUSH_TIMEOUT_MS,
          maxWaitMs: 1000,
          attempt: (state, signal) => this.attempt(state, signal),
          record: (outcome, attempt, now): PlatformPushCommand => ({
            type: 'RecordPlatformPushAttempt',
            attempt,
            // A throw or a timeout (the network) is worth another try.
            outcome: outcome.ok
              ? outcome
              : {
                  ok: false,
                  error: outcome.error,
                  retry: 'retry' in outcome ? outcome.retry : true,
                  ...('retryAfterMs' in outcome && outcome.retryAfterMs !== undefined
                    ? { retryAfterMs: outcome.retryAfterMs }
                    : {}),
                },
            now,
          }),
          describe: (error) => (error instanceof Error ? error.message : String(error)),
          logOutcome: (state, attempt, outcome) => {
            const platform = PLATFORM_OF[state.service];
            const counted = outcome.ok
              ? 'sent'
              : 'revoked' in outcome && outcome.revoked
                ? 'revoked'
                : 'retry' in outcome && !outcome.retry
                  ? 'failed'
                  : 'retried';
            deps.metrics?.platformPushes.inc({ platform, outcome: counted });
            // The token is the device's credential: not logged.
            if (!outcome.ok)
              log.warn(
                { appId: state.appId, pushId: state.pushId, deviceId: state.deviceId, attempt, error: outcome.error },
                'platform push: not sent',
              );
          },
        },
      ),
    );
  }

  start(): void {
    // Leading anew: every open delivery is looked at once; what this node knew of its requests' streams
    // may be out of date (another node led meanwhile), so they are read.
    this.tail = undefined;
    this.sweep = { before: undefined };
    this.lookAgain = [];
    this.requested.clear();
    this.revokedHere.clear();
    this.trigger.start();
    this.sender.start();
  }

  async stop(): Promise<void> {
    await this.trigger.stop();
    await this.sender.stop();
  }

  /** Look now (a push was made; a test moved the clock). */
  wake(): void {
    this.trigger.wake();
    this.sender.wake();
  }

  private async runTrigger(): Promise<void> {
    while (this.trigger.running) {
      let full = false;
      try {
        full = await this.requestPage();
      } catch (error) {
        this.deps.log.error({ err: error }, 'looking for devices that need a platform push failed; retrying');
      }
      if (!full) await this.trigger.wait(TRIGGER_WAIT_MS);
    }
  }

  /**
   * One look (PlatformPushQueries.candidates: a window after the tail, one of the sweep, so a send to ALL
   * costs a few looks, not one per device): presence asked once, the requests appended together (committed
   * together), then the read model awaited once so the next look does not find them again, and the requested
   * items handed to the sender. The cursors move only once that is done (a throw leaves them for the next
   * look; a failed request is looked at again). Answers whether to look again at once (a part was full).
   */
  private async requestPage(): Promise<boolean> {
    const { store, queries, presence, clock, log } = this.deps;
    const apps = await this.deps.appsWith();
    const appsNow = JSON.stringify(apps);
    // An app that set its credentials has its open messages sent: the sweep begins again at the newest.
    const sweep = appsNow !== this.appsLookedAt ? { before: undefined } : this.sweep;
    const tail = this.tail ?? { through: await queries.latestDelivery() };
    const sweeping = !this.tailWasFull;
    const look = await queries.candidates(
      apps,
      clock(),
      TRIGGER_PAGE,
      { tail: tail.through, sweep: sweeping ? sweep : undefined },
      this.lookAgain,
    );
    const candidates = [...new Map(look.candidates.map((c) => [`${c.pushId}/${c.deviceId}`, c])).values()];
    const unwritten = candidates.filter((c) => c.attempts === 0).map((c) => c.deviceId);
    // Never written: only for a device connected to no node (a connected one is being written to).
    const online = unwritten.length > 0 ? await presence.onlineAmong(unwritten) : new Set<string>();
    const due = candidates.filter((c) => c.attempts > 0 || !online.has(c.deviceId));
    const now = clock().toISOString();
    const failed: PlatformPushItemKey[] = [];
    const requested: Array<PlatformPushWork & { position?: bigint }> = [];
    for (let i = 0; i < due.length; i += REQUESTS_AT_ONCE)
      await Promise.all(
        due.slice(i, i + REQUESTS_AT_ONCE).map(async (c) => {
          const key = { pushId: c.pushId, deviceId: c.deviceId, appId: c.appId };
          try {
            const result = await handleCommand(
              store,
              platformPushAggregate,
              platformPushStreamName(c.pushId, c.deviceId),
              {
                type: 'RequestPlatformPush',
                pushId: c.pushId,
                deviceId: c.deviceId,
                appId: c.appId,
                service: SERVICE_OF[c.platform],
                nativeToken: c.nativeToken,
                registration: c.registration,
                why: c.attempts === 0 ? 'offline' : 'unconfirmed',
                expiresAt: c.expiresAt,
                now,
              },
              { appId: c.appId, actor: 'herald:platform-push' },
              // Not requested yet as far as the read model knows: appended without a read (a conflict reads it).
              newStream(platformPushAggregate),
            );
            if (result.events.length > 0 && this.requested.size < MAX_KNOWN_REQUESTS)
              this.requested.set(`${c.pushId}/${c.deviceId}`, {
                state: result.state,
                revision: result.revision,
                ...(result.position !== undefined && { position: result.position }),
              });
            requested.push({
              ...key,
              service: SERVICE_OF[c.platform],
              ...(result.position !== undefined && { position: result.position }),
            });
          } catch (error) {
            log.error({ err: error, appId: c.appId, pushId: c.pushId }, 'requesting a platform push failed; retried');
            if (c.attempts === 0) failed.push(key);
          }
        }),
      );
    let last: bigint | undefined;
    for (const r of requested)
      if (r.position !== undefined && (last === undefined || r.position > last)) last = r.position;
    if (last !== undefined) await this.deps.readYourWrites(last);
    // The look's work is done: the cursors move past its windows.
    const tailMoved = look.tailThrough !== tail.through;
    this.tail = { through: look.tailThrough };
    this.sweep = !sweeping ? sweep : { before: look.sweepDone ? undefined : look.sweepThrough };
    this.appsLookedAt = appsNow;
    this.tailWasFull = look.tailFull;
    this.lookAgain = [
      ...failed,
      ...candidates
        .filter((c) => c.attempts === 0 && online.has(c.deviceId))
        .map((c) => ({ pushId: c.pushId, deviceId: c.deviceId, appId: c.appId })),
    ].slice(0, MAX_LOOKED_AGAIN);
    // Nothing requested: at once again only if the tail moved on (a window of deliveries none needs).
    if (last === undefined) return look.tailFull && tailMoved;
    // Stepping down: what was requested is left to the next leader's sender (begun here, a stop would abort
    // it unrecorded and the next leader would send it again).
    if (!this.trigger.running) return false;
    // What the read model now shows due: the sender begins it at once, without a look, as far as its bounds allow.
    for (const r of requested) if (this.requested.has(`${r.pushId}/${r.deviceId}`)) this.sender.offer(r);
    this.sender.wake();
    return look.tailFull;
  }

  /** A revocation this leader appended, kept until the read model shows it (then the read model says). */
  private rememberRevoked(deviceId: string, registration: number, position: bigint | undefined): void {
    this.revokedHere.delete(deviceId);
    this.revokedHere.set(deviceId, registration);
    if (this.revokedHere.size > MAX_REVOKED_HERE) this.revokedHere.delete(this.revokedHere.keys().next().value!);
    const forget = () => {
      if (this.revokedHere.get(deviceId) === registration) this.revokedHere.delete(deviceId);
    };
    this.deps.readYourWrites(position).then(forget, forget);
  }

  private messageOf(pushId: string): Promise<{ message: PushMessage; needsConfirm: boolean }> {
    const cached = this.messages.get(pushId);
    if (cached) return cached;
    const asked = this.deps.queries.messageOf(pushId).then((push) => {
      if (!push) throw new Error('the push is not in the read model yet');
      return push;
    });
    if (this.messages.size >= MAX_CACHED_MESSAGES) this.messages.delete(this.messages.keys().next().value!);
    this.messages.set(pushId, asked);
    // Not found (or the query failed): asked again by the next attempt.
    asked.catch(() => {
      if (this.messages.get(pushId) === asked) this.messages.delete(pushId);
    });
    return asked;
  }

  private async attempt(
    state: Exclude<PlatformPushState, { status: 'none' }>,
    signal: AbortSignal,
  ): Promise<Outcome & { readonly revoked?: boolean }> {
    const { store } = this.deps;
    // From the read models, many attempts' in one query (each attempt reading the device's and the
    // delivery's streams was two of the four round trips a push cost).
    const koala = state.userId !== undefined ? { ...state, userId: state.userId } : undefined;
    const [sendable, push] = await Promise.all([
      this.sendability.get({ pushId: state.pushId, deviceId: state.deviceId, registration: state.registration }),
      // A Koala message to a user's browser has no ONE-PUSH push (its message is read below).
      koala ? undefined : this.messageOf(state.pushId),
    ]);
    // Another message found the token dead since this one was requested, or the device registered anew or
    // went away: not sent to it again.
    if (!sendable.tokenLive || this.revokedHere.get(state.deviceId) === state.registration)
      return { ok: false, error: 'NativeTokenRevoked: the device has no live token for it', retry: false };
    // A browser subscription the device dropped (unsubscribeWebPush: a logout on a shared computer) or
    // replaced since this push was requested gets nothing more: not its retries either. Read from the
    // device's stream (the read model may lag a 404/410 just recorded); browsers are not the flood path.
    const endpoint = state.service === 'webpush' ? requestedEndpoint(state.nativeToken) : undefined;
    if (state.service === 'webpush') {
      const device = await loadState(store, deviceAggregate, deviceStreamName(state.deviceId));
      if (
        device.state.status !== 'registered' ||
        device.state.registration !== state.registration ||
        device.state.tokenRevoked
      )
        return { ok: false, error: 'NativeTokenRevoked: the device has no live token for it', retry: false };
      if (!endpoint || device.state.webPush?.endpoint !== endpoint)
        return {
          ok: false,
          error: "SubscriptionReplaced: not the device's browser subscription any more",
          retry: false,
        };
      // A Koala message: only while the browser is still the recipient's own (alias, and given by them).
      if (koala && !isKoalaBrowserOf(device.state, koala.userId))
        return { ok: false, error: "NotTheUsersBrowser: the browser is not the user's any more", retry: false };
    }
    // Koala's messages to users' browsers: their own checks and payload (src/platformPush/koalaWebPushes.ts).
    if (koala) {
      const found = this.deps.koala
        ? await this.deps.koala.notificationOf(koala)
        : ({ ok: false, error: 'not a ONE-PUSH message', retry: false } as const);
      return found.ok ? this.sent(state, endpoint, found.notification, signal) : found;
    }
    if (!push) throw new Error('unreachable: a ONE-PUSH item without its push');
    const { message } = push;
    if (message.kind !== 'onepush') return { ok: false, error: 'not a ONE-PUSH message', retry: false };
    // A retry (up to an hour later) after the device got it over its socket (confirmed, or written when no
    // confirmation is needed), or after it expired or was dropped, is not sent.
    const { delivery } = sendable;
    // No row: retention pruned the delivery (it ended long ago; its row is kept while this push is pending,
    // so only a push left behind meets this) and may have removed its stream: final, nothing sent.
    if (!delivery) return { ok: false, error: 'AlreadyEnded: the delivery was removed by retention', retry: false };
    if (!isOpen(delivery.status, delivery.needsConfirm))
      return { ok: false, error: `AlreadyDelivered: the delivery is ${delivery.status}`, retry: false };
    const notification = {
      messageId: state.pushId,
      appId: state.appId,
      token: state.nativeToken,
      alert: message.alert,
      sound: message.sound,
      badge: message.badge,
      extra: message.extra,
      tenantCode: message.tenantCode,
      pushMsgType: message.pushMsgType,
      needConfirm: push.needsConfirm,
      expiresAt: new Date(state.expiresAt),
    };
    return this.sent(state, endpoint, notification, signal);
  }

  /** Sends through the item's service; a token the service calls dead is revoked on the device's stream. */
  private async sent(
    state: Exclude<PlatformPushState, { status: 'none' }>,
    endpoint: string | undefined,
    notification: PlatformNotification,
    signal: AbortSignal,
  ): Promise<Outcome & { readonly revoked?: boolean }> {
    const { store, clock } = this.deps;
    const outcome = await this.deps.services[state.service].send(notification, signal);
    if (outcome.ok) return outcome;
    // Revoked unless the decider found the 410 older than the device's registration.
    const revocation = outcome.tokenDead
      ? await handleCommand(
          store,
          deviceAggregate,
          deviceStreamName(state.deviceId),
          {
            type: 'RevokeNativeToken',
            registration: state.registration,
            service: state.service,
            reason: outcome.reason,
            ...(outcome.deadSince !== undefined && { deadSince: outcome.deadSince }),
            ...(endpoint !== undefined && { endpoint }),
            now: clock().toISOString(),
          },
          { appId: state.appId, actor: 'herald:platform-push' },
        )
      : undefined;
    const revoked = revocation !== undefined && revocation.events.length > 0;
    // Until the read model shows it (sendability), this node's other attempts for the device check here.
    if (revoked) this.rememberRevoked(state.deviceId, state.registration, revocation.position);
    return {
      ok: false,
      error: outcome.reason,
      retry: outcome.retry,
      revoked,
      ...(outcome.retryAfterMs !== undefined && { retryAfterMs: outcome.retryAfterMs }),
    };
  }
}
