import pg from 'pg';

/**
 * Runs `work` in one transaction: COMMIT when it resolves, ROLLBACK when it throws. Given a pool, it
 * takes a connection for the transaction; a connection whose transaction failed may be broken, so it is
 * discarded rather than pooled. Given a client (one holding a session lock, say), it runs on that client.
 *
 * `firstStatement`, SQL without parameters, is sent with BEGIN in the same round trip: a hot path's
 * transaction (a projection batch) saves one round trip that way.
 */
export async function withTransaction<T>(
  db: pg.Pool | pg.PoolClient | pg.Client,
  work: (tx: pg.PoolClient) => Promise<T>,
  firstStatement?: string,
): Promise<T> {
  // A plain Client serves as well as a pooled one inside `work`; only the pooled one is released.
  const client = (db instanceof pg.Pool ? await db.connect() : db) as pg.PoolClient;
  let failure: Error | undefined;
  try {
    await client.query(firstStatement ? `BEGIN; ${firstStatement}` : 'BEGIN');
    const result = await work(client);
    await client.query('COMMIT');
    return result;
  } catch (error) {
    failure = error instanceof Error ? error : new Error(String(error));
    await client.query('ROLLBACK').catch(() => undefined);
    throw error;
  } finally {
    if (client !== db) client.release(failure);
  }
}
