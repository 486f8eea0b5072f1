import WebSocket from 'ws';
import { Changes } from './changes';

/** A legacy ONE-PUSH terminal in a test: a plain `ws` client on /msgpush.ws that records every frame. */
export class DeviceSocket {
  readonly frames: Array<Record<string, unknown>> = [];
  closeCode: number | undefined;
  closeReason = '';
  private readonly changes = new Changes();

  private constructor(readonly socket: WebSocket) {
    socket.on('message', (data) => {
      this.frames.push(frameOf(data.toString()));
      this.notify();
    });
    socket.on('close', (code, reason) => {
      this.closeCode = code;
      this.closeReason = reason.toString();
      this.notify();
    });
  }

  /** Connects `deviceId` (as given: a test may pass none or a bad one); resolves once the socket is open. */
  static async connect(url: string, deviceId: string | undefined): Promise<DeviceSocket> {
    const socket = new WebSocket(
      `${url.replace(/^http/, 'ws')}/msgpush.ws${deviceId === undefined ? '' : `?deviceId=${encodeURIComponent(deviceId)}`}`,
    );
    const device = new DeviceSocket(socket);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    return device;
  }

  /** Messages pushed to the device (frames with a messageId), in arrival order. */
  get messages(): Array<Record<string, unknown>> {
    return this.frames.filter((frame) => typeof frame.messageId === 'string');
  }

  confirm(messageId: string): void {
    this.socket.send(JSON.stringify({ confirm: messageId }));
  }

  /** Sends a text frame as given (the original one-push client's `HBT`, `CFM:<id>`). */
  sendText(text: string): void {
    this.socket.send(text);
  }

  /** Waits until `condition` holds, or fails after the deadline. */
  async until(condition: (device: DeviceSocket) => boolean, what: string, timeoutMs = 10_000): Promise<void> {
    await this.changes.until(
      () => condition(this),
      () => `device: timed out waiting for ${what}; frames ${JSON.stringify(this.frames)}, close ${this.closeCode}`,
      timeoutMs,
    );
  }

  close(): void {
    this.socket.close();
  }

  private notify(): void {
    this.changes.notify();
  }
}

/** A JSON frame as its object; any other text frame (the original protocol's `ACK1`) as `{text}`. */
function frameOf(text: string): Record<string, unknown> {
  try {
    const frame = JSON.parse(text) as unknown;
    if (typeof frame === 'object' && frame !== null && !Array.isArray(frame)) return frame as Record<string, unknown>;
  } catch {
    // not JSON
  }
  return { text };
}
