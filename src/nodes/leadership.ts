import type { Database } from '../postgres/database';
import { SessionLock } from '../postgres/sessionLock';
import { BackgroundLoop } from '../runtime/backgroundLoop';
import type { Logger } from '../runtime/logger';
import { Services, type Service } from '../runtime/services';

// The first key of the leader's advisory lock; projections use another space (PROJECTION_LOCK_SPACE).
const LEADER_LOCK_SPACE = 0x6865_6c64; // "held"
const LEADER_LOCK_NAME = 'background-work';
/** How often a standby node asks for the lead (takeover is within this of the leader's session ending). */
const STANDBY_RETRY_MS = 1000;

/**
 * Which node runs the background work — releasing scheduled messages, sending emails, posting app
 * callbacks, forwarding RTIO reports: the one holding the leader's session lock. Two nodes never run it
 * at once, so nothing is released, sent or posted twice by two nodes; when the leader dies its session
 * ends, the lock with it, and a standby takes over within about a second (or about 10 s when its host
 * vanished without closing the connection: docs/operations.md). The work itself is durable — what is due
 * lives in the read models — so the new leader picks up where the old one stopped.
 */
export class Leadership implements Service {
  readonly name = 'leadership';
  private leading = false;
  private readonly loop = new BackgroundLoop(() => this.run());

  /** `work`: background work one node runs for all, started in order when this node leads, stopped in reverse when it no longer does. */
  constructor(
    private readonly deps: { readonly database: Database; readonly log: Logger; readonly work: readonly Service[] },
  ) {}

  get isLeader(): boolean {
    return this.leading;
  }

  start(): void {
    this.loop.start();
  }

  stop(): Promise<void> {
    return this.loop.stop();
  }

  private async run(): Promise<void> {
    const { log } = this.deps;
    while (this.loop.running) {
      let lost = false;
      const lock = await SessionLock.tryAcquire(
        this.deps.database.clientConfig,
        LEADER_LOCK_SPACE,
        LEADER_LOCK_NAME,
        () => {
          lost = true;
          this.loop.wake();
        },
      ).catch((error: unknown) => {
        log.warn({ err: error }, 'could not ask for the lead (PostgreSQL unreachable?); trying again');
        return undefined;
      });
      if (!lock) {
        await this.loop.wait(STANDBY_RETRY_MS);
        continue;
      }
      this.leading = true;
      log.info('this node leads: running the background work');
      const work = new Services(log);
      for (const service of this.deps.work) await work.start(service);
      while (this.loop.running && !lost) await this.loop.wait(STANDBY_RETRY_MS);
      await work.stop();
      this.leading = false;
      await lock.release();
      if (lost)
        log.warn(
          'the lead was lost with its PostgreSQL session: background work stopped here until this node leads again',
        );
    }
  }
}
