#!/usr/bin/env node
import { Command } from 'commander';
import { appRetentions, migrations, projections, pruning } from '../projections';
import { parseBound, runReplay } from './analysts/replayCommand';
import { ConfigError, loadConfig, type Config } from './config';
import type { ExportSelection } from './eventStore/eventStore';
import type { Herald } from './herald';
import { openInfrastructure, type Infrastructure } from './infrastructure';
import { lastParked, parkedCounts, retryParked } from './projection/parkedEvents';
import type { Projection } from './projection/projection';
import { readCheckpoints } from './projection/projectionRunner';
import { runRebuild } from './projection/rebuildCommand';
import { systemClock } from './runtime/clock';
import { createLogger, type Logger } from './runtime/logger';
import { ArchivedEventStore } from './storage/archivedEventStore';
import { EventArchive } from './storage/eventArchive';
import { holdRetentionPasses } from './storage/eventRetention';
import { runPrune } from './storage/pruneCommand';
import { formatStorageStatus, storageStatus } from './storage/storageStatus';

/** The `herald` command line. Configuration comes from the environment (docs/operations.md). */

function configOrExit(): Config {
  try {
    return loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`herald: ${error.message}\n`);
      process.exit(2);
    }
    throw error;
  }
}

async function serve(): Promise<void> {
  const config = configOrExit();
  const log = createLogger(config.logLevel);
  let stopping = false;
  // The embedded store died for good: stop in order and exit non-zero, so a supervisor restarts herald.
  const onStoreLost = () => shutdown('store lost', 1);
  // shutdown() may run (the store lost) before startHerald resolves, so herald is declared before it starts.
  let herald: Herald | undefined;
  // Loaded here, not at the top: the maintenance commands need only the stores, and start faster.
  const { startHerald } = await import('./herald.js');
  // eslint-disable-next-line prefer-const
  herald = await startHerald(config, log, { onStoreLost }).catch((error: unknown) => {
    log.fatal({ err: error }, 'herald could not start');
    return process.exit(1);
  });
  log.info({ url: herald.url }, 'herald is up');

  function shutdown(reason: string, exitCode = 0): void {
    if (stopping) {
      if (reason.startsWith('SIG')) {
        log.warn({ signal: reason }, 'second signal: exiting at once');
        process.exit(1);
      }
      return;
    }
    stopping = true;
    log.info({ reason }, 'stop requested');
    if (!herald) process.exit(exitCode || 1); // still starting: nothing to drain
    herald.close().then(
      () => process.exit(exitCode),
      (error: unknown) => {
        log.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  }
  process.on('SIGINT', () => shutdown('SIGINT'));
  process.on('SIGTERM', () => shutdown('SIGTERM'));
}

/** The named projections (all when none is named); an unknown name stops the command with exit 2. */
function chosenProjections(names: readonly string[]): readonly Projection[] {
  const unknown = names.filter((n) => !projections.some((p) => p.name === n));
  if (unknown.length > 0) {
    process.stderr.write(
      `herald: unknown projection(s) ${unknown.join(', ')}; known: ${projections.map((p) => p.name).join(', ')}\n`,
    );
    process.exit(2);
  }
  return names.length > 0 ? projections.filter((p) => names.includes(p.name)) : projections;
}

/**
 * Opens the stores quietly (warnings only at the default level), runs `work`, closes them. Beside a live
 * `herald serve` on the same embedded data dir, it uses that herald's PostgreSQL and leaves it running.
 */
async function withStores(
  work: (infrastructure: Infrastructure, log: Logger, config: Config) => Promise<void>,
): Promise<void> {
  const config = configOrExit();
  // Logs to stderr: these commands' stdout is their output.
  const log = createLogger(config.logLevel === 'info' ? 'warn' : config.logLevel, 'stderr');
  const infrastructure = await openInfrastructure(config, log, { migrations, whenEmbeddedOwned: 'join' });
  try {
    await work(infrastructure, log, config);
  } finally {
    await infrastructure.close();
  }
}

/** `--archive [dir]`: the archive named, or HERALD_ARCHIVE_DIR's when no directory is given; none without the option. */
function archiveOf(option: string | boolean | undefined, config: Config): EventArchive | undefined {
  if (option === undefined || option === false) return undefined;
  return new EventArchive(option === true ? config.archiveDir : option);
}

/** The stores, reading the archive with the event store's history when `--archive` is given. */
function withArchive(
  infrastructure: Infrastructure,
  option: string | boolean | undefined,
  config: Config,
): Infrastructure {
  const archive = archiveOf(option, config);
  return archive ? { ...infrastructure, store: new ArchivedEventStore(infrastructure.store, archive) } : infrastructure;
}

const program = new Command().name('herald').description('event-sourced push and notification backend');

program
  .command('serve', { isDefault: true })
  .description('start the HTTP server, projections and push (default)')
  .action(serve);

program
  .command('replay')
  .description(
    'write the event stream as JSON Lines (docs/analysts.md), filtered; progress on stderr when writing to a file',
  )
  .option('--from <position|time>', 'from this position or ISO 8601 time (inclusive)')
  .option('--to <position|time>', 'up to this position or ISO 8601 time (inclusive)')
  .option(
    '--type <type>',
    'only events of this type (repeatable)',
    (value: string, all: string[]) => [...all, value],
    [] as string[],
  )
  .option('--stream <prefix>', 'only streams whose name starts with this')
  .option('--app <appId>', 'only events of this app (their metadata)')
  .option('--out <file>', 'write to this file instead of stdout')
  .option(
    '--archive [dir]',
    'also the events retention archived (HERALD_ARCHIVE_DIR unless a directory is given), merged in position order',
  )
  .action(
    (options: {
      from?: string;
      to?: string;
      type: string[];
      stream?: string;
      app?: string;
      out?: string;
      archive?: string | boolean;
    }) => {
      const bound = (name: string, text: string | undefined) => {
        if (text === undefined) return undefined;
        const parsed = parseBound(text);
        if (parsed === undefined) {
          process.stderr.write(
            `herald: --${name} ${JSON.stringify(text)}: expected a position (digits) or an ISO 8601 time\n`,
          );
          process.exit(2);
        }
        return parsed;
      };
      const filter: ExportSelection = {
        ...(options.from !== undefined && { from: bound('from', options.from)! }),
        ...(options.to !== undefined && { to: bound('to', options.to)! }),
        ...(options.type.length > 0 && { types: options.type }),
        ...(options.stream !== undefined && { streamPrefix: options.stream }),
        ...(options.app !== undefined && { appId: options.app }),
      };
      return withStores(async (infrastructure, _log, config) => {
        const archive = archiveOf(options.archive, config);
        // Archive + store as one stream: no event store pass moves events from one to the other meanwhile.
        const releasePasses = archive && (await holdRetentionPasses(infrastructure.database.pool));
        try {
          await runReplay(infrastructure, filter, options.out, archive);
        } finally {
          await releasePasses?.();
        }
      });
    },
  );

const projectionsCommand = program.command('projections').description('read models built from the event stream');
projectionsCommand
  .command('rebuild')
  .argument('[names...]', 'projections to rebuild (default: all)')
  .description(
    'replay the event stream from position 0 into fresh read models and swap them in; a bar on a terminal, JSON lines otherwise (docs/analysts.md)',
  )
  .option(
    '--archive [dir]',
    'also the events retention archived (HERALD_ARCHIVE_DIR unless a directory is given): after lengthening a retention, what it now keeps comes back',
  )
  .action((names: string[], options: { archive?: string | boolean }) => {
    const chosen = chosenProjections(names);
    // The rebuilt tables are pruned as the live ones are before the swap: nothing pruned comes back.
    return withStores((infrastructure, log, config) =>
      runRebuild(withArchive(infrastructure, options.archive, config), chosen, log, {
        prunablesOn: pruning,
        policy: config.retention,
        // The apps' settings as the live read model holds them (a rebuild of apps swaps in the same).
        appRetentions: appRetentions(infrastructure.database.pool),
        clock: systemClock,
        batchSize: config.retentionBatchSize,
      }),
    );
  });
projectionsCommand
  .command('status')
  .description('each projection: version, checkpoint, the store head, lag, parked events and the last one (JSON lines)')
  .action(() =>
    withStores(async ({ database, store }) => {
      const [checkpoints, parked, lastParkedOf] = await Promise.all([
        readCheckpoints(database.pool),
        parkedCounts(database.pool),
        lastParked(database.pool),
      ]);
      // Read after the checkpoints, so no checkpoint is past it.
      const head = await store.headPosition();
      for (const p of projections) {
        const position = checkpoints.get(p.name);
        // In positions, not events (docs/analysts.md). Not started (-1 or no row) counts from 0: PostgreSQL
        // positions start at 1, so the lag is then the number of positions in the store.
        const from = position !== undefined && position > 0n ? position : 0n;
        const lag = head > from ? head - from : 0n;
        process.stdout.write(
          JSON.stringify({
            projection: p.name,
            version: p.version,
            position: position?.toString() ?? null,
            head: head.toString(),
            lag: Number(lag),
            parked: parked.get(p.name) ?? 0,
            lastError: lastParkedOf.get(p.name) ?? null,
          }) + '\n',
        );
      }
    }),
  );
projectionsCommand
  .command('retry')
  .argument('<names...>', 'projections whose parked events to apply again')
  .description('apply parked events again (after fixing their cause); those that fail again stay parked')
  .action((names: string[]) =>
    withStores(async ({ database }) => {
      for (const projection of chosenProjections(names)) {
        const result = await retryParked(database.pool, projection);
        process.stdout.write(JSON.stringify({ projection: projection.name, ...result }) + '\n');
      }
    }),
  );
projectionsCommand
  .command('list')
  .description('list the projections and their versions')
  .action(() => {
    for (const p of projections) process.stdout.write(`${p.name}\tversion ${p.version}\n`);
  });

const storageCommand = program
  .command('storage')
  .description('what herald keeps and what retention removes (docs/operations.md, "Retention")');
storageCommand
  .command('status')
  .description(
    'bytes and rows per read model table and per event category, the oldest position kept, and what the next pruning pass removes',
  )
  .option('--json', 'one JSON document instead of a table')
  .option('--exact', "count each table's rows (a scan of each) instead of PostgreSQL's estimates")
  .action((options: { json?: boolean; exact?: boolean }) =>
    withStores(async (infrastructure, _log, config) => {
      const status = await storageStatus({
        infrastructure,
        projections,
        prunables: pruning(infrastructure.database.pool),
        policy: config.retention,
        appRetentions: appRetentions(infrastructure.database.pool),
        now: systemClock(),
        exact: options.exact === true,
        archive: new EventArchive(config.archiveDir),
      });
      process.stdout.write(options.json ? JSON.stringify(status) + '\n' : formatStorageStatus(status));
    }),
  );
storageCommand
  .command('prune')
  .description(
    'one retention pass now: the read models, then the event store (archived to HERALD_ARCHIVE_DIR, then removed); a bar on a terminal, one JSON line on stdout',
  )
  .action(() =>
    withStores(async (infrastructure, _log, config) => {
      const result = await runPrune({
        infrastructure,
        projections,
        pruning: {
          pool: infrastructure.database.pool,
          prunables: pruning(infrastructure.database.pool),
          policy: config.retention,
          appRetentions: appRetentions(infrastructure.database.pool),
          clock: systemClock,
          batchSize: config.retentionBatchSize,
        },
        archive: new EventArchive(config.archiveDir),
      });
      process.stdout.write(JSON.stringify(result) + '\n');
    }),
  );

program.parseAsync(process.argv).catch((error: unknown) => {
  process.stderr.write(`herald: ${(error as Error).message}\n`);
  process.exit(1);
});
