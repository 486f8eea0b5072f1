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
