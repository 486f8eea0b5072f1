import type { Logger } from './logger';

/**
 * Something that runs in herald: the store, the bus, projection runners, the leader's workers, the
 * sockets, the HTTP server. `start` resolves once it runs; `stop` ends it, waiting for its work.
 */
export interface Service {
  readonly name: string;
  start?(): void | Promise<void>;
  stop(): void | Promise<void>;
}

/**
 * One lifecycle for everything that runs (STYLE.md, "Services"): services start in the order they are
 * given, and stop in reverse, each after everything that was started after it (so nothing still
 * running uses what already stopped). A service that fails to stop is logged and the rest still stop.
 * herald's composition root is one such list; the leader's background work another.
 */
export class Services {
  private readonly running: Service[] = [];

  constructor(private readonly log: Logger) {}

  /** Starts `service` after every service started before it; answers it. */
  async start<S extends Service>(service: S): Promise<S> {
    await service.start?.();
    this.running.push(service);
    return service;
  }

  /** Takes in a service that is running already (opened by its own factory), to stop with the others. */
  add<S extends Service>(service: S): S {
    this.running.push(service);
    return service;
  }

  /** Stops every service, the last started first. */
  async stop(): Promise<void> {
    for (let service = this.running.pop(); service; service = this.running.pop()) {
      try {
        await service.stop();
      } catch (error) {
        this.log.error({ err: error, service: service.name }, 'a service failed to stop; stopping the others');
      }
    }
  }
}

/** Something opened by its own factory (the stores, a listening server, a socket endpoint), as the service that closes it. */
export function closing<R extends { close(): void | Promise<void> }>(
  name: string,
  running: R,
): Service & { readonly running: R } {
  return { name, running, stop: () => running.close() };
}
