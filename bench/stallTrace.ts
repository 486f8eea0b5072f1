/**
 * A trace of one latency run on the wall clock, to see what happens during a stall (issue 24), written to
 * BENCH_STALL_TRACE_DIR when it is set (bench/stallReport.ts reads it):
 *   sends.csv        every send: its start, its answer and its arrival at the terminal (ms)
 *   bench-loop.csv   the load generator's own largest event-loop delay per 50 ms, and its HTTP agent's
 *                    sockets then (busy, idle, requests queued for one)
 *   pg.jsonl         pg_stat_activity every ~10 ms (the non-idle backends, and the background processes),
 *                    with /proc/<pid>/schedstat of herald's main thread and of PostgreSQL's processes
 *                    (ns on a CPU, ns waiting for one: a process starved by the machine's other work)
 *   connects.csv     every TCP connection the bench opened: when it was created and when it connected
 *   pg-stats.json    checkpointer, WAL and autovacuum counters before and after the load
 * herald's own event loop and garbage collections come from bench/stallProbe.mjs, loaded into herald.
 */
import { subscribe } from 'node:diagnostics_channel';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import pg from 'pg';
import { progress } from './run';

const SAMPLE_EVERY_MS = 10;

/** The wall clock in ms, from the monotonic clock the bench times sends with. */
export const wallMs = (monotonic: number) => performance.timeOrigin + monotonic;

const ACTIVITY = `
  SELECT extract(epoch FROM clock_timestamp()) * 1000 AS t,
    coalesce(json_agg(json_build_array(pid, backend_type, state, wait_event_type, wait_event,
      left(regexp_replace(query, '\\s+', ' ', 'g'), 60))) FILTER (WHERE pid <> pg_backend_pid()
        AND (backend_type <> 'client backend' OR (datname = current_database() AND state <> 'idle'))), '[]') AS a,
    array_agg(pid) AS pids
  FROM pg_stat_activity
`;

const COUNTERS = `
  SELECT extract(epoch FROM clock_timestamp()) * 1000 AS t,
    (SELECT row_to_json(c) FROM pg_stat_checkpointer c) AS checkpointer,
    (SELECT row_to_json(w) FROM pg_stat_wal w) AS wal,
    (SELECT json_agg(json_build_object('table', relname, 'autovacuums', autovacuum_count,
       'autoanalyzes', autoanalyze_count, 'lastAutovacuum', last_autovacuum, 'lastAutoanalyze', last_autoanalyze))
     FROM pg_stat_user_tables) AS tables,
    (SELECT json_object_agg(name, setting) FROM pg_settings WHERE name IN ('max_wal_size', 'checkpoint_timeout',
       'checkpoint_completion_target', 'wal_buffers', 'shared_buffers', 'synchronous_commit', 'wal_sync_method',
       'autovacuum_naptime', 'commit_delay')) AS settings`;

/** [ns on a CPU, ns runnable but waiting for a CPU] of a thread, summed over `pids`; 0s for a gone one. */
function schedstat(pids: readonly number[]): [number, number] {
  let run = 0;
  let wait = 0;
  for (const pid of pids) {
    try {
      const [r, w] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').split(' ');
      run += Number(r);
      wait += Number(w);
    } catch {
      // gone
    }
  }
  return [run, wait];
}

export class StallTrace {
  private readonly sends: WriteStream;
  private readonly benchLoop = monitorEventLoopDelay({ resolution: 5 });
  private readonly loopLines: string[] = ['wallMs,maxMs,busySockets,idleSockets,queuedRequests'];
  private loopTimer: NodeJS.Timeout | undefined;
  private sampling = false;
  private sampler: Promise<void> = Promise.resolve();
  private readonly counters: unknown[] = [];
  private readonly connects: string[] = ['createdMs,connectedMs'];

  private constructor(
    private readonly dir: string,
    private readonly client: pg.Client,
    private readonly heraldPid: number,
    private readonly sockets: () => { busy: number; idle: number; queued: number },
  ) {
    this.sends = createWriteStream(path.join(dir, 'sends.csv'));
    this.sends.write('index,terminal,dueMs,startMs,answerMs,receiveMs\n');
  }

  /** A trace when BENCH_STALL_TRACE_DIR is set, else undefined. */
  static async open(
    databaseUrl: string,
    heraldPid: number,
    sockets: () => { busy: number; idle: number; queued: number },
  ): Promise<StallTrace | undefined> {
    const dir = process.env.BENCH_STALL_TRACE_DIR;
    if (!dir) return undefined;
    mkdirSync(dir, { recursive: true });
    const client = new pg.Client({ connectionString: databaseUrl });
    await client.connect();
    progress(`tracing stalls into ${dir}`);
    return new StallTrace(dir, client, heraldPid, sockets);
  }

  /** Starts the samplers (at the start of the load). */
  async start(): Promise<void> {
    this.counters.push((await this.client.query(COUNTERS)).rows[0]);
    this.benchLoop.enable();
    this.loopTimer = setInterval(() => {
      const { busy, idle, queued } = this.sockets();
      this.loopLines.push(
        `${wallMs(performance.now()).toFixed(1)},${(this.benchLoop.max / 1e6).toFixed(1)},${busy},${idle},${queued}`,
      );
      this.benchLoop.reset();
    }, 50);
    this.sampling = true;
    subscribe('net.client.socket', (message) => {
      const { socket } = message as { socket: import('node:net').Socket };
      const created = performance.now();
      socket.once('connect', () =>
        this.connects.push(`${wallMs(created).toFixed(1)},${wallMs(performance.now()).toFixed(1)}`),
      );
    });
    const out = createWriteStream(path.join(this.dir, 'pg.jsonl'));
    this.sampler = (async () => {
      while (this.sampling) {
        const started = performance.now();
        const row = (await this.client.query<{ t: number; a: unknown[]; pids: number[] }>(ACTIVITY)).rows[0]!;
        const h = schedstat([this.heraldPid]);
        const p = schedstat(row.pids);
        out.write(`${JSON.stringify({ t: Number(row.t), a: row.a, h, p })}\n`);
        const wait = SAMPLE_EVERY_MS - (performance.now() - started);
        if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      }
      await new Promise((resolve) => out.end(resolve));
    })();
  }

  /** One send, its times on the bench's monotonic clock; `received` undefined when it never arrived. */
  send(index: number, terminal: number, due: number, started: number, answered?: number, received?: number): void {
    const ms = (t: number | undefined) => (t === undefined ? '' : wallMs(t).toFixed(1));
    this.sends.write(`${index},${terminal},${ms(due)},${ms(started)},${ms(answered)},${ms(received)}\n`);
  }

  /** Stops the samplers and writes what they hold (after the drain). */
  async close(): Promise<void> {
    this.sampling = false;
    await this.sampler;
    clearInterval(this.loopTimer);
    this.benchLoop.disable();
    this.counters.push((await this.client.query(COUNTERS)).rows[0]);
    await this.client.end();
    writeFileSync(path.join(this.dir, 'bench-loop.csv'), `${this.loopLines.join('\n')}\n`);
    writeFileSync(path.join(this.dir, 'connects.csv'), `${this.connects.join('\n')}\n`);
    writeFileSync(path.join(this.dir, 'pg-stats.json'), JSON.stringify(this.counters, null, 2));
    await new Promise((resolve) => this.sends.end(resolve));
  }
}
