import type pg from 'pg';
import {
  appCutoff,
  retentionCutoff,
  type AppRetention,
  type AppRetentionCategory,
  type RetentionCategory,
  type RetentionPolicy,
} from '../../domain/retention';
import { BackgroundLoop } from '../runtime/backgroundLoop';
import type { Clock } from '../runtime/clock';
import type { Logger } from '../runtime/logger';
import type { Service } from '../runtime/services';

/**
 * One read model table's pruning, implemented by the projection that owns the table (DESIGN.md: nothing
 * in src/ runs SQL on a projection's tables). What is removable is the category's rule in
 * domain/retention.ts at `cutoff` (what ended before it is past retention).
 */
export type Prunable = CategoryPrunable | AppPrunable;

export interface CategoryPrunable {
  readonly table: string;
  readonly category: RetentionCategory;
  readonly byApp?: undefined;
  /** Rows a pass at `cutoff` would remove now. */
  countRemovable(cutoff: Date): Promise<number>;
  /**
   * Removes at most `limit` of them, oldest end first, in one short transaction that skips rows another
   * transaction holds (a projection applying an event to them): they are removed by a later pass.
   */
  prune(cutoff: Date, limit: number): Promise<number>;
}

/**
 * A table of records that never end, pruned by each app's own setting (domain/retention.ts,
 * APP_RETENTION_CATEGORIES): as a CategoryPrunable, with a cutoff per app.
 */
export interface AppPrunable {
  readonly table: string;
  readonly category: AppRetentionCategory;
  readonly byApp: true;
  countRemovable(cutoffs: AppCutoffs): Promise<number>;
  prune(cutoffs: AppCutoffs, limit: number): Promise<number>;
}

/**
 * What an AppPrunable removes: records sent before their app's cutoff — the app's own (`byApp`; null: it
 * keeps them forever), else `otherwise` (the deployment's default; null: forever). One app's setting
 * never reaches another's records.
 */
export interface AppCutoffs {
  readonly byApp: ReadonlyMap<string, Date | null>;
  readonly otherwise: Date | null;
}

/** Apps' own retention settings, from the apps read model (projections/apps.ts). */
export interface AppRetentions {
  /** The app's settings (none: it follows the deployment's). */
  of(appId: string): Promise<AppRetention>;
  /** Every app that set something. */
  all(): Promise<ReadonlyMap<string, AppRetention>>;
}

/** The cutoffs of `category` at `now`; undefined when no app's records of it can go. */
export function appCutoffs(
  now: Date,
  category: AppRetentionCategory,
  apps: ReadonlyMap<string, AppRetention>,
  policy: RetentionPolicy,
): AppCutoffs | undefined {
  const byApp = new Map([...apps].map(([appId, app]) => [appId, appCutoff(now, category, app, policy) ?? null]));
  const otherwise = retentionCutoff(now, policy[category]) ?? null;
  if (otherwise === null && [...byApp.values()].every((c) => c === null)) return undefined;
  return { byApp, otherwise };
}

export interface PassReport {
  readonly table: string;
  readonly removed: number;
  readonly batches: number;
}

/**
 * The leader's pruning of the read models (docs/operations.md, "Retention"): every `intervalMs`, each
 * table in bounded batches until a batch comes back short. Batches are separate transactions, so no
 * lock is held between them and a reader never waits on a pass; a pass stops between two batches when
 * the node stops leading.
 */
export class RetentionPass implements Service {
  readonly name = 'retention';
  private readonly loop = new BackgroundLoop(() => this.run());

  constructor(private readonly deps: PruningTerms & { readonly log: Logger; readonly intervalMs: number }) {}

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  /** One pass over every table now; what it removed per table. */
  runOnce(shouldGoOn: () => boolean = () => true): Promise<PassReport[]> {
    return prunePass(this.deps, shouldGoOn);
  }

  private async run(): Promise<void> {
    const { log } = this.deps;
    while (this.loop.running) {
      try {
        const reports = await this.runOnce(() => this.loop.running);
        const removed = reports.filter((r) => r.removed > 0);
        if (removed.length > 0) log.info({ pruned: removed }, 'retention: removed rows past retention');
      } catch (error) {
        // A deadlock with a projection, the database gone: the next pass tries again.
        log.warn({ err: error }, 'retention: a pruning pass failed; trying again at the next one');
      }
      await this.loop.wait(this.deps.intervalMs);
    }
  }
}

/** How a pass prunes: the tables, the policy, the time; a rebuild prunes its fresh tables the same way. */
export interface PruningTerms {
  readonly prunables: readonly Prunable[];
  readonly policy: RetentionPolicy;
  /** Apps' own settings for the records that never end (AppPrunable); read once per pass. */
  readonly appRetentions: AppRetentions;
  readonly clock: Clock;
  readonly batchSize: number;
  /** Called after each batch with the rows it removed (the pruned counter). */
  readonly onPruned?: (table: string, rows: number) => void;
  /**
   * The database whose read-model passes run one at a time (the leader's, `herald storage prune`, a
   * rebuild's): two at once could strand a platform push's stream in `push_delivery_streams` — one pass
   * queueing it beside its push while another, whose snapshot began before, removes the push.
   */
  readonly pool?: pg.Pool;
}

// Any constant, the same in every process sharing the database; not the event store pass's lock (a
// rebuild holds that one shared while it prunes).
const PRUNE_LOCK = 0x6865_7261_6c70; // "heralp"

/**
 * One pass: each table in turn, batch after batch until one removes nothing (or `shouldGoOn` says
 * stop, checked before each batch); what it removed per table.
 */
export async function prunePass(terms: PruningTerms, shouldGoOn: () => boolean = () => true): Promise<PassReport[]> {
  if (!terms.pool) return pruneTables(terms, shouldGoOn);
  const holder = await terms.pool.connect();
  let failure: Error | undefined;
  try {
    // Waits for a pass running elsewhere (they are short, batched), then runs its own.
    await holder.query('SELECT pg_advisory_lock($1)', [PRUNE_LOCK]);
    try {
      return await pruneTables(terms, shouldGoOn);
    } finally {
      await holder.query('SELECT pg_advisory_unlock($1)', [PRUNE_LOCK]);
    }
  } catch (error) {
    failure = error instanceof Error ? error : new Error(String(error));
    throw error;
  } finally {
    holder.release(failure);
  }
}

async function pruneTables(terms: PruningTerms, shouldGoOn: () => boolean): Promise<PassReport[]> {
  const { prunables, policy, clock, batchSize, onPruned } = terms;
  const reports: PassReport[] = [];
  const apps = prunables.some((p) => p.byApp) ? await terms.appRetentions.all() : new Map<string, AppRetention>();
  for (const prunable of prunables) {
    let removed = 0;
    let batches = 0;
    // One cutoff per table and pass: what is past it is a finite set, so the pass ends even while rows
    // keep ending faster than batches remove them (what ended meanwhile is the next pass's).
    const prune = pruneAt(prunable, clock(), policy, apps);
    for (;;) {
      if (prune === undefined || !shouldGoOn()) break;
      const rows = await prune(batchSize);
      batches += 1;
      removed += rows;
      if (rows > 0) onPruned?.(prunable.table, rows);
      // Until a batch finds nothing: a batch may come back short with more left (rows another
      // transaction held, skipped; a table whose batches are bounded by the rows of another, as Koala's).
      if (rows === 0) break;
    }
    reports.push({ table: prunable.table, removed, batches });
  }
  return reports;
}

/** The table's pruning at `now` (a batch of at most `limit` rows), or its count; undefined when nothing of it can go. */
function pruneAt(
  prunable: Prunable,
  now: Date,
  policy: RetentionPolicy,
  apps: ReadonlyMap<string, AppRetention>,
): ((limit: number) => Promise<number>) | undefined {
  if (prunable.byApp) {
    const cutoffs = appCutoffs(now, prunable.category, apps, policy);
    return cutoffs && ((limit) => prunable.prune(cutoffs, limit));
  }
  const cutoff = retentionCutoff(now, policy[prunable.category]);
  return cutoff && ((limit) => prunable.prune(cutoff, limit));
}

/** What the next pass would remove, per table, at `now` (herald storage status): null when nothing of it can go. */
export async function nextPassCounts(
  prunables: readonly Prunable[],
  policy: RetentionPolicy,
  appRetentions: AppRetentions,
  now: Date,
): Promise<Array<{ table: string; category: RetentionCategory; removable: number | null }>> {
  const apps = await appRetentions.all();
  return Promise.all(
    prunables.map(async (p) => {
      let removable: number | null = null;
      if (p.byApp) {
        const cutoffs = appCutoffs(now, p.category, apps, policy);
        if (cutoffs) removable = await p.countRemovable(cutoffs);
      } else {
        const cutoff = retentionCutoff(now, policy[p.category]);
        if (cutoff) removable = await p.countRemovable(cutoff);
      }
      return { table: p.table, category: p.category, removable };
    }),
  );
}
