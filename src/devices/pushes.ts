import { randomUUID } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';
import { DomainError } from '../../domain/decider';
import {
  pushDecider,
  pushIdOfSentId,
  pushStreamName,
  PUSH_LIMITS,
  type RequestOnePush,
  type PushState,
  type RequestTopvdnPush,
} from '../../domain/device/push';
import { pushAggregate } from '../command/aggregates';
import { handleCommand, loadState, newStream, type LoadedStream } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import { actorOf, type Sender } from '../identity/sender';
import type { SendAllowance } from '../messaging/messaging';
import type { DeliveryQueries, PushStatus } from './deviceQueries';
import type { Presence } from './presence';

/**
 * Pushing to devices: the one implementation behind ONE-PUSH's /msgpush/send, topvdn's client and
 * server push, and GraphQL's pushToDevices. A push is recorded (PushRequested), and answered once the
 * devices read model has expanded it to its deliveries: the caller's next query sees them, and the
 * connected devices are being written to.
 */

export type OnePushInput = Omit<RequestOnePush, 'type' | 'pushId' | 'appId' | 'now'>;
export type TopvdnPushInput = Omit<RequestTopvdnPush, 'type' | 'pushId' | 'appId' | 'now'>;

/** One push of a request of several was refused: which (0-based), and why. Nothing was pushed. */
export class PushRefusedError extends DomainError {
  constructor(
    readonly index: number,
    cause: DomainError,
  ) {
    super(cause.code, cause.message);
  }
}

export class Pushes {
  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly deliveries: DeliveryQueries;
      readonly presence: Presence;
      readonly sendAllowance: SendAllowance;
      /** Resolves once the devices read model shows the effect of a command at this position. */
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
    },
  ) {}

  async onePush(appId: string, input: OnePushInput, now: Date, by: PushRequester = {}): Promise<{ pushId: string }> {
    const [pushId] = await this.request(
      appId,
      [{ ...input, type: 'RequestOnePush', pushId: pushIdOf(appId, by, 0), appId, now: now.toISOString() }],
      now,
      by,
    );
    if (input.smsMessage) await this.requestSms(pushId!, appId, now);
    return { pushId: pushId! };
  }

  async topvdnPush(
    appId: string,
    input: TopvdnPushInput,
    now: Date,
    by: PushRequester = {},
  ): Promise<{ pushId: string }> {
    const [pushId] = await this.topvdnPushes(appId, [input], now, by);
    return { pushId: pushId! };
  }

  /**
   * Several topvdn messages of one request (proxy push): all refused if one is (PushRefusedError), else
   * all made but those at the `skipped` positions (naming no device of the app), which are checked like
   * the others and not made. Answers every position's push id (a skipped one's is made by no one).
   */
  topvdnPushes(
    appId: string,
    inputs: readonly TopvdnPushInput[],
    now: Date,
    by: PushRequester = {},
    skipped: ReadonlySet<number> = new Set(),
  ): Promise<string[]> {
    return this.request(
      appId,
      inputs.map((input, index) => ({
        ...input,
        type: 'RequestTopvdnPush',
        pushId: pushIdOf(appId, by, index),
        appId,
        now: now.toISOString(),
      })),
      now,
      by,
      skipped,
    );
  }

  /** `pushId` as a UUID or as topvdn's 32 hex digits. */
  status(appId: string, pushId: string): Promise<PushStatus | undefined> {
    return this.deps.deliveries.statusOf(appId, pushIdOfSentId(pushId));
  }

  /**
   * Decides every push before any is recorded or counted against the sender's rate, so a refused one
   * (bad input, or an idempotency key reused for another push) leaves the store as it was. A fresh id
   * names a stream that cannot exist yet, so it is decided without a read; a key's ids may name pushes
   * of an earlier try, which are read: those already made are answered, not made or counted again.
   * Then the new ones are recorded side by side, and answered once the read model shows them all.
   */
  private async request(
    appId: string,
    commands: ReadonlyArray<RequestOnePush | RequestTopvdnPush>,
    now: Date,
    by: PushRequester,
    skipped: ReadonlySet<number> = new Set(),
  ): Promise<string[]> {
    const { store, sendAllowance, readYourWrites } = this.deps;
    const loaded = await Promise.all(
      commands.map((command) =>
        by.idempotencyKey === undefined
          ? newStream(pushAggregate)
          : loadState(store, pushAggregate, pushStreamName(command.pushId)),
      ),
    );
    const decided = commands.map((command, index) => {
      try {
        return pushDecider.decide(command, loaded[index]!.state);
      } catch (error) {
        throw error instanceof DomainError && commands.length > 1 ? new PushRefusedError(index, error) : error;
      }
    });
    const made = (index: number) => !skipped.has(index);
    if (by.sender && decided.some((events, index) => made(index) && events.length > 0))
      sendAllowance.take(by.sender, now);
    const context = { appId, actor: requesterActor(appId, by) };
    // Each decided again on the state just read: a concurrent try of the same request that appended
    // first makes it append nothing.
    const results = await Promise.all(
      commands.flatMap((command, index) =>
        made(index)
          ? [handleCommand(store, pushAggregate, pushStreamName(command.pushId), command, context, loaded[index])]
          : [],
      ),
    );
    await readYourWrites(
      results.reduce<bigint | undefined>(
        (max, r) => (r.position !== undefined && (max === undefined || r.position > max) ? r.position : max),
        undefined,
      ),
    );
    return commands.map((command) => command.pushId);
  }

  /** SmsRequested for the addressed devices with a mobile number that are offline now, a page at a time. */
  private async requestSms(pushId: string, appId: string, now: Date): Promise<void> {
    let after: string | undefined;
    // Read whole once (an earlier try's pages, recognised by their ids), then each page decided on what the
    // last one left: a pass reads the stream once, not once per page.
    let known: LoadedStream<PushState> | undefined;
    for (;;) {
      const addressed = await this.deps.deliveries.addressed(pushId, after, PUSH_LIMITS.smsRecipients);
      if (addressed.length === 0) return;
      after = addressed[addressed.length - 1];
      const online = await this.deps.presence.onlineAmong(addressed);
      const offline = addressed.filter((deviceId) => !online.has(deviceId));
      const recipients = await this.deps.deliveries.mobiles(pushId, offline);
      if (recipients.length > 0) {
        // One command per page, so a retried send (its idempotency key) records each page once.
        const page = { appId, actor: appActor(appId), commandId: `sms/${addressed[0]}` };
        const streamName = pushStreamName(pushId);
        known ??= await loadState(this.deps.store, pushAggregate, streamName);
        const loaded: LoadedStream<PushState> = known;
        const { events, state, revision, position } = await handleCommand(
          this.deps.store,
          pushAggregate,
          streamName,
          { type: 'RecordSmsRequests', recipients, now: now.toISOString() },
          page,
          loaded,
        );
        // Each page's id is its own, so the ids read first are all a later page must be told from, unless
        // another writer (a concurrent try) appended meanwhile: then the next page reads the stream again.
        const alone = events.length === 1 && revision === loaded.revision + 1n;
        known = alone ? { state, revision, position, eventIds: loaded.eventIds ?? new Set() } : undefined;
      }
      if (addressed.length < PUSH_LIMITS.smsRecipients) return;
    }
  }
}

/** Who asks for a push: its sender when rate-limited (a user or a device; the app's own server is not), and the client's idempotency key when it gave one. */
export interface PushRequester {
  readonly sender?: Sender;
  /** The same key (from the same sender) makes the same pushes: a retry appends nothing twice. */
  readonly idempotencyKey?: string;
}

const PUSH_ID_NAMESPACE = '5b8f0c1e-7a0d-4c55-9d3e-2f6b1c8a4e90';

/**
 * The id of a request's `index`th push: fresh, or, with an idempotency key, derived from the key and
 * who gave it (keys of different senders never meet), so a retry lands on the same push streams.
 */
function pushIdOf(appId: string, by: PushRequester, index: number): string {
  if (by.idempotencyKey === undefined) return randomUUID();
  return uuidv5(
    `${appId}\u0000${requesterActor(appId, by)}\u0000${by.idempotencyKey}\u0000${index}`,
    PUSH_ID_NAMESPACE,
  );
}

/** The app's own server (ONE-PUSH's appKey, topvdn's X-APP-Key) as events' `actor`. */
const appActor = (appId: string) => `app:${appId}`;
const requesterActor = (appId: string, by: PushRequester) => (by.sender ? actorOf(by.sender) : appActor(appId));
