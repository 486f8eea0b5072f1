import { DomainError } from '../../domain/decider';
import {
  deliveryDecider,
  deliveryStreamName,
  deliveryTerms,
  type DeliveryState,
  type RecordAttempt,
} from '../../domain/device/delivery';
import { pushIdOfSentId } from '../../domain/device/push';
import type { Bus } from '../bus/bus';
import { deviceTopic } from '../bus/topics';
import { deliveryAggregate } from '../command/aggregates';
import { handleCommand, loadState, type LoadedStream } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import type { Directory } from '../nodes/directory';
import type { Clock } from '../runtime/clock';
import { DueWork } from '../runtime/dueWork';
import type { Logger } from '../runtime/logger';
import { DeliveryRecords } from './deliveryRecords';
import type { DevicePublication } from './devicePublication';
import type { DeliveryQueries, DevicePush, DeviceQueries, DeviceView, OpenDelivery } from './deviceQueries';
import { DevicePresence, type Presence } from './presence';

/**
 * The devices' connections, and the delivery engine behind them (docs/delivery.md).
 *
 * A device's connections — legacy sockets (api/sockets/msgpush.ts) and GraphQL subscriptions — share
 * one session per device. The session listens on the device's bus topic, and makes every attempt for
 * the device one after the other: first its backlog (open deliveries of pushes made while it was
 * away, oldest first), then what arrives live, so a device receives in order, old before new.
 *
 * An attempt writes the push to every connection of the device and then records it on the delivery's
 * stream (MessageDelivered, then DeliveryRetried): at least once — a crash between the write and the
 * record repeats the write. Records go to the store in flushes (deliveryRecords.ts): a device confirming
 * before its attempt's turn has both recorded in one append. Whether an attempt is due is decided on the
 * delivery's stream first, so a lagging read model cannot make herald write a confirmed message again.
 *
 * A background worker makes the scheduled retries of connected devices and closes deliveries still
 * open when their push expires (DeliveryDropped / DeliveryExpired). What is due lives in the read
 * model, so a restart loses no timer.
 */

export interface DeviceConnection {
  /** Writes the push to the device; false when this connection can no longer take it. */
  deliver(push: DevicePush, device: DeviceView): boolean;
  /** Ends the connection, with a WebSocket close code and a reason. */
  close(code: number, reason: string): void;
}

/** Close codes of device connections (docs/api/onepush.md). */
export const DEVICE_CLOSE = {
  unknownDevice: { code: 4404, reason: 'unknown device' },
  unregistered: { code: 4410, reason: 'device unregistered' },
  stopping: { code: 1001, reason: 'herald is stopping' },
} as const;

export interface DeviceHandle {
  readonly device: DeviceView;
  /** The device confirms a message (its `messageId`); answers once the read model shows it. */
  confirm(messageId: string): Promise<void>;
  /** The connection closed: forget it. */
  disconnect(): void;
}

const BACKLOG_PAGE = 200;
/** The longest the worker sleeps; it is also woken at the next attempt an attempt schedules. */
const MAX_WAIT_MS = 1000;

type DueItem = { readonly kind: 'attempt' | 'close'; readonly delivery: OpenDelivery };

class Session {
  readonly connections = new Set<DeviceConnection>();
  private queue: Promise<void> = Promise.resolve();
  closed = false;
  /** Pushes the backlog covered, until a live push newer than all of them arrives. */
  backlogPushes: Set<string> | undefined = new Set();
  backlogHigh = -1n;
  unsubscribe: () => void = () => undefined;
  /**
   * The deliveries this session wrote last, with their stream as its record left it (once recorded):
   * a device confirming at once is decided on that, without reading the stream (which may not hold the
   * record yet — deciding on it would conflict with the record and start over) or the read model.
   */
  /** Scheduled retries queued and not yet made. */
  readonly retrying = new Set<string>();
  readonly written = new Map<
    string,
    { readonly push: DevicePush; readonly recorded: Promise<LoadedStream<DeliveryState> | undefined> }
  >();

  constructor(
    readonly device: DeviceView,
    private readonly onError: (error: unknown) => void,
  ) {}

  /**
   * Runs `job` after every job enqueued before it. The promise ends with the job and never rejects: a
   * failing job goes to `onError`, so no caller can leave a rejection unhandled (one did, and a store
   * restarting under a device's retry ended the process).
   */
  enqueue(job: () => Promise<unknown>): Promise<void> {
    this.queue = this.queue
      .then(() => (this.closed ? undefined : job()))
      .then(
        () => undefined,
        (error: unknown) => this.onError(error),
      );
    return this.queue;
  }
}

export class DeviceGateway {
  private readonly sessions = new Map<string, Session>();
  private readonly connected: DevicePresence;
  private readonly work: DueWork<DueItem>;
  private wakeTimer: { at: number; timer: NodeJS.Timeout } | undefined;
  private readonly records: DeliveryRecords;

  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly devices: DeviceQueries;
      readonly deliveries: DeliveryQueries;
      readonly bus: Bus;
      readonly clock: Clock;
      readonly log: Logger;
      /** Resolves once the devices read model shows the effect of a command at this position. */
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
      /**
       * Whether this node leads (src/nodes/leadership.ts): closing expired deliveries is done once for all
       * nodes, by the leader; attempts are made by the node holding the device's connection.
       */
      readonly leads: () => boolean;
      /** Which node holds which device's connection. */
      readonly directory: Directory;
    },
  ) {
    this.connected = new DevicePresence(deps.directory);
    this.records = new DeliveryRecords(deps.store);
    this.work = new DueWork<DueItem>({
      clock: deps.clock,
      log: deps.log,
      doing: 'a scheduled delivery step',
      maxWaitMs: MAX_WAIT_MS,
      // A step queues the write on the device's session (or writes to the store): nothing here waits on a
      // peer; the runner abandons a step stuck on a hung store (a late close or attempt, the decider takes once).
      attemptTimeoutMs: 10_000,
      due: async (now, limit) => [
        ...(deps.leads() ? await deps.deliveries.expired(now, limit) : []).map((delivery) => ({
          kind: 'close' as const,
          delivery,
        })),
        ...(await deps.deliveries.dueAttempts(this.connected.localDevices(), now, limit)).map((delivery) => ({
          kind: 'attempt' as const,
          delivery,
        })),
      ],
      nextDueAt: () => deps.deliveries.nextDue(this.connected.localDevices()),
      idOf: (item) => `${item.kind}/${item.delivery.push.pushId}/${item.delivery.deviceId}`,
      perform: (item, now) => (item.kind === 'close' ? this.close(item.delivery, now) : this.retry(item.delivery)),
      readYourWrites: deps.readYourWrites,
    });
  }

  /** Which devices are connected (to this node). */
  get presence(): Presence {
    return this.connected;
  }

  start(): void {
    this.work.start();
  }

  async stop(): Promise<void> {
    if (this.wakeTimer) clearTimeout(this.wakeTimer.timer);
    await this.work.stop();
    for (const session of this.sessions.values()) this.end(session, DEVICE_CLOSE.stopping);
  }

  /** Look for due steps now (a test moved the clock). */
  wake(): void {
    this.work.wake();
  }

  /** A device connects; undefined (and the connection closed) when it is unknown or unregistered. */
  async connect(deviceId: string, connection: DeviceConnection): Promise<DeviceHandle | undefined> {
    const device = await this.deps.devices.byId(deviceId);
    if (!device?.active) {
      connection.close(DEVICE_CLOSE.unknownDevice.code, DEVICE_CLOSE.unknownDevice.reason);
      return undefined;
    }
    let session = this.sessions.get(deviceId);
    if (!session) {
      const created = new Session(device, (error) =>
        this.deps.log.error({ err: error, deviceId }, 'a delivery to a device failed; it stays open'),
      );
      session = created;
      this.sessions.set(deviceId, created);
      // Listen before reading the backlog: a push committed in between is in one or the other (or both: deduplicated).
      created.unsubscribe = this.deps.bus.subscribe(deviceTopic(device.appId, deviceId), (publication) =>
        this.onPublication(created, publication),
      );
      // Unregistered between the look above and the subscription: its publication was missed, so look again.
      let stillActive: boolean;
      try {
        stillActive = Boolean((await this.deps.devices.byId(deviceId))?.active);
      } catch (error) {
        this.forget(created);
        throw error;
      }
      if (!stillActive) {
        this.forget(created);
        connection.close(DEVICE_CLOSE.unregistered.code, DEVICE_CLOSE.unregistered.reason);
        return undefined;
      }
    }
    session.connections.add(connection);
    this.connected.add(deviceId);
    // Each new connection gets the open deliveries: a device reconnecting is sent again what it has not confirmed.
    const current = session;
    void current.enqueue(() => this.deliverBacklog(current));
    let connectedNow = true;
    return {
      device,
      confirm: (messageId) => this.confirm(device, messageId),
      disconnect: () => {
        if (!connectedNow) return;
        connectedNow = false;
        current.connections.delete(connection);
        this.connected.remove(deviceId);
        if (current.connections.size === 0) this.forget(current);
      },
    };
  }

  /** The device confirms a delivery: `sentId` is the push's id, as a UUID or as topvdn's 32 hex digits. */
  async confirm(device: DeviceView, sentId: string): Promise<void> {
    const messageId = pushIdOfSentId(sentId);
    const written = this.sessions.get(device.deviceId)?.written.get(messageId);
    const push = written?.push ?? (await this.deps.deliveries.byKey(messageId, device.deviceId))?.push;
    if (!push) throw new DomainError('not_found', 'no message with this id was sent to this device');
    // Joins its attempt's record when that is still to be made; otherwise decided on what the attempt left.
    const result = await this.records.record(
      deliveryStreamName(messageId, device.deviceId),
      { type: 'ConfirmDelivery', terms: deliveryTerms(push, device.deviceId), now: this.deps.clock().toISOString() },
      { appId: device.appId, actor: `device:${device.deviceId}` },
      written?.recorded,
    );
    this.sessions.get(device.deviceId)?.written.delete(messageId);
    await this.deps.readYourWrites(result.position);
  }

  private onPublication(session: Session, publication: DevicePublication): void {
    if (publication.type === 'unregistered') {
      this.end(session, DEVICE_CLOSE.unregistered);
      return;
    }
    void session.enqueue(async () => {
      const seen = session.backlogPushes;
      if (seen) {
        const pushPosition = BigInt(publication.pushPosition);
        if (pushPosition <= session.backlogHigh && seen.has(publication.push.pushId)) return;
        // Newer than everything the backlog covered: so is every later push.
        if (pushPosition > session.backlogHigh) session.backlogPushes = undefined;
      }
      await this.attempt(session, publication.push, fresh(), false);
    });
  }

  private async deliverBacklog(session: Session): Promise<void> {
    let after = -1n;
    for (;;) {
      const page = await this.deps.deliveries.backlog(session.device.deviceId, this.deps.clock(), after, BACKLOG_PAGE);
      for (const delivery of page) {
        if (session.closed) return;
        session.backlogPushes?.add(delivery.push.pushId);
        if (delivery.pushPosition > session.backlogHigh) session.backlogHigh = delivery.pushPosition;
        // Decided on its stream (the read model may not show a confirmation yet). One that fails stays
        // open and is tried again later; the rest of the backlog goes on, in order.
        await this.attempt(session, delivery.push, undefined, false, delivery.revision).catch((error: unknown) =>
          this.deps.log.error(
            { err: error, deviceId: session.device.deviceId, pushId: delivery.push.pushId },
            'a delivery to a device failed; it stays open',
          ),
        );
      }
      if (page.length < BACKLOG_PAGE) return;
      after = page[page.length - 1]!.pushPosition;
    }
  }

  /**
   * A scheduled retry, decided on the delivery's stream as it is now. Queued behind the device's other
   * attempts without the worker waiting for it (one device's long backlog must not hold up every other
   * device's retries); a retry already queued is not queued twice.
   */
  private async retry(delivery: OpenDelivery): Promise<undefined> {
    const session = this.sessions.get(delivery.deviceId);
    const { pushId } = delivery.push;
    if (!session || session.retrying.has(pushId)) return undefined;
    session.retrying.add(pushId);
    void session
      .enqueue(() => this.attempt(session, delivery.push, undefined, true, delivery.revision))
      .finally(() => session.retrying.delete(pushId));
    return undefined;
  }

  private async attempt(
    session: Session,
    push: DevicePush,
    known: LoadedStream<DeliveryState> | undefined,
    dueOnly: boolean,
    /** The delivery's revision as the read model saw it, for a delivery read from it (backlog, retry). */
    projected?: bigint,
  ) {
    const { deviceId } = session.device;
    const streamName = deliveryStreamName(push.pushId, deviceId);
    const loaded = known ?? (await loadState(this.deps.store, deliveryAggregate, streamName));
    if (removedSince(projected, loaded)) return undefined;
    const command: RecordAttempt = {
      type: 'RecordAttempt',
      terms: deliveryTerms(push, deviceId),
      dueOnly,
      now: this.deps.clock().toISOString(),
    };
    if (deliveryDecider.decide(command, loaded.state).length === 0) return undefined;
    let written = false;
    for (const connection of session.connections) written = connection.deliver(push, session.device) || written;
    if (!written) return undefined;
    const recording = this.records.record(
      streamName,
      command,
      { appId: push.appId, actor: `device:${deviceId}` },
      loaded,
    );
    remember(session.written, push.pushId, {
      push,
      recorded: recording.then(
        ({ state, revision, position }) => ({ state, revision, ...(position !== undefined && { position }) }),
        () => undefined,
      ),
    });
    const result = await recording;
    for (const event of result.events) {
      if ((event.type === 'MessageDelivered' || event.type === 'DeliveryRetried') && event.data.nextAttemptAt)
        this.wakeAt(Date.parse(event.data.nextAttemptAt));
    }
    return result;
  }

  private async close(delivery: OpenDelivery, now: Date) {
    const streamName = deliveryStreamName(delivery.push.pushId, delivery.deviceId);
    const loaded = await loadState(this.deps.store, deliveryAggregate, streamName);
    if (removedSince(delivery.revision, loaded)) return undefined;
    return handleCommand(
      this.deps.store,
      deliveryAggregate,
      streamName,
      { type: 'CloseDelivery', terms: deliveryTerms(delivery.push, delivery.deviceId), now: now.toISOString() },
      { appId: delivery.push.appId, actor: 'herald:deliveries' },
      loaded,
    );
  }

  /** Wakes the worker at `at` (herald's time), unless it is to wake earlier anyway. */
  private wakeAt(at: number): void {
    if (this.wakeTimer && this.wakeTimer.at <= at) return;
    if (this.wakeTimer) clearTimeout(this.wakeTimer.timer);
    const timer = setTimeout(
      () => {
        this.wakeTimer = undefined;
        this.work.wake();
      },
      Math.max(0, at - this.deps.clock().getTime()),
    );
    timer.unref();
    this.wakeTimer = { at, timer };
  }

  private end(session: Session, why: { code: number; reason: string }): void {
    // Each connection's close reaches its handle's disconnect, which takes it off the presence.
    for (const connection of [...session.connections]) connection.close(why.code, why.reason);
    this.forget(session);
  }

  private forget(session: Session): void {
    session.closed = true;
    session.unsubscribe();
    if (this.sessions.get(session.device.deviceId) === session) this.sessions.delete(session.device.deviceId);
  }
}

/**
 * A delivery the read model saw events of (`projected` ≥ 0) whose stream holds none: retention removed it
 * since it was read (it ended long ago: a retry or close queued behind a long backlog, issue 26). A removed
 * stream is no stream, so deciding on it would write the message again and start a stream nothing retires.
 */
const removedSince = (projected: bigint | undefined, loaded: LoadedStream<DeliveryState>) =>
  projected !== undefined && projected >= 0n && loaded.revision < 0n;

/** A delivery just expanded: its stream has no events yet. */
const fresh = (): LoadedStream<DeliveryState> => ({ state: deliveryAggregate.decider.initialState(), revision: -1n });

/** Remembers a session's last writes, the oldest forgotten first: a device confirms soon or not at all. */
const WRITTEN_REMEMBERED = 256;
function remember<V>(written: Map<string, V>, pushId: string, value: V): void {
  written.delete(pushId);
  written.set(pushId, value);
  if (written.size > WRITTEN_REMEMBERED) written.delete(written.keys().next().value!);
}
