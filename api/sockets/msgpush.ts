import { WebSocketServer, WebSocket } from 'ws';
import { topvdnRequestId } from '../../domain/device/push';
import { HeraldError } from '../../domain/heraldError';
import { illFormedTextAt, notUnicode } from '../../domain/text';
import type { DeviceConnection, DeviceGateway, DeviceHandle } from '../../src/devices/deviceGateway';
import type { DevicePush, DeviceView } from '../../src/devices/deviceQueries';
import type { Logger } from '../../src/runtime/logger';
import { frameError } from './frameErrors';

/**
 * ONE-PUSH's device socket (shared/seeds/003_834cb051d61fc48e.txt): `ws://host/msgpush.ws?deviceId=…`,
 * a plain WebSocket carrying JSON text frames (docs/api/onepush.md).
 *
 * herald → device: one frame per message, the seed's fields plus `messageId`:
 *   {"messageId", "appId", "tenantCode", "alert", "extra", "pushMsgType", "sound", "badge", "needConfirm"}
 * (`sound` and `badge` for IOS devices only, as the seed says, and only when the sender gave them); a topvdn message as
 *   {"messageId", "appId", "type": "topvdn", "msg" (standard base64), "flag", "from", "needConfirm"}, its `messageId`
 *   the `request_id` the sender was answered (32 hex digits); a confirmation takes it with or without dashes.
 * device → herald: `{"confirm": "<messageId>"}`, answered `{"confirmed": "<messageId>"}`, or
 * `{"error": {"code", "message"}, "confirm": "<messageId>"}`. Beside these, the plain-text frames of the
 * original one-push client (github.com/yaoyasong/one-push, ConnectionHandler): `HBT…`, a heartbeat,
 * answered `ACK1`; `CFM:<messageId>`, the same confirmation, answered nothing, as that server did.
 * ONE-PUSH message frames carry the message id also as `id`, where that client reads it for `CFM:`.
 */

export const MSGPUSH_PATH = '/msgpush.ws';

/** Close codes besides the gateway's (DEVICE_CLOSE). */
const CLOSE = {
  noDeviceId: { code: 4400, reason: 'deviceId is required: /msgpush.ws?deviceId=…' },
  tooSlow: { code: 4429, reason: 'the device is not reading its messages' },
  internal: { code: 1011, reason: 'internal error' },
} as const;

/** A connection buffering more than this unread is cut off rather than held in memory. */
const MAX_BUFFERED_BYTES = 1024 * 1024;
const MAX_FRAME_BYTES = 4096;
const HEARTBEAT_MS = 30_000;

export function msgpushSockets(deps: { readonly gateway: DeviceGateway; readonly log: Logger }): {
  readonly wss: WebSocketServer;
  close(): Promise<void>;
} {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });
  const alive = new WeakSet<WebSocket>();
  // A device that vanished without closing (its network dropped) is noticed by the missing pong.
  const heartbeat = setInterval(() => {
    for (const socket of wss.clients) {
      if (!alive.has(socket)) {
        socket.terminate();
        continue;
      }
      alive.delete(socket);
      socket.ping();
    }
  }, HEARTBEAT_MS).unref();

  wss.on('connection', (socket: WebSocket, request) => {
    alive.add(socket);
    socket.on('pong', () => alive.add(socket));
    const deviceId = deviceIdOf(request.url);
    if (!deviceId) return socket.close(CLOSE.noDeviceId.code, CLOSE.noDeviceId.reason);
    const connection: DeviceConnection = {
      deliver(push, device) {
        if (socket.readyState !== WebSocket.OPEN) return false;
        if (socket.bufferedAmount > MAX_BUFFERED_BYTES) {
          socket.close(CLOSE.tooSlow.code, CLOSE.tooSlow.reason);
          return false;
        }
        socket.send(frameOf(push, device));
        return true;
      },
      close: (code, reason) => socket.close(code, reason),
    };
    const connected: Promise<DeviceHandle | undefined> = deps.gateway
      .connect(deviceId, connection)
      .catch((error: unknown) => {
        deps.log.error({ err: error }, 'msgpush: connecting a device failed');
        socket.close(CLOSE.internal.code, CLOSE.internal.reason);
        return undefined;
      });
    socket.on('close', () => void connected.then((handle) => handle?.disconnect()));
    socket.on('message', (data, isBinary) => {
      // Whatever the device sends shows it is there, as a pong does.
      alive.add(socket);
      void connected.then(async (handle) => {
        if (!handle || socket.readyState !== WebSocket.OPEN) return;
        const frame = deviceFrameOf(isBinary ? undefined : data.toString());
        if ('refused' in frame) return reply(socket, { error: { code: 'bad_frame', message: frame.refused } });
        if (frame.kind === 'heartbeat') return socket.send(HEARTBEAT_ANSWER);
        if (frame.kind === 'unanswered') return;
        const { messageId } = frame;
        try {
          await handle.confirm(messageId);
          if (frame.kind === 'confirm') reply(socket, { confirmed: messageId });
        } catch (error) {
          const refusal = confirmationError(error, deviceId, deps.log);
          // The plain-text protocol has no answer to CFM: a device speaking it learns nothing from one, and
          // an open needConfirm message is sent again, to be confirmed again.
          if (frame.kind === 'confirm') reply(socket, { error: refusal, confirm: messageId });
        }
      });
    });
  });

  return {
    wss,
    async close() {
      clearInterval(heartbeat);
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

/**
 * Why a confirmation was not recorded: a refusal (`not_found`, `expired`) or busy (others writing; confirm
 * again) — a frame names a HeraldError by its own code — or herald's failure.
 */
function confirmationError(error: unknown, deviceId: string, log: Logger): { code: string; message: string } {
  if (error instanceof HeraldError) return frameError(error);
  log.error({ err: error, deviceId }, 'msgpush: recording a confirmation failed');
  return { code: 'internal', message: 'internal error; confirm again' };
}

function reply(socket: WebSocket, frame: unknown): void {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}

/**
 * The device id of a connection's URL. The original server matched the parameter's name in any case
 * (`?deviceid=` too); an exact `deviceId` comes first.
 */
function deviceIdOf(url: string | undefined): string | null {
  const params = new URL(url ?? '/', 'http://herald').searchParams;
  const exact = params.get('deviceId');
  if (exact !== null) return exact;
  for (const [name, value] of params) if (name.toLowerCase() === 'deviceid') return value;
  return null;
}

/** The original one-push server's answer to a heartbeat. */
const HEARTBEAT_ANSWER = 'ACK1';
const MAX_MESSAGE_ID_LENGTH = 64;

type DeviceFrame =
  | { readonly kind: 'heartbeat' }
  /** `confirm`: the JSON frame, answered; `cfm`: the original client's `CFM:<id>`, not answered. */
  | { readonly kind: 'confirm' | 'cfm'; readonly messageId: string }
  /** A `CFM:` with no possible message id: the plain-text protocol answers nothing, not even a refusal (its client would read a JSON answer as a message). */
  | { readonly kind: 'unanswered' }
  | { readonly refused: string };

const NOT_A_CONFIRMATION = { refused: 'expected {"confirm": "<messageId>"}, CFM:<messageId> or HBT' } as const;

/** What a device's frame asks, or why it is refused. The original client's plain-text frames are read as that server read them (prefixes). */
function deviceFrameOf(text: string | undefined): DeviceFrame {
  if (text === undefined) return NOT_A_CONFIRMATION;
  if (text.startsWith('HBT')) return { kind: 'heartbeat' };
  if (text.startsWith('CFM:')) {
    const messageId = text.slice(4).trim();
    return isMessageId(messageId) ? { kind: 'cfm', messageId } : { kind: 'unanswered' };
  }
  let frame: unknown;
  try {
    frame = JSON.parse(text) as unknown;
  } catch {
    return NOT_A_CONFIRMATION;
  }
  const illFormed = illFormedTextAt(frame);
  if (illFormed !== undefined) return { refused: notUnicode(illFormed) };
  const id = typeof frame === 'object' && frame !== null ? (frame as Record<string, unknown>).confirm : undefined;
  return isMessageId(id) ? { kind: 'confirm', messageId: id } : NOT_A_CONFIRMATION;
}

const isMessageId = (id: unknown): id is string =>
  typeof id === 'string' && id.length > 0 && id.length <= MAX_MESSAGE_ID_LENGTH;

/** A push's frame per wire variant, made once per push object and shared by every device it reaches. */
const frames = new WeakMap<DevicePush, Map<string, string>>();

function frameOf(push: DevicePush, device: DeviceView): string {
  const { message } = push;
  const variant = message.kind === 'topvdn' ? 'topvdn' : device.platform === 'IOS' ? 'ios' : 'other';
  let byVariant = frames.get(push);
  if (!byVariant) frames.set(push, (byVariant = new Map()));
  let frame = byVariant.get(variant);
  if (frame === undefined) {
    frame = JSON.stringify(
      message.kind === 'topvdn'
        ? {
            messageId: topvdnRequestId(push.pushId),
            appId: push.appId,
            type: 'topvdn',
            msg: message.msg,
            flag: message.flag,
            from: message.from,
            needConfirm: push.needsConfirm,
          }
        : {
            messageId: push.pushId,
            id: push.pushId,
            appId: push.appId,
            tenantCode: message.tenantCode,
            alert: message.alert,
            extra: message.extra,
            pushMsgType: message.pushMsgType,
            ...(variant === 'ios' && message.sound !== null && { sound: message.sound }),
            ...(variant === 'ios' && message.badge !== null && { badge: message.badge }),
            needConfirm: push.needsConfirm,
          },
    );
    byVariant.set(variant, frame);
  }
  return frame;
}
