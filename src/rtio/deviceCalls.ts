import { createHash, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import { v5 as uuidv5 } from 'uuid';
import { DomainError } from '../../domain/decider';
import { HeraldError } from '../../domain/heraldError';
import {
  rtioCallStreamName,
  rtioDeviceStreamName,
  rtioNonceStreamName,
  rtioReportStreamName,
  RTIO_LIMITS,
  type RtioRequest,
} from '../../domain/rtio/rtio';
import { publication, type Bus } from '../bus/bus';
import { nodeTopic } from '../bus/topics';
import { rtioCallAggregate, rtioDeviceAggregate, rtioNonceAggregate, rtioReportAggregate } from '../command/aggregates';
import { handleCommand, loadState, newStream } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import { actorOf, type Sender } from '../identity/sender';
import type { SendAllowance } from '../messaging/messaging';
import type { Directory } from '../nodes/directory';
import type { Clock } from '../runtime/clock';
import type { Logger } from '../runtime/logger';
import type { Answer, NodeMessage } from './nodeMessage';

/**
 * RTIO device RPC (shared/seeds/004_e2f5c37d54658cec.txt, docs/api/rtio.md): creating devices, their
 * connections, and synchronous calls. A call is recorded (RtioDeviceCalled), written to the device's
 * connection, and answered with the device's reply (RtioDeviceReplied) — or fails (RtioCallFailed):
 * at once when the device has no connection, at `time_live` when it does not reply.
 *
 * Devices and calls are read from their own streams (strongly consistent: a device can connect, and be
 * called, as soon as its creation is answered). A call made on one node reaches a device connected to
 * another: the directory names the node holding the device's connection, the call goes there on the
 * bus, and the device's answer comes back the same way (several nodes: REDIS_URL).
 */

/** How a device's connection takes a call (api/sockets/rtioSocket.ts, GraphQL later). */
export interface RtioConnection {
  /** Writes the call to the device; false when the connection can no longer take it. */
  call(call: { readonly callId: string; readonly message: string; readonly timeLiveSeconds: number }): boolean;
  close(code: number, reason: string): void;
}

export interface CallInput {
  readonly nonce: string;
  readonly deviceId: string;
  readonly message: string;
  readonly timeLiveSeconds?: number;
}

/** `device_status`: 0 unknown, 1 online, 2 offline. */
export type DeviceStatus = 0 | 1 | 2;

export type CallOutcome =
  | { readonly kind: 'replied'; readonly deviceCode: number; readonly deviceMessage: string }
  | { readonly kind: 'offline' }
  | { readonly kind: 'timeout' };

const directoryKey = (deviceId: string) => `rtio:${deviceId}`;

/** A call to an unknown device, or to a device of another app (nothing of one app is visible to another). */
export class UnknownRtioDeviceError extends HeraldError {
  override readonly name = 'UnknownRtioDeviceError';
  constructor() {
    super('not_found', 'no such device');
  }
}

const MAX_KNOWN_DEVICES = 100_000;
const ID_NAMESPACE = '8a4e7c1d-2b39-4f6a-9d05-3c7e1f0b2a64';

export class Rtio {
  private readonly connections = new Map<string, RtioConnection>();
  private readonly deviceApps = new Map<string, string>();
  /** Calls waiting for their device: settled once — by its reply, its connection closing, or time_live. */
  private readonly pending = new Map<
    string,
    { readonly deviceId: string; readonly settle: (answer: Answer) => void }
  >();

  private readonly unsubscribe: () => void;

  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly clock: Clock;
      readonly log: Logger;
      /** Which node holds which device's connection. */
      readonly directory: Directory;
      /** Carries calls to the node holding the device, and answers back. */
      readonly bus: Bus;
      /** A device's reports count against its sending rate, as a user's sends do. */
      readonly sendAllowance: SendAllowance;
      /** The running report forwarder, told of a new report; absent (RTIO_NOTIFY_URL unset): reports are recorded only. */
      readonly forwarder?: { wake(): void };
      /** Resolves once the reports read model (what the forwarder finds due) shows a change at this position. */
      readonly reportsShow?: (position: bigint | undefined) => Promise<void>;
    },
  ) {
    this.unsubscribe = deps.bus.subscribe(nodeTopic(deps.directory.nodeId), (message) => this.onNodeMessage(message));
  }

  /** A device's report (≤ 1,024 bytes), recorded to be forwarded to the notify URL. Returns its id; SendRateExceededError over the sending rate. */
  async report(device: { readonly deviceId: string; readonly appId: string }, message: string): Promise<string> {
    const sender: Sender = { kind: 'rtio-device', appId: device.appId, deviceId: device.deviceId };
    this.deps.sendAllowance.take(sender, this.deps.clock());
    const reportId = randomUUID();
    // The notify request's nonce: as the seed's example, a decimal string (of 63 random bits).
    const nonce = BigInt.asUintN(63, BigInt(`0x${randomBytes(8).toString('hex')}`)).toString();
    const recorded = await handleCommand(
      this.deps.store,
      rtioReportAggregate,
      rtioReportStreamName(reportId),
      {
        type: 'ReportFromDevice',
        reportId,
        appId: device.appId,
        deviceId: device.deviceId,
        nonce,
        message,
        now: this.deps.clock().toISOString(),
      },
      { appId: device.appId, actor: actorOf(sender) },
      newStream(rtioReportAggregate),
    );
    // Woken once the forwarder can find it due (woken before, it would look, find nothing and sleep);
    // not awaited, so the device's next frames do not wait for the read model.
    const { forwarder } = this.deps;
    if (forwarder)
      void (this.deps.reportsShow?.(recorded.position) ?? Promise.resolve()).then(
        () => forwarder.wake(),
        () => forwarder.wake(),
      );
    else
      this.deps.log.warn(
        { reportId, deviceId: device.deviceId },
        'rtio: report not forwarded: RTIO_NOTIFY_URL is not set',
      );
    return reportId;
  }

  /** Creates a device; its key is answered once and kept only as a hash. */
  async createDevice(appId: string, nonce: string): Promise<{ deviceId: string; deviceKey: string }> {
    await this.useNonce(appId, nonce, 'create_device');
    const deviceId = idOf('device', appId, nonce);
    const deviceKey = randomBytes(20).toString('base64url');
    await handleCommand(
      this.deps.store,
      rtioDeviceAggregate,
      rtioDeviceStreamName(deviceId),
      {
        type: 'CreateRtioDevice',
        deviceId,
        appId,
        keyHash: hashKey(deviceKey),
        nonce,
        now: this.deps.clock().toISOString(),
      },
      { appId, actor: `app:${appId}` },
      newStream(rtioDeviceAggregate),
    );
    return { deviceId, deviceKey };
  }

  /**
   * Takes the request's nonce in the app's one nonce space (domain/rtio/rtio.ts, RtioNonceUsed): a nonce
   * another kind of request used is refused (DomainError conflict); one this kind used goes on to the
   * request's own stream, which refuses it if that request was made.
   */
  private async useNonce(appId: string, nonce: string, request: RtioRequest): Promise<void> {
    await handleCommand(
      this.deps.store,
      rtioNonceAggregate,
      rtioNonceStreamName(idOf('nonce', appId, nonce)),
      { type: 'UseRtioNonce', appId, nonce, request, now: this.deps.clock().toISOString() },
      { appId, actor: `app:${appId}` },
      newStream(rtioNonceAggregate),
    );
  }

  /**
   * The app of a created device. A device's stream never changes after its creation, so what was read
   * once is kept (bounded): a call costs no read of it.
   */
  private async appOfDevice(deviceId: string): Promise<string | undefined> {
    const known = this.deviceApps.get(deviceId);
    if (known !== undefined) return known;
    const { state } = await loadState(this.deps.store, rtioDeviceAggregate, rtioDeviceStreamName(deviceId));
    if (state.status !== 'created') return undefined;
    if (this.deviceApps.size >= MAX_KNOWN_DEVICES) this.deviceApps.clear();
    this.deviceApps.set(deviceId, state.appId);
    return state.appId;
  }

  /** The device's app, if `deviceKey` is its key. */
  async authenticateDevice(deviceId: string, deviceKey: string): Promise<{ appId: string } | undefined> {
    if (!isDeviceId(deviceId) || typeof deviceKey !== 'string' || deviceKey.length > 128) return undefined;
    const { state } = await loadState(this.deps.store, rtioDeviceAggregate, rtioDeviceStreamName(deviceId));
    if (state.status !== 'created') return undefined;
    const expected = Buffer.from(state.keyHash);
    const actual = Buffer.from(hashKey(deviceKey));
    return expected.length === actual.length && timingSafeEqual(expected, actual) ? { appId: state.appId } : undefined;
  }

  /** A device's connection; a newer one replaces (and closes) the one before. Returns the disconnect. */
  connect(deviceId: string, connection: RtioConnection): () => void {
    const before = this.connections.get(deviceId);
    this.connections.set(deviceId, connection);
    if (before) before.close(4409, 'replaced by a newer connection of the device');
    else {
      void this.deps.directory.add(directoryKey(deviceId)).then((previous) => {
        if (previous) void this.deps.bus.publish([publication(nodeTopic(previous), { kind: 'replaced', deviceId })]);
      });
    }
    return () => {
      if (this.connections.get(deviceId) !== connection) return;
      this.connections.delete(deviceId);
      this.deps.directory.remove(directoryKey(deviceId));
      // Its calls will get no reply: answered now as offline, not at time_live.
      for (const pending of [...this.pending.values()])
        if (pending.deviceId === deviceId) pending.settle({ kind: 'gone' });
    };
  }

  isOnline(deviceId: string): boolean {
    return this.connections.has(deviceId);
  }

  /** The device replies to a call (its `call_id`); a reply to no pending call of this device is refused. */
  reply(deviceId: string, callId: string, reply: { code: number; message: string }): void {
    const pending = this.pending.get(callId);
    if (!pending || pending.deviceId !== deviceId) throw new DomainError('not_found', 'no call waiting for this reply');
    pending.settle({ kind: 'reply', ...reply });
  }

  /** Calls the device and waits for its reply, at most `time_live` seconds. */
  async call(appId: string, input: CallInput): Promise<CallOutcome> {
    if (!isDeviceId(input.deviceId) || (await this.appOfDevice(input.deviceId)) !== appId)
      throw new UnknownRtioDeviceError();
    const callId = idOf('call', appId, input.nonce);
    const streamName = rtioCallStreamName(callId);
    const context = { appId, actor: `app:${appId}` };
    const command = {
      type: 'CallRtioDevice',
      callId,
      appId,
      deviceId: input.deviceId,
      nonce: input.nonce,
      message: input.message,
      ...(input.timeLiveSeconds !== undefined && { timeLiveSeconds: input.timeLiveSeconds }),
      now: this.deps.clock().toISOString(),
    } as const;
    // A call refused for its own fields takes no nonce: decided on a new stream first (pure, no I/O).
    rtioCallAggregate.decider.decide(command, rtioCallAggregate.decider.initialState());
    await this.useNonce(appId, input.nonce, 'call/send');
    const called = await handleCommand(
      this.deps.store,
      rtioCallAggregate,
      streamName,
      command,
      context,
      newStream(rtioCallAggregate),
    );
    const timeLiveSeconds = input.timeLiveSeconds ?? RTIO_LIMITS.timeLiveDefaultSeconds;
    const fail = async (reason: 'offline' | 'timeout'): Promise<CallOutcome> => {
      await handleCommand(
        this.deps.store,
        rtioCallAggregate,
        streamName,
        { type: 'RecordCallFailure', reason, now: this.deps.clock().toISOString() },
        context,
        called,
      );
      return { kind: reason };
    };
    // Waiting before writing: a device replying at once finds its call pending. Settled once: the entry
    // goes with the first answer, so a reply after time_live (or a second one) finds no call waiting.
    let timer: NodeJS.Timeout | undefined;
    const answered = new Promise<Answer>((resolve) => {
      const settle = (answer: Answer) => {
        clearTimeout(timer);
        this.pending.delete(callId);
        resolve(answer);
      };
      timer = setTimeout(() => settle({ kind: 'timeout' }), timeLiveSeconds * 1000);
      this.pending.set(callId, { deviceId: input.deviceId, settle });
    });
    if (!(await this.deliverCall({ callId, deviceId: input.deviceId, message: input.message, timeLiveSeconds }))) {
      this.pending.get(callId)?.settle({ kind: 'gone' });
      return fail('offline');
    }
    const answer = await answered;
    if (answer.kind !== 'reply') return fail(answer.kind === 'gone' ? 'offline' : 'timeout');
    const recorded = await handleCommand(
      this.deps.store,
      rtioCallAggregate,
      streamName,
      { type: 'RecordReply', code: answer.code, message: answer.message, now: this.deps.clock().toISOString() },
      context,
      called,
    );
    // A reply herald could not take (the call had failed meanwhile) is no reply.
    if (recorded.events.length === 0) return { kind: 'timeout' };
    return { kind: 'replied', deviceCode: answer.code, deviceMessage: answer.message };
  }

  close(): void {
    this.unsubscribe();
    for (const connection of this.connections.values()) connection.close(1001, 'herald is stopping');
    this.connections.clear();
  }

  /** Writes the call to the device's connection here, or sends it to the node holding one; false when none does. */
  private async deliverCall(call: {
    readonly callId: string;
    readonly deviceId: string;
    readonly message: string;
    readonly timeLiveSeconds: number;
  }): Promise<boolean> {
    const connection = this.connections.get(call.deviceId);
    if (connection) return connection.call(call);
    const { directory, bus } = this.deps;
    const holder = await directory.holder(directoryKey(call.deviceId));
    if (holder === undefined || holder === directory.nodeId) return false;
    await bus.publish([publication(nodeTopic(holder), { kind: 'call', from: directory.nodeId, ...call })]);
    return true;
  }

  /**
   * A call another node made to a device connected here: written to it, and its answer — the reply, its
   * connection closing, or nothing within time_live — sent back to that node.
   */
  private onNodeMessage(message: NodeMessage): void {
    if (message.kind === 'answer') return void this.pending.get(message.callId)?.settle(message.answer);
    if (message.kind === 'replaced')
      return void this.connections
        .get(message.deviceId)
        ?.close(4409, 'replaced by a newer connection of the device (on another node)');
    const answerTo = (answer: Answer) =>
      void this.deps.bus.publish([
        publication(nodeTopic(message.from), { kind: 'answer', callId: message.callId, answer }),
      ]);
    const timer = setTimeout(() => settle({ kind: 'timeout' }), message.timeLiveSeconds * 1000);
    const settle = (answer: Answer) => {
      clearTimeout(timer);
      this.pending.delete(message.callId);
      answerTo(answer);
    };
    this.pending.set(message.callId, { deviceId: message.deviceId, settle });
    const connection = this.connections.get(message.deviceId);
    if (!connection?.call(message)) settle({ kind: 'gone' });
  }
}

/** The seed's device ids are 32 hex digits; herald's are too (a UUID v5 of the app and the nonce, without dashes). */
const idOf = (kind: 'device' | 'call' | 'nonce', appId: string, nonce: string) =>
  uuidv5(`${kind}\u0000${appId}\u0000${nonce}`, ID_NAMESPACE).replace(/-/g, '');

export const isDeviceId = (deviceId: unknown): deviceId is string =>
  typeof deviceId === 'string' && /^[0-9a-f]{32}$/.test(deviceId);

const hashKey = (deviceKey: string) => createHash('sha256').update(deviceKey).digest('base64url');
