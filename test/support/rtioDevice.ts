import WebSocket from 'ws';
import { Changes } from './changes';

/** An RTIO device in a test: the /rtio.ws socket, authenticated, answering calls as `answer` says. */
export class RtioDevice {
  readonly calls: Array<{ call_id: string; message: string; time_live: number }> = [];
  readonly frames: Array<Record<string, unknown>> = [];
  closeCode: number | undefined;
  private readonly changes = new Changes();

  private constructor(
    readonly socket: WebSocket,
    /** What the device replies to a call; undefined: it stays silent. */
    public answer: (message: string) => { code: number; message: string } | undefined,
  ) {
    socket.on('message', (data) => {
      const frame = JSON.parse(data.toString()) as Record<string, unknown>;
      this.frames.push(frame);
      if (typeof frame.call_id === 'string' && typeof frame.message === 'string') {
        this.calls.push(frame as never);
        const reply = this.answer(frame.message);
        if (reply) socket.send(JSON.stringify({ call_id: frame.call_id, ...reply }));
      }
      this.changes.notify();
    });
    socket.on('close', (code) => {
      this.closeCode = code;
      this.changes.notify();
    });
  }

  static async connect(
    url: string,
    credentials: Record<string, unknown>,
    answer: RtioDevice['answer'] = (message) => ({ code: 1000, message: `echo ${message}` }),
  ): Promise<RtioDevice> {
    const socket = new WebSocket(`${url.replace(/^http/, 'ws')}/rtio.ws`);
    const device = new RtioDevice(socket, answer);
    await new Promise<void>((resolve, reject) => {
      socket.once('open', () => resolve());
      socket.once('error', reject);
    });
    socket.send(JSON.stringify(credentials));
    await device.until(
      (d) => d.frames.some((f) => f.authenticated === true) || d.closeCode !== undefined,
      'authentication',
    );
    return device;
  }

  report(message: string): void {
    this.socket.send(JSON.stringify({ report: message }));
  }

  until(condition: (device: RtioDevice) => boolean, what: string): Promise<void> {
    return this.changes.until(
      () => condition(this),
      () => `rtio device: timed out waiting for ${what}; frames ${JSON.stringify(this.frames)}`,
      10_000,
    );
  }
}

/**
 * A new RTIO device from the seed's POST /manage/create_device: of `RTIO_APP_ID`'s app, or of `app` when
 * its credentials are given (X-App-Id / X-App-Key).
 */
export async function createRtioDevice(
  baseUrl: string,
  nonce: string,
  app?: { readonly appId: string; readonly secret: string },
): Promise<{ device_id: string; device_key: string }> {
  const response = await fetch(`${baseUrl}/manage/create_device`, {
    method: 'POST',
    ...(app && { headers: { 'x-app-id': app.appId, 'x-app-key': app.secret } }),
    body: JSON.stringify({ nonce }),
  });
  const created = (await response.json()) as { code: number; device_id: string; device_key: string };
  if (created.code !== 1000) throw new Error(`no RTIO device for nonce ${nonce}: ${JSON.stringify(created)}`);
  return { device_id: created.device_id, device_key: created.device_key };
}
