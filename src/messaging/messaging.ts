import { randomUUID } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';
import { DomainError } from '../../domain/decider';
import { HeraldError } from '../../domain/heraldError';
import { messageStreamName, type MessageEvent } from '../../domain/message/message';
import { messageAggregate } from '../command/aggregates';
import { decodeEvent, handleCommand, loadState, newStream } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import { actorOf, userSender, type Sender } from '../identity/sender';
import type { Viewer } from '../identity/tickets';
import { Batcher } from '../runtime/batcher';
import type { DeliveredMessage, InboxQueries, MissedRequest, NotificationPage } from './inboxQueries';

/**
 * Sending, acknowledging and listing messages: the one implementation behind Koala's REST routes and
 * GraphQL. Shims parse their wire format, call these, and map the errors to their own codes.
 */

export interface SendInput {
  readonly to: readonly string[];
  readonly title: string;
  readonly content: string;
  readonly props?: Readonly<Record<string, string>> | null;
  /** Seconds of validity after delivery; 0 = forever. */
  readonly expireSeconds: number;
  /** Delivery time; undefined = now. */
  readonly executeAt?: Date;
  /** A client's idempotency key: the same key sends the message once. */
  readonly requestId?: string;
}

export interface SentMessage {
  readonly id: string;
  readonly title: string;
  readonly content: string;
  readonly sender: string;
  readonly recipients: readonly string[];
  readonly props: Record<string, string> | null;
  /** Delivery time; null while scheduled. */
  readonly sentAt: string | null;
  readonly scheduledFor: string | null;
  readonly expiresAt: string | null;
}

/** A sender went over its sending rate (Koala 4001, GraphQL RATE_LIMITED). */
export class SendRateExceededError extends HeraldError {
  override readonly name = 'SendRateExceededError';
  constructor(retryAfterSeconds: number) {
    super('rate_limited', `sending rate exceeded; retry in ${retryAfterSeconds} s`, retryAfterSeconds);
  }
}

/**
 * How many sends one sender may make per minute: a fixed window per (app, sender), shared by every API
 * that sends (Koala, GraphQL, datahub, topvdn's client push) and by the writes that are as cheap to repeat
 * (stats clears, an RTIO device's reports). A user, a device and an RTIO device of the same id have a
 * window each. Several nodes each keep their own (a shared limit comes with Redis).
 */
export class SendAllowance {
  private readonly windows = new Map<string, { windowStart: number; count: number }>();

  constructor(private readonly sendsPerMinute: number) {}

  /** Takes one send from the sender's window, or throws SendRateExceededError. */
  take(sender: Sender, now: Date): void {
    const key = `${sender.appId}\u0000${actorOf(sender)}`;
    const minute = 60_000;
    const window = this.windows.get(key);
    if (!window || now.getTime() - window.windowStart >= minute) {
      if (this.windows.size > 100_000) this.windows.clear(); // bound the memory, at worst a fresh window
      this.windows.set(key, { windowStart: now.getTime(), count: 1 });
      return;
    }
    if (window.count >= this.sendsPerMinute) {
      throw new SendRateExceededError(Math.ceil((window.windowStart + minute - now.getTime()) / 1000));
    }
    window.count++;
  }
}

export const MAX_ACKNOWLEDGE_IDS = 200;

/** What an acknowledge call did: how many it newly acknowledged, and the ids it refused, with why. */
export interface Acknowledgement {
  readonly acknowledged: number;
  readonly refused: ReadonlyArray<{ readonly id: string; readonly error: DomainError }>;
}
export const MAX_REQUEST_ID_LENGTH = 128;

export class Messaging {
  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly inbox: InboxQueries;
      /** Resolves once the caller's next query would show the effect of a command at this position. */
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
      readonly sendAllowance: SendAllowance;
      /** The inbox read model's position (its projection's checkpoint, as this node knows it). */
      readonly inboxPosition: () => bigint;
    },
  ) {
    this.missed = new Batcher((requests) => deps.inbox.deliveredSince(requests));
    this.pending = new Batcher((requests) => deps.inbox.pendingSince(requests));
  }

  private readonly missed: Batcher<MissedRequest, DeliveredMessage[]>;
  private readonly pending: Batcher<MissedRequest, DeliveredMessage[]>;

  async send(viewer: Viewer, input: SendInput, now: Date): Promise<SentMessage> {
    if (
      input.requestId !== undefined &&
      (input.requestId.length === 0 || input.requestId.length > MAX_REQUEST_ID_LENGTH)
    ) {
      throw new DomainError('invalid', `a request id is 1-${MAX_REQUEST_ID_LENGTH} characters`);
    }
    this.deps.sendAllowance.take(userSender(viewer), now);
    // With a request id the message id is derived from it, so a resend is the same message. Either way
    // the stream is new: no read before deciding; a resend conflicts on `no_stream` and is answered from
    // the message the store holds, not from what this call would have sent.
    const messageId = input.requestId ? uuidFromRequest(viewer, input.requestId) : randomUUID();
    const result = await handleCommand(
      this.deps.store,
      messageAggregate,
      messageStreamName(messageId),
      {
        type: 'SendMessage',
        messageId,
        appId: viewer.appId,
        sender: viewer.userId,
        recipients: input.to,
        title: input.title,
        content: input.content,
        props: input.props ?? null,
        expireSeconds: input.expireSeconds,
        executeAt: input.executeAt ? input.executeAt.toISOString() : null,
        now: now.toISOString(),
      },
      { appId: viewer.appId, actor: `user:${viewer.userId}` },
      newStream(messageAggregate),
    );
    const sent = result.events[0] ?? (await this.firstEvent(messageId));
    await this.deps.readYourWrites(result.position);
    return toSentMessage(sent);
  }

  /**
   * Acknowledges messages for the viewer: every id that names a message delivered to them is
   * acknowledged, whatever the others are (a client acking a batch must not lose its good ids to one
   * stale one). An expired message counts as done. The refused ones — no such message in the app, one
   * not delivered yet, or one sent to other users — are returned with their reason, for the caller to
   * name them. `acknowledged` counts the newly acknowledged (a repeat counts 0).
   */
  async acknowledge(viewer: Viewer, messageIds: readonly string[], now: Date): Promise<Acknowledgement> {
    const ids = [...new Set(messageIds)];
    if (ids.length === 0) throw new DomainError('invalid', 'no message ids given');
    if (ids.length > MAX_ACKNOWLEDGE_IDS)
      throw new DomainError('invalid', `at most ${MAX_ACKNOWLEDGE_IDS} ids per call`);
    const command = {
      type: 'AcknowledgeMessage' as const,
      appId: viewer.appId,
      userId: viewer.userId,
      now: now.toISOString(),
    };
    const decided = await Promise.all(
      ids.map(async (id) => {
        const loaded = await loadState(this.deps.store, messageAggregate, messageStreamName(id));
        try {
          return { id, ...loaded, events: messageAggregate.decider.decide(command, loaded.state), refused: undefined };
        } catch (error) {
          if (error instanceof DomainError) return { id, ...loaded, events: [], refused: error };
          throw error;
        }
      }),
    );
    const refused = decided.flatMap((d) => (d.refused !== undefined ? [{ id: d.id, error: d.refused }] : []));
    // Appended side by side (the store commits them together), each on the state just read.
    const context = { appId: viewer.appId, actor: `user:${viewer.userId}` };
    const results = await Promise.all(
      decided
        .flatMap((d) => (d.refused !== undefined ? [] : [d]))
        .map(({ id, events, refused: _, ...loaded }) =>
          events.length === 0
            ? { events, position: loaded.position }
            : handleCommand(this.deps.store, messageAggregate, messageStreamName(id), command, context, loaded),
        ),
    );
    await this.deps.readYourWrites(maxPosition(results.map((r) => r.position)));
    return { acknowledged: results.reduce((sum, r) => sum + r.events.length, 0), refused };
  }

  /** Message ids of Koala's `sids` (the seqs users received) by seq; a seq unknown in the viewer's app is left out. */
  messageIdsOfSeqs(viewer: Viewer, seqs: readonly bigint[]): Promise<Map<bigint, string>> {
    if (seqs.length === 0) return Promise.resolve(new Map());
    return this.deps.inbox.messageIdsBySeq(viewer.appId, seqs);
  }

  inbox(
    viewer: Viewer,
    options: { first: number; beforeSeq?: bigint; unreadOnly: boolean; sender?: string },
    now: Date,
  ): Promise<NotificationPage> {
    return this.deps.inbox.page(viewer, { ...options, now });
  }

  /**
   * What a subscriber missed since `sinceSeq` (it reconnected, or the bus lost messages), oldest first.
   * The calls of one turn are one query.
   */
  deliveredSince(viewer: Viewer, sinceSeq: bigint, limit: number, now: Date): Promise<DeliveredMessage[]> {
    return this.missed.get({ owner: { appId: viewer.appId, userId: viewer.userId }, sinceSeq, limit, now });
  }

  /**
   * The user's pending messages (unacknowledged, unexpired) after `sinceSeq`, the newest `limit`, oldest
   * first: what a terminal that connects for the first time is owed. The calls of one turn are one query.
   */
  pendingSince(viewer: Viewer, sinceSeq: bigint, limit: number, now: Date): Promise<DeliveredMessage[]> {
    return this.pending.get({ owner: { appId: viewer.appId, userId: viewer.userId }, sinceSeq, limit, now });
  }

  /** How far the inbox is known to show deliveries: every message of a higher seq is yet to be pushed. */
  deliveredPosition(): bigint {
    return this.deps.inboxPosition();
  }

  private async firstEvent(messageId: string): Promise<MessageEvent> {
    const [first] = await this.deps.store.readStream(messageStreamName(messageId), { maxCount: 1 });
    return decodeEvent(messageAggregate.eventCodec, first!);
  }
}

function toSentMessage(event: MessageEvent): SentMessage {
  if (event.type !== 'MessageSent' && event.type !== 'MessageScheduled')
    throw new Error(`unexpected first event ${event.type}`);
  const d = event.data;
  return {
    id: d.messageId,
    title: d.title,
    content: d.content,
    sender: d.sender,
    recipients: d.recipients,
    props: d.props,
    sentAt: event.type === 'MessageSent' ? event.data.sentAt : null,
    scheduledFor: event.type === 'MessageScheduled' ? event.data.releaseAt : null,
    expiresAt: d.expiresAt,
  };
}

function maxPosition(positions: ReadonlyArray<bigint | undefined>): bigint | undefined {
  return positions.reduce<bigint | undefined>(
    (max, p) => (p !== undefined && (max === undefined || p > max) ? p : max),
    undefined,
  );
}

const REQUEST_ID_NAMESPACE = 'c0c4a7f2-3b43-4c8e-9f0e-5a0d6f1e2b77';

/** Deterministic per (app, sender, request id): a resend maps to the same message stream. */
function uuidFromRequest(viewer: Viewer, requestId: string): string {
  return uuidv5(`${viewer.appId}\u0000${viewer.userId}\u0000${requestId}`, REQUEST_ID_NAMESPACE);
}
