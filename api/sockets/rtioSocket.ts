import { WebSocket, WebSocketServer } from 'ws';
import { HeraldError } from '../../domain/heraldError';
import { isDeviceCode, RTIO_LIMITS } from '../../domain/rtio/rtio';
import { illFormedTextAt, isStorableText, notUnicode } from '../../domain/text';
import type { Rtio } from '../../src/rtio/deviceCalls';
import type { Logger } from '../../src/runtime/logger';
import { frameError } from './frameErrors';

/**
 * RTIO's device socket (docs/api/rtio.md): `ws://host/rtio.ws`, JSON text frames.
 *
 * device → herald, first: `{"device_id", "device_key"}` → `{"authenticated": true}` (else closed 4401);
 * herald → device, a call: `{"call_id", "message", "time_live"}`;
 * device → herald, its reply: `{"call_id", "code", "message"}` → `{"replied": "<call_id>"}`, or
 * `{"error": {"code", "message"}, "call_id"}` (no such call waiting: it timed out, or was never made);
 * device → herald, a report: `{"report": "<message ≤ 1,024 bytes>"}` → `{"reported": "<report id>"}`,
 * forwarded to the notify URL (src/rtio/reportForwarder.ts); over the sending rate
 * `{"error": {"code": "rate_limited", "message", "retry_after_seconds"}}`.
 * The key travels in a frame, not the URL, so it is not in access logs.
 */

export const RTIO_PATH = '/rtio.ws';

const CLOSE = {
  unauthenticated: { code: 4401, reason: 'send {"device_id", "device_key"} first, within 10 s' },
  internal: { code: 1011, reason: 'internal error' },
} as const;
const AUTHENTICATE_WITHIN_MS = 10_000;
const MAX_FRAME_BYTES = 4096;

export function rtioSockets(deps: { readonly rtio: Rtio; readonly log: Logger }): {
  readonly wss: WebSocketServer;
  close(): Promise<void>;
} {
  const wss = new WebSocketServer({ noServer: true, maxPayload: MAX_FRAME_BYTES });

  wss.on('connection', (socket: WebSocket) => {
    let deviceId: string | undefined;
    let appId: string | undefined;
    let disconnect: (() => void) | undefined;
    const unauthenticated = setTimeout(
      () => socket.close(CLOSE.unauthenticated.code, CLOSE.unauthenticated.reason),
      AUTHENTICATE_WITHIN_MS,
    );
    socket.on('close', () => {
      clearTimeout(unauthenticated);
      disconnect?.();
    });
    // Frames are taken one after the other: a reply is never handled before the authentication before it.
    let frames = Promise.resolve();
    socket.on('message', (data, isBinary) => {
      frames = frames
        .then(() => handle(isBinary ? undefined : data.toString()))
        .catch((error: unknown) => {
          deps.log.error({ err: error }, 'rtio socket: a frame failed');
          socket.close(CLOSE.internal.code, CLOSE.internal.reason);
        });
    });

    const handle = async (text: string | undefined): Promise<void> => {
      const parsed = parse(text);
      // Text that is not Unicode (a `\ud800` escape) makes a frame bad as a whole, before any field is read.
      const illFormed = parsed && illFormedTextAt(parsed);
      const frame = illFormed === undefined ? parsed : undefined;
      if (deviceId === undefined) {
        const device =
          frame && typeof frame.device_id === 'string' && typeof frame.device_key === 'string'
            ? await deps.rtio.authenticateDevice(frame.device_id, frame.device_key)
            : undefined;
        if (!device || !frame)
          return socket.close(CLOSE.unauthenticated.code, 'device_id and device_key do not match a device');
        clearTimeout(unauthenticated);
        deviceId = frame.device_id as string;
        appId = device.appId;
        disconnect = deps.rtio.connect(deviceId, {
          call: (call) => {
            if (socket.readyState !== WebSocket.OPEN) return false;
            socket.send(
              JSON.stringify({ call_id: call.callId, message: call.message, time_live: call.timeLiveSeconds }),
            );
            return true;
          },
          close: (code, reason) => socket.close(code, reason),
        });
        return reply(socket, { authenticated: true });
      }
      if (illFormed !== undefined)
        return reply(socket, { error: { code: 'bad_frame', message: notUnicode(illFormed) } });
      if (typeof frame?.report === 'string') {
        const report = frame.report;
        if (Buffer.byteLength(report, 'utf8') > RTIO_LIMITS.reportBytes || !isStorableText(report)) {
          return reply(socket, {
            error: { code: 'bad_frame', message: `a report is at most ${RTIO_LIMITS.reportBytes} bytes of text` },
          });
        }
        try {
          return reply(socket, { reported: await deps.rtio.report({ deviceId, appId: appId! }, report) });
        } catch (error) {
          if (error instanceof HeraldError && error.code === 'rate_limited') {
            return reply(socket, {
              error: { code: 'rate_limited', message: error.message, retry_after_seconds: error.retryAfterSeconds },
            });
          }
          // The store failed (down, restarting): the device keeps its socket and reports again, as a
          // ONE-PUSH device confirms again; closing it made every device of the node reconnect at once.
          deps.log.error({ err: error, deviceId }, 'rtio socket: recording a report failed');
          return reply(socket, { error: { code: 'internal', message: 'internal error; report again' } });
        }
      }
      const callId = frame?.call_id;
      const code = frame?.code;
      const message = frame?.message ?? '';
      if (
        typeof callId !== 'string' ||
        !isDeviceCode(code) ||
        typeof message !== 'string' ||
        Buffer.byteLength(message, 'utf8') > RTIO_LIMITS.messageBytes ||
        !isStorableText(message)
      ) {
        return reply(socket, {
          error: {
            code: 'bad_frame',
            message: `expected {"call_id", "code" (an integer), "message" (at most ${RTIO_LIMITS.messageBytes} bytes)} or {"report"}`,
          },
        });
      }
      try {
        deps.rtio.reply(deviceId, callId, { code, message });
        reply(socket, { replied: callId });
      } catch (error) {
        if (!(error instanceof HeraldError)) throw error;
        reply(socket, { error: frameError(error), call_id: callId });
      }
    };
  });

  return {
    wss,
    async close() {
      for (const client of wss.clients) client.terminate();
      await new Promise<void>((resolve) => wss.close(() => resolve()));
    },
  };
}

function parse(text: string | undefined): Record<string, unknown> | undefined {
  if (text === undefined) return undefined;
  try {
    const frame = JSON.parse(text) as unknown;
    return typeof frame === 'object' && frame !== null && !Array.isArray(frame)
      ? (frame as Record<string, unknown>)
      : undefined;
  } catch {
    return undefined;
  }
}

function reply(socket: WebSocket, frame: unknown): void {
  if (socket.readyState === WebSocket.OPEN) socket.send(JSON.stringify(frame));
}
