import { DomainError } from '../../domain/decider';
import { deliveryStreamName, isOpen } from '../../domain/device/delivery';
import { deviceStreamName } from '../../domain/device/device';
import {
  platformPushStreamName,
  type PlatformPushCommand,
  type PlatformPushServiceName,
  type PlatformPushState,
} from '../../domain/device/platformPush';
import type { PushMessage } from '../../domain/device/push';
import { deliveryAggregate, deviceAggregate, platformPushAggregate } from '../command/aggregates';
import { handleCommand, loadState, newStream } from '../command/commandHandler';
import type { Presence } from '../devices/presence';
import type { EventStore } from '../eventStore/eventStore';
import type { Metrics } from '../nodes/metrics';
import { BackgroundLoop } from '../runtime/backgroundLoop';
import type { Clock } from '../runtime/clock';
import { DueWork } from '../runtime/dueWork';
import type { Logger } from '../runtime/logger';
import { outboxWork } from '../runtime/outbox';
import type { Service } from '../runtime/services';
import type { PlatformPushService } from './platformPush';

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
export type PushedPlatform = 'IOS' | 'ANDROID';
const SERVICE_OF = { IOS: 'apns', ANDROID: 'fcm' } as const satisfies Record<PushedPlatform, PlatformPushServiceName>;
const PLATFORM_OF = { apns: 'IOS', fcm: 'ANDROID' } as const satisfies Record<PlatformPushServiceName, PushedPlatform>;

export interface PlatformPushItemKey {
  readonly pushId: string;
  readonly deviceId: string;
  readonly appId: string;
}

/** What the workers read (implemented by projections/platformPushes.ts). */
export interface PlatformPushQueries {
  /** Open deliveries that may need one, to the platforms' devices of the apps given for each. */
  candidates(
    apps: Readonly<Record<PushedPlatform, readonly string[]>>,
    now: Date,
    limit: number,
  ): Promise<readonly PlatformPushCandidate[]>;
  due(now: Date, limit: number): Promise<readonly PlatformPushItemKey[]>;
  nextAttemptAt(): Promise<Date | undefined>;
  /** The push's message and whether the device must confirm it. */
  messageOf(pushId: string): Promise<{ message: PushMessage; needsConfirm: boolean } | undefined>;
  statusOf(
    pushId: string,
    deviceId: string,
  ): Promise<{ status: string; attempts: number; lastError: string | null } | undefined>;
}

/** One attempt's bound: Apple answers in milliseconds; a stalled connection fails the attempt (retried). */
export const PLATFORM_PUSH_TIMEOUT_MS = 10_000;
/** How often the trigger looks for offline devices when nothing wakes it. */
const TRIGGER_WAIT_MS = 500;
/** Candidates per look, and requests appended at once. */
const TRIGGER_PAGE = 1000;
const TRIGGER_CONCURRENCY = 32;

type Outcome =
  | { readonly ok: true }
  | { readonly ok: false; readonly error: string; readonly retry: boolean; readonly retryAfterMs?: number };

/** Pushes' messages kept in memory: a push to ALL is thousands of items of one message, which never changes. */
const MAX_CACHED_MESSAGES = 256;

export class PlatformPushes implements Service {
  readonly name = 'platform pushes';
  private readonly messages = new Map<string, { message: PushMessage; needsConfirm: boolean }>();
  /** Looks for deliveries that need a platform push, a page at a time. */
  private readonly trigger = new BackgroundLoop(() => this.runTrigger());
  private readonly sender: DueWork<PlatformPushItemKey>;

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
    },
  ) {
    const { store, queries, clock, log } = deps;
    this.sender = new DueWork<PlatformPushItemKey>(
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
          keyOf: (item) => item.appId,
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
   * One page of candidates (a scan of the app's open deliveries, so a page is large and a send to ALL costs
   * a few scans, not one per device): presence asked once for the page, the requests appended side by
   * side, then the read model awaited once so the next page does not find them again. Answers whether to
   * look again at once (the page was full and requested something).
   */
  private async requestPage(): Promise<boolean> {
    const { store, queries, presence, clock, log } = this.deps;
    const candidates = await queries.candidates(await this.deps.appsWith(), clock(), TRIGGER_PAGE);
    const unwritten = candidates.filter((c) => c.attempts === 0).map((c) => c.deviceId);
    // Never written: only for a device connected to no node (a connected one is being written to).
    const online = unwritten.length > 0 ? await presence.onlineAmong(unwritten) : new Set<string>();
    const due = candidates.filter((c) => c.attempts > 0 || !online.has(c.deviceId));
    let last: bigint | undefined;
    let next = 0;
    const request = async () => {
      for (let i = next++; i < due.length && this.trigger.running; i = next++) {
        const c = due[i]!;
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
              now: clock().toISOString(),
            },
            { appId: c.appId, actor: 'herald:platform-push' },
            // Not requested yet as far as the read model knows: appended without a read (a conflict reads it).
            newStream(platformPushAggregate),
          );
          if (result.position !== undefined && (last === undefined || result.position > last)) last = result.position;
        } catch (error) {
          log.error({ err: error, appId: c.appId, pushId: c.pushId }, 'requesting a platform push failed; retried');
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(TRIGGER_CONCURRENCY, due.length) }, request));
    if (last === undefined) return false;
    this.sender.wake();
    await this.deps.readYourWrites(last);
    return candidates.length === TRIGGER_PAGE;
  }

  private async messageOf(pushId: string): Promise<{ message: PushMessage; needsConfirm: boolean }> {
    const cached = this.messages.get(pushId);
    if (cached) return cached;
    const push = await this.deps.queries.messageOf(pushId);
    if (!push) throw new Error('the push is not in the read model yet');
    if (this.messages.size >= MAX_CACHED_MESSAGES) this.messages.delete(this.messages.keys().next().value!);
    this.messages.set(pushId, push);
    return push;
  }

  private async attempt(
    state: Exclude<PlatformPushState, { status: 'none' }>,
    signal: AbortSignal,
  ): Promise<Outcome & { readonly revoked?: boolean }> {
    const { store, clock } = this.deps;
    // Another message found the token dead since this one was requested: not sent to it again.
    const device = await loadState(store, deviceAggregate, deviceStreamName(state.deviceId));
    if (
      device.state.status !== 'registered' ||
      device.state.registration !== state.registration ||
      device.state.tokenRevoked
    )
      return { ok: false, error: 'NativeTokenRevoked: the device has no live token for it', retry: false };
    const push = await this.messageOf(state.pushId);
    const { message } = push;
    if (message.kind !== 'onepush') return { ok: false, error: 'not a ONE-PUSH message', retry: false };
    // A retry (up to an hour later) after the device got it over its socket (confirmed, or written when no
    // confirmation is needed), or after it expired or was dropped, is not sent.
    // A delivery removed by retention ended long ago (its read model row was pruned first): final, not sent.
    const delivery = await loadState(store, deliveryAggregate, deliveryStreamName(state.pushId, state.deviceId)).catch(
      (error: unknown) => {
        if (error instanceof DomainError && error.code === 'not_found') return undefined;
        throw error;
      },
    );
    if (!delivery) return { ok: false, error: 'AlreadyEnded: the delivery was removed by retention', retry: false };
    if (!isOpen(delivery.state.status, push.needsConfirm))
      return { ok: false, error: `AlreadyDelivered: the delivery is ${delivery.state.status}`, retry: false };
    const outcome = await this.deps.services[state.service].send(
      {
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
      },
      signal,
    );
    if (outcome.ok) return outcome;
    // Revoked unless the decider found the 410 older than the device's registration.
    const revoked =
      outcome.tokenDead &&
      (
        await handleCommand(
          store,
          deviceAggregate,
          deviceStreamName(state.deviceId),
          {
            type: 'RevokeNativeToken',
            registration: state.registration,
            service: state.service,
            reason: outcome.reason,
            ...(outcome.deadSince !== undefined && { deadSince: outcome.deadSince }),
            now: clock().toISOString(),
          },
          { appId: state.appId, actor: 'herald:platform-push' },
        )
      ).events.length > 0;
    return {
      ok: false,
      error: outcome.reason,
      retry: outcome.retry,
      revoked,
      ...(outcome.retryAfterMs !== undefined && { retryAfterMs: outcome.retryAfterMs }),
    };
  }
}
