import pg from 'pg';

/**
 * A session-level advisory lock on a dedicated connection: held for as long as that connection lives,
 * so a process that dies (or whose host vanishes: the server probes idle sessions, docs/operations.md)
 * lets go of it, and another takes it over. Used for what one node at a time may do: apply a projection,
 * run the background work.
 */
export class SessionLock {
  private constructor(private readonly client: pg.Client) {}

  /**
   * The lock `(space, hashtext(name))`, or undefined when another session holds it. `onLost` is told
   * once if the connection fails while it is held: the lock has gone with it.
   */
  static async tryAcquire(
    clientConfig: pg.ClientConfig,
    space: number,
    name: string,
    onLost: () => void,
  ): Promise<SessionLock | undefined> {
    const client = new pg.Client(clientConfig);
    let held = false;
    client.on('error', () => {
      if (held) onLost();
      held = false;
    });
    await client.connect();
    try {
      const { rows } = await client.query<{ locked: boolean }>(
        'SELECT pg_try_advisory_lock($1, hashtext($2)) AS locked',
        [space, name],
      );
      if (!rows[0]?.locked) {
        await client.end();
        return undefined;
      }
    } catch (error) {
      await client.end().catch(() => undefined);
      throw error;
    }
    held = true;
    return new SessionLock(client);
  }

  /** Ends the session, and the lock with it. */
  async release(): Promise<void> {
    this.client.removeAllListeners('error');
    this.client.on('error', () => undefined);
    await this.client.end().catch(() => undefined);
  }
}
