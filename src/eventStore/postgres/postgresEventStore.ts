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
  StreamRemoval,
  SubscribeToAllOptions,
} from '../eventStore';
import { GroupCommit } from './append';
import { exportJsonLines } from './jsonLinesExport';
import { checkPosition, readGlobal, readStream } from './reads';
import { removeStreamEvents } from './removal';
import { AppendNotifications, LiveTail, subscribeToAll } from './subscription';

/**
 * The PostgreSQL adapter of the event store port, composed of:
 * - append.ts: group commit, many appends per transaction through `herald_append_batch`;
 * - reads.ts: stream and global reads; positions commit in order (every writer holds the append lock),
 *   so a read by position never skips a late commit;
 * - subscription.ts: catch-up subscriptions woken by the appends' NOTIFY, sharing one read of the live tail;
 * - jsonLinesExport.ts: `herald replay`'s lines written by PostgreSQL (COPY);
 * - removal.ts: retention's removal of retired streams' events, once archived;
 * - schema/: the tables and PL/pgSQL functions, as migrations (postgresEventStoreMigrations).
 */
export class PostgresEventStore implements EventStore {
  readonly kind = 'postgresql' as const;
  private readonly pool: Pool;
  private readonly appends: GroupCommit;
  private readonly notifications: AppendNotifications;
  private readonly tail: LiveTail;

  constructor(database: Database) {
    this.pool = database.pool;
    this.appends = new GroupCommit(database.pool, database.notices);
    this.notifications = new AppendNotifications(database);
    this.tail = new LiveTail(database.pool, this.notifications);
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
    return readGlobal(this.pool, options);
  }

  async headPosition(): Promise<bigint> {
    const [newest] = await this.readAll({ direction: 'backwards', maxCount: 1 });
    return newest?.position ?? -1n;
  }

  subscribeToAll(options: SubscribeToAllOptions = {}): AllSubscription {
    return subscribeToAll(this.pool, this.notifications, this.tail, options);
  }

  exportJsonLines(
    selection: ExportSelection,
    head: bigint,
    write: ExportOutput,
    onProgress?: (progress: ExportProgress) => void,
  ): Promise<ExportProgress> {
    return exportJsonLines(this.pool, selection, head, write, onProgress);
  }

  removeStreamEvents(streams: readonly string[], upto: bigint): Promise<StreamRemoval> {
    return removeStreamEvents(this.pool, streams, upto);
  }

  close(): Promise<void> {
    return this.notifications.close();
  }
}
