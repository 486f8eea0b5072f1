/**
 * The event store's data for the benchmarks: histories of camel's messages and datahub notifications
 * generated set-based straight into the PostgreSQL event store (for the rebuild, replay and inbox
 * benchmarks), the store read in position order, projection lag, read-model counts and a timed rebuild.
 * The rest of the benchmarks' shared code has one module per concept beside this one: run.ts (parameters,
 * cleanups, the result document), machine.ts, stats.ts, heraldProcess.ts, httpClient.ts, cpu.ts, load.ts,
 * sockets.ts.
 *
 * Only test/support/, domain/ and the event store's table SQL (src/eventStore/postgres/eventTables.ts, SQL
 * strings only) are imported from the project: herald itself is always run as its own process
 * (`node --import tsx src/cli.ts …`), never loaded into the load generator.
 */
import { isLeft } from 'fp-ts/lib/Either';
import pg from 'pg';
import { messageDecider, MessageEvent, type MessageState } from '../domain/message/message';
import {
  EVENT_COUNTS_BY_TYPE_SQL,
  EVENT_SIZES_BY_PREFIX_SQL,
  eventPageSql,
  insertGeneratedEventsSql,
  NEWEST_POSITION_SQL,
  streamsWithHeadsSql,
  VACUUM_EVENT_TABLES_SQL,
} from '../src/eventStore/postgres/eventTables';
import { APP_ID, type CliRun, createHeraldSchema, runHeraldCli } from './heraldProcess';
import { benchDatabase, type Machine } from './machine';
import { type Cleanup, envInteger, progress, sleep } from './run';
import { latencyStats, type LatencyStats, perSecond, round } from './stats';

/**
 * Projection lag as a reader sees it: every `everyMs` the newest position in the store is noted, and its
 * lag is the time until the projection's checkpoint has passed it (resolution: `everyMs`).
 */
export class ProjectionLagSampler {
  private readonly lags: number[] = [];
  private running = false;
  private drainUntil = 0;
  private loop: Promise<void> | undefined;
  private pending: Array<{ at: number; head: bigint }> = [];

  constructor(
    private readonly databaseUrl: string,
    private readonly projection = 'notifications',
    private readonly everyMs = 20,
  ) {}

  start(): void {
    this.running = true;
    this.loop = (async () => {
      const client = new pg.Client({ connectionString: this.databaseUrl });
      await client.connect();
      try {
        // After stop(): no new samples, but the pending ones are followed until passed (≤ 5 s).
        while (this.running || (this.pending.length > 0 && performance.now() < this.drainUntil)) {
          const { rows } = await client.query<{ head: string | null; checkpoint: string | null }>(
            `SELECT ${NEWEST_POSITION_SQL} AS head, (SELECT position FROM projection_checkpoints WHERE name = $1) AS checkpoint`,
            [this.projection],
          );
          const now = performance.now();
          const checkpoint = BigInt(rows[0]?.checkpoint ?? -1);
          if (this.running) this.pending.push({ at: now, head: BigInt(rows[0]?.head ?? -1) });
          this.pending = this.pending.filter((sample) => {
            if (sample.head > checkpoint) return true;
            this.lags.push(now - sample.at);
            return false;
          });
          await sleep(this.everyMs);
        }
      } finally {
        await client.end();
      }
    })();
  }

  async stop(): Promise<LatencyStats & { stillBehind: number; resolutionMs: number }> {
    this.drainUntil = performance.now() + 5000;
    this.running = false;
    await this.loop;
    return { ...latencyStats(this.lags), stillBehind: this.pending.length, resolutionMs: this.everyMs };
  }
}

// --- message events straight into the event store ------------------------------------------------

/**
 * What to generate: `events` (exactly that many message events) or `notifications` (exactly that many
 * inbox rows once projected). `inboxUser` receives exactly `count` of the messages.
 */
export interface GeneratorOptions {
  readonly target: { readonly events: number } | { readonly notifications: number };
  readonly inboxUser?: { readonly userId: string; readonly count: number };
  /** Size of the recipient population `user-0` … `user-<users-1>` (at least 100). */
  readonly users: number;
  /** Messages per INSERT statement (its slots, precisely); bounds the memory of each statement. */
  readonly chunkMessages: number;
  readonly seed: string;
}

export interface GeneratedData {
  readonly messages: number;
  readonly events: number;
  readonly eventsByType: Record<string, number>;
  /** Inbox rows the notifications projection should hold for these messages (all are delivered). */
  readonly notifications: number;
  readonly inboxUserNotifications: number;
  readonly recipientsPerMessage: {
    readonly mean: number;
    readonly p50: number;
    readonly p90: number;
    readonly max: number;
  };
  readonly seconds: number;
  readonly eventsPerSecond: number;
  /** Events decoded with the io-ts codecs and replayed through the message decider, per stream. */
  readonly verified: { readonly streams: number; readonly events: number };
}

// The shape of the generated history, in "slots": message i is sent (or scheduled) at slot i; the slot
// of an event decides its position. Slots are 100 ms apart in event time, the last ones just before now.
const SCHEDULED_FRACTION = 0.1; // MessageScheduled, then MessageReleased 20-219 slots later
const RELEASE_DELAY_MIN = 20;
const RELEASE_DELAY_SPREAD = 200;
const UNACKED_FRACTION = 0.6; // the others get 1-3 acks, by their first recipients
const MAX_ACKS = 3;
const ACK_GAP_MAX = 40; // ack k comes (k+1)·gap slots after delivery, gap 1-40
const EXPIRING_FRACTION = 0.2; // expiresAt a year after delivery: never expired by the time of the run
const PROPS_FRACTION = 0.1;
const SENDERS = 1000;
const MAX_LAG = RELEASE_DELAY_MIN + RELEASE_DELAY_SPREAD + MAX_ACKS * ACK_GAP_MAX + 1;
const SLOT_MS = 100;

/**
 * Appends a realistic history of camel's messages to the event store tables with set-based SQL (one
 * INSERT … SELECT … generate_series per chunk of slots, positions from the `events.position` identity),
 * keeping `streams.revision` at each stream's last revision. The store's schema must exist (start herald
 * on the database once). Every payload is in the form of domain/message/message.ts; a sample of streams
 * is read back, decoded with the codecs and replayed through the decider to prove it.
 */
export async function generateMessageEvents(databaseUrl: string, options: GeneratorOptions): Promise<GeneratedData> {
  if (options.users < 100) throw new Error('the user population must be at least 100');
  if (!/^[A-Za-z0-9-]{1,40}$/.test(options.seed)) throw new Error('the seed must be 1-40 of A-Z a-z 0-9 -');
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = performance.now();
    const seed = options.seed;
    // A uniform number in [0, 1) from a hash of the message number and a salt: the same run after run.
    const u = (expr: string, salt: string) =>
      `((hashtext('${seed}:${salt}:' || (${expr})::text) & 2147483647)::float8 / 2147483648.0)`;

    // 1. The plan: one row per message, with its recipients count, kind, acks and timing.
    const perMessage = 'events' in options.target ? 1.7 : 10;
    const targetValue = 'events' in options.target ? options.target.events : options.target.notifications;
    if (!Number.isInteger(targetValue) || targetValue < 1) throw new Error('the target must be a positive integer');
    let upper = Math.ceil(targetValue / perMessage) + 1000;
    for (;;) {
      await client.query('DROP TABLE IF EXISTS bench_plan');
      await client.query(`
        CREATE TEMP TABLE bench_plan AS
        SELECT i,
               md5('${seed}:message:' || i)::uuid AS message_id,
               r,
               scheduled,
               CASE WHEN ${u('i', 'acked')} < ${UNACKED_FRACTION} THEN 0 ELSE least(r, 1 + floor(${u('i', 'acks')} * ${MAX_ACKS})::int) END AS acks,
               ${RELEASE_DELAY_MIN} + floor(${u('i', 'delay')} * ${RELEASE_DELAY_SPREAD})::int AS release_delay,
               1 + floor(${u('i', 'gap')} * ${ACK_GAP_MAX})::int AS ack_gap,
               'sender-' || floor(${u('i', 'sender')} * ${SENDERS})::int AS sender,
               floor(${u('i', 'base')} * ${options.users})::int AS base,
               ${u('i', 'expires')} < ${EXPIRING_FRACTION} AS expiring,
               ${u('i', 'props')} < ${PROPS_FRACTION} AS with_props,
               20 + floor(power(${u('i', 'length')}, 2) * 480)::int AS content_length,
               false AS inbox
          FROM (SELECT i,
                       -- 1-50 recipients, skewed toward few: P(1) ≈ 38 %, mean ≈ 10
                       1 + floor(49 * power(${u('i', 'recipients')}, 4))::int AS r,
                       ${u('i', 'scheduled')} < ${SCHEDULED_FRACTION} AS scheduled
                  FROM generate_series(1, ${upper}) AS i) AS g`);
      const measure = 'events' in options.target ? '1 + scheduled::int + acks' : 'r';
      const { rows } = await client.query<{ total: string }>(`SELECT sum(${measure}) AS total FROM bench_plan`);
      if (Number(rows[0]!.total) >= targetValue) {
        await client.query(`ALTER TABLE bench_plan ADD PRIMARY KEY (i)`);
        // Cut at the message that reaches the target, and trim that message to hit it exactly.
        const cut = await client.query<{ i: number; before: string }>(
          `SELECT i, (cum - m)::bigint AS before FROM (SELECT i, ${measure} AS m, sum(${measure}) OVER (ORDER BY i) AS cum FROM bench_plan) s
            WHERE cum >= $1 ORDER BY i LIMIT 1`,
          [targetValue],
        );
        const last = cut.rows[0]!;
        const remaining = targetValue - Number(last.before);
        await client.query('DELETE FROM bench_plan WHERE i > $1', [last.i]);
        if ('events' in options.target) {
          // remaining events for the last message: 1 (sent) or 2+ (scheduled + released, then acks).
          await client.query(
            `UPDATE bench_plan SET scheduled = scheduled AND $2 >= 2, acks = $2 - 1 - (scheduled AND $2 >= 2)::int WHERE i = $1`,
            [last.i, remaining],
          );
        } else {
          await client.query('UPDATE bench_plan SET r = $2, acks = least(acks, $2) WHERE i = $1', [last.i, remaining]);
        }
        break;
      }
      upper *= 2;
    }
    const messages = Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM bench_plan')).rows[0]!.n);
    if (options.inboxUser) {
      const { count, userId } = options.inboxUser;
      if (count > messages) throw new Error(`${userId} cannot receive ${count} of ${messages} messages`);
      if (!/^[A-Za-z0-9_.:-]{1,128}$/.test(userId) || /^user-\d+$/.test(userId))
        throw new Error(`bad inbox user id ${userId}`);
      // The inbox user is the first recipient of every stride-th message.
      const stride = Math.floor(messages / count);
      if (count > 0)
        await client.query('UPDATE bench_plan SET inbox = true WHERE i % $1 = 0 AND i / $1 <= $2', [stride, count]);
    }
    await client.query('ANALYZE bench_plan');
    const plan = (
      await client.query<{
        events: string;
        notifications: string;
        sent: string;
        scheduled: string;
        acks: string;
        inbox: string;
        mean: string;
        p50: number;
        p90: number;
        max: number;
        last: number;
      }>(`
        SELECT sum(1 + scheduled::int + acks) AS events, sum(r) AS notifications, count(*) FILTER (WHERE NOT scheduled) AS sent,
               count(*) FILTER (WHERE scheduled) AS scheduled, sum(acks) AS acks, count(*) FILTER (WHERE inbox) AS inbox,
               round(avg(r), 2) AS mean, percentile_disc(0.5) WITHIN GROUP (ORDER BY r) AS p50,
               percentile_disc(0.9) WITHIN GROUP (ORDER BY r) AS p90, max(r) AS max, max(i) AS last
          FROM bench_plan`)
    ).rows[0]!;
    const lastSlot = plan.last + MAX_LAG;
    progress(
      `generating ${plan.events} events of ${messages} messages (${plan.notifications} inbox rows) in chunks of ${options.chunkMessages} slots`,
    );

    // 2. The events, chunk by chunk of slots, in slot order; streams.revision follows in the same statement.
    const t0 = `(now() - interval '${(lastSlot + 10) * SLOT_MS} milliseconds')`;
    const at = (slot: string) =>
      `to_char((${t0} + (${slot}) * interval '${SLOT_MS} milliseconds') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
    const recipient = (k: string) =>
      `CASE WHEN (${k}) = 0 AND m.inbox THEN '${options.inboxUser?.userId ?? ''}' ELSE 'user-' || ((m.base + (${k})) % ${options.users}) END`;
    const metadata = (correlation: string, actor: string | null) =>
      `jsonb_build_object('correlationId', ${correlation}, 'causationId', ${correlation}, 'appId', '${APP_ID}'${actor ? `, 'actor', ${actor}` : ''})`;
    const insertChunk = insertGeneratedEventsSql(
      `m AS (
        SELECT p.*, CASE WHEN p.scheduled THEN p.i + p.release_delay ELSE p.i END AS deliver_slot
          FROM bench_plan p WHERE p.i >= $1::int - ${MAX_LAG} AND p.i < $2::int
      ), e AS (
        SELECT m.i AS slot, 0 AS kind, m.i, 0 AS k,
               md5('${seed}:event:' || m.i || ':0')::uuid AS event_id, 'message-' || m.message_id AS stream_name, 0 AS revision,
               CASE WHEN m.scheduled THEN 'MessageScheduled' ELSE 'MessageSent' END AS event_type,
               jsonb_build_object(
                 'messageId', m.message_id::text, 'appId', '${APP_ID}', 'sender', m.sender,
                 'recipients', (SELECT jsonb_agg(${recipient('j')} ORDER BY j) FROM generate_series(0, m.r - 1) AS j),
                 'title', 'message ' || m.i,
                 'content', left(repeat('system patching 20:21, please save your work. ', 11), m.content_length),
                 'props', CASE WHEN m.with_props THEN jsonb_build_object('kind', 'maintenance', 'batch', (m.i % 97)::text) END,
                 'expiresAt', CASE WHEN m.expiring THEN to_char((${t0} + m.deliver_slot * interval '${SLOT_MS} milliseconds' + interval '365 days') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END
               ) || CASE WHEN m.scheduled THEN jsonb_build_object('scheduledAt', ${at('m.i')}, 'releaseAt', ${at('m.deliver_slot')})
                         ELSE jsonb_build_object('sentAt', ${at('m.i')}) END AS data,
               ${metadata(`md5('${seed}:send:' || m.i)::uuid::text`, `'user:' || m.sender`)} AS metadata
          FROM m WHERE m.i >= $1::int
        UNION ALL
        SELECT m.deliver_slot, 1, m.i, 0,
               md5('${seed}:event:' || m.i || ':release')::uuid, 'message-' || m.message_id, 1, 'MessageReleased',
               jsonb_build_object('messageId', m.message_id::text, 'appId', '${APP_ID}', 'releasedAt', ${at('m.deliver_slot')}),
               ${metadata(`md5('${seed}:release:' || m.i)::uuid::text`, null)}
          FROM m WHERE m.scheduled AND m.deliver_slot >= $1::int AND m.deliver_slot < $2::int
        UNION ALL
        SELECT a.slot, 2, m.i, a.k,
               md5('${seed}:event:' || m.i || ':ack:' || a.k)::uuid, 'message-' || m.message_id, 1 + m.scheduled::int + a.k, 'MessageAcknowledged',
               jsonb_build_object('messageId', m.message_id::text, 'appId', '${APP_ID}', 'userId', ${recipient('a.k')}, 'acknowledgedAt', ${at('a.slot')}),
               ${metadata(`md5('${seed}:ack:' || m.i || ':' || a.k)::uuid::text`, `'user:' || ${recipient('a.k')}`)}
          FROM m CROSS JOIN LATERAL (SELECT k, m.deliver_slot + (k + 1) * m.ack_gap AS slot FROM generate_series(0, m.acks - 1) AS k) AS a
         WHERE a.slot >= $1::int AND a.slot < $2::int
      )`,
      'slot, kind, i, k',
    );
    let lastReport = performance.now();
    for (let from = 1; from <= lastSlot; from += options.chunkMessages) {
      await client.query(insertChunk, [from, from + options.chunkMessages]);
      if (performance.now() - lastReport > 5000) {
        progress(`  … slot ${Math.min(lastSlot, from + options.chunkMessages - 1)} of ${lastSlot}`);
        lastReport = performance.now();
      }
    }
    const seconds = (performance.now() - started) / 1000;
    await client.query('DROP TABLE bench_plan');

    // 3. Check: counts by type against the plan, and a sample of streams through the codecs and decider.
    const byType = await client.query<{ event_type: string; n: string }>(EVENT_COUNTS_BY_TYPE_SQL, ['Message%']);
    const eventsByType = Object.fromEntries(byType.rows.map((r) => [r.event_type, Number(r.n)]));
    const expected = {
      MessageSent: Number(plan.sent),
      MessageScheduled: Number(plan.scheduled),
      MessageReleased: Number(plan.scheduled),
      MessageAcknowledged: Number(plan.acks),
    };
    for (const [type, count] of Object.entries(expected)) {
      if ((eventsByType[type] ?? 0) !== count)
        throw new Error(`generated ${eventsByType[type] ?? 0} ${type} events, planned ${count}`);
    }
    const verified = await verifyStreams(client, messages, seed);
    return {
      messages,
      events: Number(plan.events),
      eventsByType,
      notifications: Number(plan.notifications),
      inboxUserNotifications: Number(plan.inbox),
      recipientsPerMessage: { mean: Number(plan.mean), p50: plan.p50, p90: plan.p90, max: plan.max },
      seconds: round(seconds),
      eventsPerSecond: perSecond(Number(plan.events), seconds),
      verified,
    };
  } finally {
    await client.end();
  }
}

/**
 * Reads up to 500 generated streams back, decodes every event with domain/message's codecs and replays
 * them through the message decider: each release and acknowledgement must be exactly what the decider
 * would decide at that time (so acks are only of delivered messages, by their recipients, once), the
 * revisions must run 0, 1, … in position order, and streams.revision must be the last of them.
 */
async function verifyStreams(
  client: pg.Client,
  messages: number,
  seed: string,
): Promise<{ streams: number; events: number }> {
  const step = Math.max(1, Math.floor(messages / 500));
  const { rows } = await client.query<{
    stream_name: string;
    revision: string;
    event_type: string;
    data: unknown;
    metadata: { appId?: string };
    head: string;
  }>(
    streamsWithHeadsSql(
      `SELECT 'message-' || md5('${seed}:message:' || i)::uuid FROM generate_series(1, $1::int, $2::int) AS i`,
    ),
    [messages, step],
  );
  const streams = new Map<string, typeof rows>();
  for (const row of rows) streams.set(row.stream_name, [...(streams.get(row.stream_name) ?? []), row]);
  for (const [stream, events] of streams) {
    let state: MessageState = messageDecider.initialState();
    events.forEach((row, index) => {
      const fail = (why: string) => new Error(`generated stream ${stream}, revision ${row.revision}: ${why}`);
      if (Number(row.revision) !== index) throw fail(`revision out of order (expected ${index})`);
      if (row.metadata.appId !== APP_ID) throw fail('metadata.appId');
      const decoded = MessageEvent.decode({ type: row.event_type, data: row.data });
      if (isLeft(decoded)) throw fail(`${row.event_type} does not match its codec: ${JSON.stringify(row.data)}`);
      const event = decoded.right;
      // io-ts's t.type lets keys beyond the codec's through: compare the key sets with the codec's too.
      const codec = MessageEvent.types.find((c) => c.props.type.value === event.type)!;
      if (
        JSON.stringify(Object.keys(row.data as object).sort()) !==
        JSON.stringify(Object.keys(codec.props.data.props).sort())
      )
        throw fail("keys differ from the codec's");
      if (event.type === 'MessageReleased' || event.type === 'MessageAcknowledged') {
        const command =
          event.type === 'MessageReleased'
            ? { type: 'ReleaseMessage' as const, now: event.data.releasedAt }
            : {
                type: 'AcknowledgeMessage' as const,
                appId: event.data.appId,
                userId: event.data.userId,
                now: event.data.acknowledgedAt,
              };
        const decided = messageDecider.decide(command, state);
        if (canonicalJson(decided) !== canonicalJson([event]))
          throw fail(`the decider decides ${JSON.stringify(decided)}, not ${event.type}`);
      } else if (index !== 0) {
        throw fail(`${event.type} is not the stream's first event`);
      }
      state = messageDecider.evolve(state, event);
    });
    if (Number(events[0]!.head) !== events.length - 1)
      throw new Error(`streams.revision of ${stream} is ${events[0]!.head}, its last event is ${events.length - 1}`);
  }
  return { streams: streams.size, events: rows.length };
}

/** JSON with object keys sorted (jsonb does not keep the order they were written in). */
function canonicalJson(value: unknown): string {
  return JSON.stringify(value, (_key, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as object).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : v,
  );
}

/** Rows in the read-model tables of the notifications projection (and apps). */
export async function readModelCounts(databaseUrl: string): Promise<{
  notifications: number;
  notificationMessages: number;
  datahubDeliveries: number;
  apps: number;
  checkpoints: Record<string, string>;
}> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const count = async (table: string) =>
      Number((await client.query<{ n: string }>(`SELECT count(*) AS n FROM ${table}`)).rows[0]!.n);
    const checkpoints = await client.query<{ name: string; position: string }>(
      'SELECT name, position FROM projection_checkpoints ORDER BY name',
    );
    return {
      notifications: await count('notifications'),
      notificationMessages: await count('notification_messages'),
      datahubDeliveries: await count('datahub_notifications'),
      apps: await count('apps'),
      checkpoints: Object.fromEntries(checkpoints.rows.map((r) => [r.name, r.position])),
    };
  } finally {
    await client.end();
  }
}

/** What the database holds at one moment: its size, and per table (partitions summed into their parent) rows and bytes. */
export interface StorageSample {
  readonly databaseBytes: number;
  /** Table → exact row count and bytes (pg_total_relation_size: indexes and TOAST included). */
  readonly tables: Record<string, { readonly rows: number; readonly bytes: number }>;
  /** Koala rows of messages sent with `expire` 0 (kept: 永久有效), inside notification_messages and notifications. */
  readonly koalaKept: { readonly messages: number; readonly notifications: number };
  /** The event store's events per stream prefix (`message`, `rtio-call`, …; herald storage status's split); empty without an `events` table. */
  readonly eventsByPrefix: Record<string, number>;
}

/**
 * One sample of the database's storage: pg_database_size, and each table of the public schema counted
 * exactly (a scan each: for benchmarks, whose tables stay small enough) with its bytes, a partitioned
 * table's partitions summed into it (the event store may partition `events`).
 */
export async function storageSample(client: pg.ClientBase): Promise<StorageSample> {
  const { rows: tables } = await client.query<{ name: string }>(
    `SELECT c.relname AS name FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND NOT c.relispartition ORDER BY 1`,
  );
  const perTable = tables.map(
    ({ name }) =>
      `SELECT ${client.escapeLiteral(name)} AS name, (SELECT count(*) FROM ${client.escapeIdentifier(name)}) AS rows,
              coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(${client.escapeLiteral(name)}::regclass)),
                       pg_total_relation_size(${client.escapeLiteral(name)}::regclass)) AS bytes`,
  );
  // One after the other: a client runs one query at a time.
  const sizes =
    perTable.length === 0
      ? { rows: [] }
      : await client.query<{ name: string; rows: string; bytes: string }>(perTable.join(' UNION ALL '));
  const database = await client.query<{ bytes: string }>('SELECT pg_database_size(current_database()) AS bytes');
  const kept =
    tables.some((t) => t.name === 'notifications') && tables.some((t) => t.name === 'notification_messages')
      ? await client.query<{ messages: string; notifications: string }>(
          `SELECT (SELECT count(*) FROM notification_messages WHERE expires_at IS NULL) AS messages,
                  (SELECT count(*) FROM notifications WHERE expires_at IS NULL) AS notifications`,
        )
      : { rows: [{ messages: '0', notifications: '0' }] };
  const byPrefix = tables.some((t) => t.name === 'events')
    ? (await client.query<{ prefix: string; events: string }>(EVENT_SIZES_BY_PREFIX_SQL)).rows
    : [];
  return {
    databaseBytes: Number(database.rows[0]!.bytes),
    tables: Object.fromEntries(sizes.rows.map((r) => [r.name, { rows: Number(r.rows), bytes: Number(r.bytes ?? 0) }])),
    koalaKept: { messages: Number(kept.rows[0]!.messages), notifications: Number(kept.rows[0]!.notifications) },
    eventsByPrefix: Object.fromEntries(byPrefix.map((r) => [r.prefix, Number(r.events)])),
  };
}

/** VACUUM (ANALYZE) of the event store tables, as a store that has been running a while would be. */
export async function vacuumEventStore(databaseUrl: string): Promise<void> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    await client.query(VACUUM_EVENT_TABLES_SQL);
  } finally {
    await client.end();
  }
}

/** `herald projections rebuild` (all projections) on `databaseUrl`, timed end to end. */
export async function timeRebuild(
  databaseUrl: string,
  timeoutMs: number,
  onStart?: (pid: number) => void,
): Promise<{ run: CliRun; lastProgress: Record<string, unknown> | undefined }> {
  let lastProgress: Record<string, unknown> | undefined;
  let lastReport = 0;
  const run = await runHeraldCli(
    ['projections', 'rebuild'],
    databaseUrl,
    timeoutMs,
    (line) => {
      try {
        lastProgress = JSON.parse(line) as Record<string, unknown>;
      } catch {
        return;
      }
      if (performance.now() - lastReport > 5000 || lastProgress.done) {
        progress(
          `  rebuild ${String(lastProgress.projection)}: position ${String(lastProgress.position)} of ${String(lastProgress.head)}`,
        );
        lastReport = performance.now();
      }
    },
    onStart,
  );
  return { run, lastProgress };
}

/** The store's extent: how many events it holds and its first and last position. */
export interface StoreExtent {
  readonly events: number;
  readonly firstPosition: string;
  readonly headPosition: string;
}

/**
 * The rebuild and replay benchmarks' history: BENCH_EVENTS message events (default 1,000,000) to
 * recipients among BENCH_USERS users (50,000), BENCH_CHUNK slots per generating INSERT (20,000), seeded
 * by BENCH_SEED (herald-bench).
 */
export function messageHistoryParameters(): { events: number; users: number; chunk: number; seed: string } {
  return {
    events: envInteger('BENCH_EVENTS', 1_000_000, 1),
    users: envInteger('BENCH_USERS', 50_000, 100),
    chunk: envInteger('BENCH_CHUNK', 20_000, 100),
    seed: process.env.BENCH_SEED || 'herald-bench',
  };
}

/**
 * A fresh database made a store of generated history, as the rebuild and replay benchmarks start: herald
 * creates its schema (and registers camel), the history's message events are generated into the store,
 * which is then VACUUM (ANALYZE)d as a store that has been running a while would be.
 */
export async function generatedMessageStore(
  cleanup: Cleanup,
  history: ReturnType<typeof messageHistoryParameters>,
): Promise<{ url: string; machine: Machine; generated: GeneratedData; store: StoreExtent }> {
  const { url, machine } = await benchDatabase(cleanup);
  progress('starting herald once to create its schema');
  await createHeraldSchema(url);
  const generated = await generateMessageEvents(url, {
    target: { events: history.events },
    users: history.users,
    chunkMessages: history.chunk,
    seed: history.seed,
  });
  progress(`generated ${generated.events} events in ${generated.seconds} s; VACUUM (ANALYZE)`);
  await vacuumEventStore(url);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    const { rows } = await client.query<{ n: string; first: string; head: string }>(
      'SELECT count(*) AS n, min(position) AS first, max(position) AS head FROM events',
    );
    return {
      url,
      machine,
      generated,
      store: { events: Number(rows[0]!.n), firstPosition: rows[0]!.first, headPosition: rows[0]!.head },
    };
  } finally {
    await client.end();
  }
}

export interface DatahubGeneratorOptions {
  /** Inbox rows (deliveries) in the datahub read model, all users. */
  readonly notifications: number;
  /** The user who receives exactly `count` of them (as the first receiver), besides the broadcasts. */
  readonly inboxUser: { readonly userId: string; readonly count: number };
  /** Site broadcasts to the whole app, after the others (each is one row, whatever the users). */
  readonly broadcasts: number;
  readonly users: number;
  readonly chunkNotifications: number;
  readonly seed: string;
}

export interface GeneratedDatahubData {
  readonly notificationEvents: number;
  readonly readEvents: number;
  /** Deliveries the datahub projection should hold (broadcasts not included). */
  readonly deliveries: number;
  /** The inbox user's deliveries, and how many of them are unread (the others read once). */
  readonly inboxUser: { readonly deliveries: number; readonly unread: number };
  readonly broadcasts: number;
  readonly seconds: number;
}

const DATAHUB_TYPES = [
  'admin_message',
  'private_message',
  'comment_reply',
  'item_event',
  'subs_event',
  'subsapply_event',
  'vip_remind',
];
const DATAHUB_READ_FRACTION = 0.3; // NotificationRead by the first receiver
const DATAHUB_LEVEL_50_FRACTION = 0.1;

/**
 * Appends camel's datahub notifications (NotificationSent, with 1-50 receivers skewed toward few, mean
 * ≈ 10; a NotificationRead by the first receiver for 30 %) and then `broadcasts` site broadcasts to the
 * event store tables, set-based, in the form of domain/notification/notification.ts. The inbox user is
 * the first receiver of every stride-th notification.
 */
export async function generateDatahubEvents(
  databaseUrl: string,
  options: DatahubGeneratorOptions,
): Promise<GeneratedDatahubData> {
  if (!/^[A-Za-z0-9-]{1,40}$/.test(options.seed)) throw new Error('the seed must be 1-40 of A-Z a-z 0-9 -');
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = performance.now();
    const seed = `${options.seed}-datahub`;
    const u = (expr: string, salt: string) =>
      `((hashtext('${seed}:${salt}:' || (${expr})::text) & 2147483647)::float8 / 2147483648.0)`;
    // The plan: one row per notification, cut where the deliveries reach the target.
    await client.query(`
      CREATE TEMP TABLE datahub_plan AS
      SELECT i, id, r, base, type, level, read, false AS inbox FROM (
        SELECT i, md5('${seed}:notification:' || i)::uuid AS id,
               1 + floor(49 * power(${u('i', 'receivers')}, 4))::int AS r,
               floor(${u('i', 'base')} * ${options.users})::int AS base,
               (ARRAY['${DATAHUB_TYPES.join("','")}'])[1 + floor(${u('i', 'type')} * ${DATAHUB_TYPES.length})::int] AS type,
               CASE WHEN ${u('i', 'level')} < ${DATAHUB_LEVEL_50_FRACTION} THEN 50 ELSE 0 END AS level,
               ${u('i', 'read')} < ${DATAHUB_READ_FRACTION} AS read
          FROM generate_series(1, ${Math.ceil(options.notifications / 5) + 1000}) AS i) g`);
    await client.query(`
      DELETE FROM datahub_plan WHERE i > (SELECT min(i) FROM (SELECT i, sum(r) OVER (ORDER BY i) AS cum FROM datahub_plan) s WHERE cum >= ${options.notifications})`);
    await client.query(
      `UPDATE datahub_plan SET r = r - ((SELECT sum(r) FROM datahub_plan) - ${options.notifications}) WHERE i = (SELECT max(i) FROM datahub_plan)`,
    );
    await client.query('ALTER TABLE datahub_plan ADD PRIMARY KEY (i)');
    const planned = Number((await client.query<{ n: string }>('SELECT count(*) AS n FROM datahub_plan')).rows[0]!.n);
    const total = Number((await client.query<{ n: string }>('SELECT sum(r) AS n FROM datahub_plan')).rows[0]!.n);
    if (total !== options.notifications)
      throw new Error(`planned ${total} datahub deliveries, not ${options.notifications}`);
    const stride = Math.floor(planned / options.inboxUser.count);
    if (stride < 1)
      throw new Error(
        `${options.inboxUser.userId} cannot receive ${options.inboxUser.count} of ${planned} notifications`,
      );
    await client.query('UPDATE datahub_plan SET inbox = true WHERE i % $1 = 0 AND i / $1 <= $2', [
      stride,
      options.inboxUser.count,
    ]);
    progress(`generating ${planned} datahub notifications (${total} deliveries) and ${options.broadcasts} broadcasts`);

    const receiver = (k: string) =>
      `CASE WHEN (${k}) = 0 AND p.inbox THEN '${options.inboxUser.userId}' ELSE 'user-' || ((p.base + (${k})) % ${options.users}) END`;
    const at = (i: string) =>
      `to_char((now() - interval '1 day' + (${i}) * interval '1 millisecond') AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;
    const metadata = (correlation: string, actor: string) =>
      `jsonb_build_object('correlationId', ${correlation}, 'causationId', ${correlation}, 'appId', '${APP_ID}', 'actor', ${actor})`;
    const sent = (type: string, receivers: string, level: string) => `jsonb_build_object(
      'notificationId', p.id::text, 'appId', '${APP_ID}', 'notificationType', ${type}, 'sender', 'sender-' || (p.i % 1000),
      'receivers', ${receivers}, 'level', ${level}, 'forBrowser', true, 'forClient', false,
      'data', jsonb_build_object('content', 'notification ' || p.i), 'sentAt', ${at('p.i')})`;
    const insertChunk = insertGeneratedEventsSql(
      `e AS (
        SELECT p.i, 0 AS kind, md5('${seed}:event:' || p.i)::uuid AS event_id, 'notification-' || p.id AS stream_name, 0 AS revision, 'NotificationSent' AS event_type,
               ${sent('p.type', `(SELECT jsonb_agg(${receiver('j')} ORDER BY j) FROM generate_series(0, p.r - 1) AS j)`, 'p.level')} AS data,
               ${metadata(`md5('${seed}:send:' || p.i)::uuid::text`, "'user:sender-' || (p.i % 1000)")} AS metadata
          FROM datahub_plan p WHERE p.i >= $1 AND p.i < $2
        UNION ALL
        SELECT p.i, 1, md5('${seed}:read:' || p.i)::uuid, 'notification-' || p.id, 1, 'NotificationRead',
               jsonb_build_object('notificationId', p.id::text, 'appId', '${APP_ID}', 'userId', ${receiver('0')}, 'readAt', ${at('p.i + 1')}),
               ${metadata(`md5('${seed}:readc:' || p.i)::uuid::text`, `'user:' || ${receiver('0')}`)}
          FROM datahub_plan p WHERE p.read AND p.i >= $1 AND p.i < $2
      )`,
      'i, kind',
    );
    for (let from = 1; from <= planned; from += options.chunkNotifications)
      await client.query(insertChunk, [from, from + options.chunkNotifications]);
    await client.query(
      insertGeneratedEventsSql(
        `p AS (SELECT ${planned} + i AS i, md5('${seed}:broadcast:' || i)::uuid AS id FROM generate_series(1, ${options.broadcasts}) AS i), e AS (
        SELECT p.i, md5('${seed}:event:' || p.i)::uuid AS event_id, 'notification-' || p.id AS stream_name, 0 AS revision,
               'NotificationSent' AS event_type, ${sent("'site_broadcast'", "'[]'::jsonb", '0')} AS data,
               ${metadata(`md5('${seed}:send:' || p.i)::uuid::text`, "'user:admin'")} AS metadata
          FROM p
      )`,
        'i',
      ),
    );
    const counts = (
      await client.query<{ reads: string; inbox: string; unread: string }>(
        'SELECT count(*) FILTER (WHERE read) AS reads, count(*) FILTER (WHERE inbox) AS inbox, count(*) FILTER (WHERE inbox AND NOT read) AS unread FROM datahub_plan',
      )
    ).rows[0]!;
    await client.query('DROP TABLE datahub_plan');
    return {
      notificationEvents: planned + options.broadcasts,
      readEvents: Number(counts.reads),
      deliveries: total,
      inboxUser: { deliveries: Number(counts.inbox), unread: Number(counts.unread) },
      broadcasts: options.broadcasts,
      seconds: round((performance.now() - started) / 1000),
    };
  } finally {
    await client.end();
  }
}

/**
 * Reads the whole store in position order, page by page; returns how many events and how long. `parsed`:
 * data and metadata as JSON values, as herald's pg client gets them; otherwise as text (no JSON.parse).
 */
export async function readAllInPositionOrder(
  databaseUrl: string,
  parsed: boolean,
  pageSize: number,
): Promise<{ events: number; seconds: number; eventsPerSecond: number; pageSize: number }> {
  const client = new pg.Client({ connectionString: databaseUrl });
  await client.connect();
  try {
    const started = performance.now();
    let after = '-1';
    let events = 0;
    for (;;) {
      const { rows } = await client.query<{ position: string }>(eventPageSql(parsed), [after, pageSize]);
      events += rows.length;
      if (rows.length < pageSize) break;
      after = rows[rows.length - 1]!.position;
    }
    const seconds = (performance.now() - started) / 1000;
    return {
      events,
      seconds: Number(seconds.toFixed(2)),
      eventsPerSecond: perSecond(events, seconds),
      pageSize: pageSize,
    };
  } finally {
    await client.end();
  }
}
