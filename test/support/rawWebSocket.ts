import { randomBytes } from 'node:crypto';
import net from 'node:net';

/**
 * A WebSocket client made of a TCP socket (node:net), so a test can send frames no WebSocket library
 * would: unmasked, with RSV bits, a reserved opcode, invalid UTF-8, a bad close code, over the
 * endpoint's maxPayload (issue 21 item 1). RFC 6455 §5.2 gives the frame layout.
 */

/** A client frame: FIN + `opcode` (and `rsv` bits), masked unless `masked` is false. */
export function clientFrame(
  opcode: number,
  payload: Buffer,
  {
    rsv = 0,
    masked = true,
    claimedLength = payload.length,
  }: { rsv?: number; masked?: boolean; claimedLength?: number } = {},
): Buffer {
  const first = 0x80 | (rsv << 4) | opcode;
  const maskBit = masked ? 0x80 : 0;
  let header: Buffer;
  if (claimedLength < 126) header = Buffer.from([first, maskBit | claimedLength]);
  else if (claimedLength < 65536) {
    header = Buffer.from([first, maskBit | 126, 0, 0]);
    header.writeUInt16BE(claimedLength, 2);
  } else {
    header = Buffer.from([first, maskBit | 127, 0, 0, 0, 0, 0, 0, 0, 0]);
    header.writeBigUInt64BE(BigInt(claimedLength), 2);
  }
  if (!masked) return Buffer.concat([header, payload]);
  const mask = randomBytes(4);
  const body = Buffer.from(payload.map((byte, i) => byte ^ mask[i % 4]!));
  return Buffer.concat([header, mask, body]);
}

const TEXT = 0x1;
const CLOSE = 0x8;

/** Each kind of invalid client frame, and the close code `ws` answers it with (RFC 6455 §7.4.1). */
export const BAD_FRAMES = {
  unmasked: { frame: () => clientFrame(TEXT, Buffer.from('hi'), { masked: false }), closeCode: 1002 },
  'RSV bits set': { frame: () => clientFrame(TEXT, Buffer.from('hi'), { rsv: 0b100 }), closeCode: 1002 },
  'a reserved opcode': { frame: () => clientFrame(0x3, Buffer.from('hi')), closeCode: 1002 },
  'text that is not UTF-8': { frame: () => clientFrame(TEXT, Buffer.from([0x7b, 0xff, 0xfe, 0x7d])), closeCode: 1007 },
  'a bad close code': { frame: () => clientFrame(CLOSE, Buffer.from([0x03, 0xe7])), closeCode: 1002 },
  // Over every endpoint's maxPayload (4 KB on the device sockets, 256 KB on /graphql); ws refuses the
  // frame from its header, so only the first 5,000 bytes (the issue's 'x'.repeat(5000)) are sent.
  'over maxPayload': {
    frame: () => clientFrame(TEXT, Buffer.alloc(5000, 'x'), { claimedLength: 1024 * 1024 }),
    closeCode: 1009,
  },
} as const;
export type BadFrameKind = keyof typeof BAD_FRAMES;

/**
 * Opens a WebSocket on `url` (ws://host/path?query) with a raw handshake, sends `frame`, and resolves
 * with the code of the close frame herald answers (undefined if the connection ends without one).
 * `protocol`: the Sec-WebSocket-Protocol to ask for.
 */
export function sendRawFrame(url: string, frame: Buffer, protocol?: string): Promise<number | undefined> {
  const { hostname, port, pathname, search } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname);
    let received = Buffer.alloc(0);
    let upgraded = false;
    const done = (code: number | undefined) => {
      socket.destroy();
      resolve(code);
    };
    socket.on('error', reject);
    socket.on('close', () =>
      upgraded ? resolve(undefined) : reject(new Error(`no upgrade: ${received.toString('latin1').slice(0, 200)}`)),
    );
    socket.on('connect', () => {
      socket.write(
        `GET ${pathname}${search} HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${randomBytes(16).toString('base64')}\r\nSec-WebSocket-Version: 13\r\n` +
          `${protocol ? `Sec-WebSocket-Protocol: ${protocol}\r\n` : ''}\r\n`,
      );
    });
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      if (!upgraded) {
        const end = received.indexOf('\r\n\r\n');
        if (end === -1) return;
        const head = received.subarray(0, end).toString('latin1');
        if (!head.startsWith('HTTP/1.1 101')) return reject(new Error(`no upgrade: ${head}`));
        upgraded = true;
        received = received.subarray(end + 4);
        socket.write(frame);
      }
      // Server frames are unmasked: skip data frames (a device's queued messages) up to the close frame.
      for (;;) {
        const parsed = serverFrame(received);
        if (!parsed) return;
        if (parsed.opcode === CLOSE)
          return done(parsed.payload.length >= 2 ? parsed.payload.readUInt16BE(0) : undefined);
        received = received.subarray(parsed.size);
      }
    });
  });
}

function serverFrame(data: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
  if (data.length < 2) return undefined;
  let length = data[1]! & 0x7f;
  let offset = 2;
  if (length === 126) {
    if (data.length < 4) return undefined;
    length = data.readUInt16BE(2);
    offset = 4;
  } else if (length === 127) {
    if (data.length < 10) return undefined;
    length = Number(data.readBigUInt64BE(2));
    offset = 10;
  }
  if (data.length < offset + length) return undefined;
  return { opcode: data[0]! & 0x0f, payload: data.subarray(offset, offset + length), size: offset + length };
}
