import type { Pool } from 'pg';
import {
  APP_RETENTION_CATEGORIES,
  formatKeep,
  RETENTION_CATEGORIES,
  type AppRetentionCategory,
  STREAM_CATEGORIES,
  type RetentionCategory,
  type RetentionPolicy,
} from '../../domain/retention';
import {
  EVENT_SIZES_BY_PREFIX_SQL,
  EVENT_TABLES_SIZE_SQL,
  EVENTS_OF_RETIRED_STREAMS_SQL,
} from '../eventStore/postgres/eventTables';
import type { Infrastructure } from '../infrastructure';
import type { Projection } from '../projection/projection';
import type { EventArchive } from './eventArchive';
import { retiredStreamsQueued } from './eventRetention';
import { nextPassCounts, type AppRetentions, type Prunable } from './retention';

/**
 * What herald keeps and what retention will remove (`herald storage status`, the /metrics gauges):
 * catalogue figures — rows are PostgreSQL's live-row estimates (pg_stat), bytes include indexes and
 * TOAST — so reading them costs nothing whatever the tables' size. The event store's categories are
 * counted exactly, by one scan of the events table (the CLI only).
 */

export interface TableSize {
  readonly table: string;
  readonly rows: number;
  readonly bytes: number;
}

/**
 * Rows and bytes of each table; a table that does not exist is left out. Rows are PostgreSQL's
 * estimate (what its statistics have been told, a second or so behind), or with `exact` counted (a scan
 * of each table: for the CLI, never for /metrics).
 */
export async function tableSizes(pool: Pool, tables: readonly string[], exact = false): Promise<TableSize[]> {
  // The names are the projections' own (Projection.tables), each quoted: nothing else reaches this SQL.
  const rowsOf = exact
    ? `(xpath('/row/n/text()', query_to_xml(format('SELECT count(*) AS n FROM %I', t.name), false, true, '')))[1]::text::bigint`
    : 'pg_stat_get_live_tuples(t.oid)';
  const { rows } = await pool.query<{ table: string; rows: string; bytes: string }>(
    `SELECT t.name AS table, ${rowsOf} AS rows, pg_total_relation_size(t.oid) AS bytes
       FROM (SELECT name, to_regclass(name)::oid AS oid FROM unnest($1::text[]) AS name) t
      WHERE t.oid IS NOT NULL ORDER BY t.name`,
    [tables],
  );
  return rows.map((r) => ({ table: r.table, rows: Number(r.rows), bytes: Number(r.bytes) }));
}

export interface StorageStatus {
  readonly at: string;
  readonly databaseBytes: number;
  /** Whether read model rows were counted (--exact) or are PostgreSQL's estimates. */
  readonly exactRows: boolean;
  readonly retention: Readonly<Record<RetentionCategory, string>>;
  /**
   * The apps that set their own retention of the records that never end (GraphQL `setRetention`): per
   * category the app's setting, null where it follows `retention`'s.
   */
  readonly appRetention: ReadonlyArray<
    { readonly appId: string } & Readonly<Record<AppRetentionCategory, string | null>>
  >;
  readonly readModels: ReadonlyArray<
    TableSize & {
      readonly projection: string;
      /**
       * Rows the next pruning pass would remove, every app's settings applied (null: the table is not
       * pruned, or kept forever by the deployment and every app).
       */
      readonly removableNextPass: number | null;
    }
  >;
  readonly events: {
    readonly store: 'postgresql' | 'eventstoredb';
    /** Null for EventStoreDB: its sizes are its own (its admin UI, `$stats`). */
    readonly bytes: number | null;
    readonly oldestPosition: string | null;
    readonly categories: ReadonlyArray<{
      readonly prefix: string;
      readonly category: RetentionCategory | null;
      readonly events: number;
      readonly bytes: number;
      readonly oldestPosition: string;
    }> | null;
    /** Streams the read models' pruning retired: the event store's next passes archive and remove them. */
    readonly retiredStreams: number;
    /** Their events the store holds (PostgreSQL; null on EventStoreDB). */
    readonly removableEvents: number | null;
  };
  /** What retention archived (HERALD_ARCHIVE_DIR): the manifests' totals and each segment's range. */
  readonly archive: {
    readonly directory: string;
    readonly files: number;
    readonly events: number;
    readonly bytes: number;
    readonly firstPosition: string | null;
    readonly lastPosition: string | null;
    /** Per segment directory, in position order; the last MAX_SEGMENTS_SHOWN. */
    readonly segments: ReadonlyArray<{
      readonly segment: string;
      readonly files: number;
      readonly events: number;
      readonly bytes: number;
      readonly firstPosition: string;
      readonly lastPosition: string;
    }>;
  };
}

const MAX_SEGMENTS_SHOWN = 100;

export async function storageStatus(deps: {
  readonly infrastructure: Infrastructure;
  readonly projections: readonly Projection[];
  readonly prunables: readonly Prunable[];
  readonly policy: RetentionPolicy;
  readonly appRetentions: AppRetentions;
  readonly now: Date;
  /** Count each table's rows instead of PostgreSQL's estimate. */
  readonly exact?: boolean;
  readonly archive: EventArchive;
}): Promise<StorageStatus> {
  const { infrastructure, projections, prunables, policy, now, archive } = deps;
  const { pool } = infrastructure.database;
  const ownerOf = new Map(projections.flatMap((p) => p.tables.map((table) => [table, p.name] as const)));
  const [sizes, removable, database, apps] = await Promise.all([
    tableSizes(pool, [...ownerOf.keys()], deps.exact),
    nextPassCounts(prunables, policy, deps.appRetentions, now),
    pool.query<{ bytes: string }>('SELECT pg_database_size(current_database()) AS bytes'),
    deps.appRetentions.all(),
  ]);
  // A table pruned by several rules (Koala's messages: expired ones, and those of `expire` 0 by app).
  const removableFrom = (table: string) => {
    const counts = removable.filter((r) => r.table === table && r.removable !== null).map((r) => r.removable!);
    return counts.length === 0 ? null : counts.reduce((a, b) => a + b, 0);
  };
  const events = infrastructure.store.kind === 'postgresql' ? await eventSizes(pool) : undefined;
  const [retiredStreams, archived] = await Promise.all([retiredStreamsQueued(pool), archiveSummary(archive)]);
  return {
    at: now.toISOString(),
    databaseBytes: Number(database.rows[0]!.bytes),
    exactRows: deps.exact === true,
    retention: Object.fromEntries(RETENTION_CATEGORIES.map((c) => [c, formatKeep(policy[c])])) as Record<
      RetentionCategory,
      string
    >,
    appRetention: [...apps].map(([appId, app]) => ({
      appId,
      ...(Object.fromEntries(
        APP_RETENTION_CATEGORIES.map((c) => [c, app[c] === undefined ? null : formatKeep(app[c])]),
      ) as Record<AppRetentionCategory, string | null>),
    })),
    readModels: sizes.map((size) => ({
      ...size,
      projection: ownerOf.get(size.table)!,
      // A table pruned by several rules (stream_ends: RTIO calls and tickets; Koala's messages) sums their counts.
      removableNextPass: removableFrom(size.table),
    })),
    events: {
      store: infrastructure.store.kind,
      bytes: events?.bytes ?? null,
      oldestPosition: events?.oldest ?? null,
      categories: events?.categories ?? null,
      retiredStreams,
      removableEvents: events?.removable ?? null,
    },
    archive: archived,
  };
}

async function archiveSummary(archive: EventArchive): Promise<StorageStatus['archive']> {
  const segments = new Map<string, { files: number; events: number; bytes: number; first: bigint; last: bigint }>();
  for (const file of await archive.files()) {
    const name = file.file.split('/')[0]!;
    const s = segments.get(name) ?? { files: 0, events: 0, bytes: 0, first: BigInt(file.firstPosition), last: 0n };
    const first = BigInt(file.firstPosition);
    const last = BigInt(file.lastPosition);
    segments.set(name, {
      files: s.files + 1,
      events: s.events + file.count,
      bytes: s.bytes + file.bytes,
      first: first < s.first ? first : s.first,
      last: last > s.last ? last : s.last,
    });
  }
  const all = [...segments].map(([segment, s]) => ({
    segment,
    files: s.files,
    events: s.events,
    bytes: s.bytes,
    firstPosition: s.first.toString(),
    lastPosition: s.last.toString(),
  }));
  return {
    directory: archive.directory,
    files: all.reduce((n, s) => n + s.files, 0),
    events: all.reduce((n, s) => n + s.events, 0),
    bytes: all.reduce((n, s) => n + s.bytes, 0),
    firstPosition: all[0]?.firstPosition ?? null,
    lastPosition: all[all.length - 1]?.lastPosition ?? null,
    segments: all.slice(-MAX_SEGMENTS_SHOWN),
  };
}

async function eventSizes(pool: Pool) {
  const [total, byPrefix, removable] = await Promise.all([
    pool.query<{ bytes: string; oldest: string | null }>(EVENT_TABLES_SIZE_SQL),
    pool.query<{ prefix: string; events: string; bytes: string; oldest: string }>(EVENT_SIZES_BY_PREFIX_SQL),
    pool.query<{ n: string }>(EVENTS_OF_RETIRED_STREAMS_SQL),
  ]);
  return {
    removable: Number(removable.rows[0]!.n),
    bytes: Number(total.rows[0]!.bytes),
    oldest: total.rows[0]!.oldest,
    categories: byPrefix.rows.map((r) => ({
      prefix: r.prefix,
      category: STREAM_CATEGORIES[r.prefix] ?? null,
      events: Number(r.events),
      bytes: Number(r.bytes),
      oldestPosition: r.oldest,
    })),
  };
}

/** The status for a terminal: one line per table and per event category. */
export function formatStorageStatus(status: StorageStatus): string {
  const mib = (bytes: number | null) =>
    bytes === null
      ? '-'
      : bytes < 1 << 10
        ? `${bytes} B`
        : bytes < 1 << 20
          ? `${(bytes / (1 << 10)).toFixed(1)} KiB`
          : bytes < 1 << 30
            ? `${(bytes / (1 << 20)).toFixed(1)} MiB`
            : `${(bytes / (1 << 30)).toFixed(1)} GiB`;
  const lines = [
    `database ${mib(status.databaseBytes)} at ${status.at}`,
    `retention ${Object.entries(status.retention)
      .map(([c, keep]) => `${c}=${keep}`)
      .join(' ')}`,
    ...status.appRetention.map(
      (a) =>
        `  app ${a.appId}: ${APP_RETENTION_CATEGORIES.map((c) => `${c}=${a[c] ?? `${status.retention[c]} (default)`}`).join(' ')}`,
    ),
    '',
    `read model table                 projection       ${status.exactRows ? '       rows' : 'rows (est.)'}        size   next pass removes`,
    ...status.readModels.map(
      (t) =>
        `${t.table.padEnd(32)} ${t.projection.padEnd(16)} ${String(t.rows).padStart(11)} ${mib(t.bytes).padStart(11)}   ${t.removableNextPass ?? '-'}`,
    ),
    '',
    `events (${status.events.store}) ${mib(status.events.bytes)}, oldest position ${status.events.oldestPosition ?? '-'}`,
  ];
  if (status.events.categories) {
    lines.push('stream prefix        retention         events        size   oldest position');
    for (const c of status.events.categories)
      lines.push(
        `${c.prefix.padEnd(20)} ${(c.category ? status.retention[c.category] : 'kept').padEnd(10)} ${String(c.events).padStart(13)} ${mib(c.bytes).padStart(11)}   ${c.oldestPosition}`,
      );
  }
  lines.push(
    `next event store pass: ${status.events.retiredStreams} retired streams${status.events.removableEvents === null ? '' : `, ${status.events.removableEvents} events`} to archive and remove`,
    '',
    `archive ${status.archive.directory}: ${status.archive.files} files, ${status.archive.events} events, ${mib(status.archive.bytes)}, positions ${status.archive.firstPosition ?? '-'}..${status.archive.lastPosition ?? '-'}`,
  );
  if (status.archive.segments.length > 0) {
    lines.push('segment           files       events        size   positions');
    for (const s of status.archive.segments)
      lines.push(
        `${s.segment.padEnd(14)} ${String(s.files).padStart(8)} ${String(s.events).padStart(12)} ${mib(s.bytes).padStart(11)}   ${s.firstPosition}..${s.lastPosition}`,
      );
  }
  return lines.join('\n') + '\n';
}
