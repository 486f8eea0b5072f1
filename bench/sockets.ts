/** WebSocket helpers shared by the benchmarks and their subscriber processes (only `ws` is loaded). */
import WebSocket from 'ws';
import { deadline } from './run';

/** Closes the sockets, waiting for each to close for at most `graceMs`; then ends whatever is left. */
export async function closeSockets(sockets: readonly WebSocket[], graceMs: number): Promise<void> {
  await Promise.race([
    Promise.all(
      sockets.map(
        (socket) =>
          new Promise<void>((resolve) => {
            if (socket.readyState === WebSocket.CLOSED) return resolve();
            socket.once('close', () => resolve());
            socket.close();
          }),
      ),
    ),
    deadline(graceMs),
  ]);
  for (const socket of sockets) socket.terminate();
}

/**
 * Bounds a socket's connect: an error, a close or `timeoutMs` passing (which terminates the socket) rejects
 * it; `onClose` hears every close, during the connect and after. Returns what to call once connected.
 */
export function boundConnect(
  socket: WebSocket,
  timeoutMs: number,
  reject: (error: Error) => void,
  onClose: (code: number) => void,
): () => void {
  const timer = setTimeout(() => {
    socket.terminate();
    reject(new Error('connect timeout'));
  }, timeoutMs);
  socket.on('error', (error) => {
    clearTimeout(timer);
    reject(error);
  });
  socket.on('close', (code) => {
    clearTimeout(timer);
    reject(new Error(`closed ${code}`));
    onClose(code);
  });
  return () => clearTimeout(timer);
}
