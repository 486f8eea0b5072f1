import type { Pool } from 'pg';
import type { Database } from '../../postgres/database';
import type {
  AllSubscription,
  AppendResult,
  EventStore,
  ExpectedRevision,
  ExportOutput,
  ExportProgress,
  ExportSelection,
  NewEvent,
  ReadAllOptions,
  ReadStreamOptions,
  RecordedEvent,
  SubscribeToAllOptions,
} from '../eventStore';
import { GroupCommit } from './append';
import { exportJsonLines } from './jsonLinesExport';
import { checkPosition, readSettled, readStream } from './reads';
import { AppendNotifications, subscribeToAll } from './subscription';

/**
 * The PostgreSQL adapter of the event store port, composed of:
 * - append.ts: group commit, many appends per transaction through `herald_append_batch`;
 * - reads.ts: stream and global reads; the global order only shows settled rows, so a late commit is
 *   waited for, never skipped;
 * - subscription.ts: catch-up subscriptions woken by the appends' NOTIFY;
 * - jsonLinesExport.ts: `herald replay`'s lines written by PostgreSQL (COPY);
 * - schema/: the tables and PL/pgSQL functions, as migrations (postgresEventStoreMigrations).
 */
export class PostgresEventStore implements EventStore {
  readonly kind = 'postgresql' as const;
  private readonly pool: Pool;
  private readonly appends: GroupCommit;
  private readonly notifications: AppendNotifications;

  constructor(database: Database) {
    this.pool = database.pool;
    this.appends = new GroupCommit(database.pool);
    this.notifications = new AppendNotifications(database);
  }

  append(
    streamName: string,
    events: readonly NewEvent[],
    expectedRevision: ExpectedRevision = 'any',
  ): Promise<AppendResult> {
    return this.appends.append(streamName, events, expectedRevision);
  }

  readStream(streamName: string, options?: ReadStreamOptions): Promise<RecordedEvent[]> {
    return readStream(this.pool, streamName, options);
  }

  async readAll(options: ReadAllOptions = {}): Promise<RecordedEvent[]> {
    await checkPosition(this.pool, options.after);
    return readSettled(this.pool, options);
  }

  async headPosition(): Promise<bigint> {
    const [newest] = await this.readAll({ direction: 'backwards', maxCount: 1 });
    return newest?.position ?? -1n;
  }

  subscribeToAll(options: SubscribeToAllOptions = {}): AllSubscription {
    return subscribeToAll(this.pool, this.notifications, options);
  }

  exportJsonLines(
    selection: ExportSelection,
    head: bigint,
    write: ExportOutput,
    onProgress?: (progress: ExportProgress) => void,
  ): Promise<ExportProgress> {
    return exportJsonLines(this.pool, selection, head, write, onProgress);
  }

  close(): Promise<void> {
    return this.notifications.close();
  }
}
