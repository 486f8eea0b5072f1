import { timingSafeEqual } from 'node:crypto';
import express from 'express';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/**
 * Prometheus metrics of one herald process (docs/operations.md, "Metrics"), on its own registry so two
 * herald instances in one process (tests) do not share them. Gauges that describe the moment — projection
 * lag, connected sockets — are read when Prometheus scrapes, not kept up to date.
 */
export class Metrics {
  readonly registry = new Registry();
  readonly eventsAppended = new Counter({
    name: 'herald_events_appended_total',
    help: 'Events appended by this node, by event type',
    labelNames: ['type'],
    registers: [this.registry],
  });
  readonly deliveries = new Counter({
    name: 'herald_deliveries_total',
    help: 'Device delivery outcomes recorded by this node: delivered (first attempt), retried, confirmed, dropped, expired',
    labelNames: ['outcome'],
    registers: [this.registry],
  });
  readonly platformPushes = new Counter({
    name: 'herald_platform_pushes_total',
    help: 'Platform-push attempts made by this node (APNs, …), by platform and outcome: sent, retried (429, 5xx, no answer), failed (final), revoked (the token is dead)',
    labelNames: ['platform', 'outcome'],
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'herald_http_request_duration_seconds',
    help: 'HTTP requests by method, matched route and status class',
    labelNames: ['method', 'route', 'status'],
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
    registers: [this.registry],
  });

  readonly retentionPruned = new Counter({
    name: 'herald_retention_pruned_rows_total',
    help: 'Read model rows this node removed as past retention, by table',
    labelNames: ['table'],
    registers: [this.registry],
  });

  readonly retentionArchived = new Counter({
    name: 'herald_retention_archived_events_total',
    help: 'Events retention archived before removing them from the event store',
    registers: [this.registry],
  });

  readonly retentionRemoved = new Counter({
    name: 'herald_retention_removed_events_total',
    help: 'Events retention removed from the event store (each archived first)',
    registers: [this.registry],
  });

  /** Streams retired by the read models' pruning and not yet removed from the event store, read at scrape time. */
  retiredStreams(read: () => Promise<number>): void {
    let queued = 0;
    const refresh = sharedRead(read, (read) => (queued = read));
    new Gauge({
      name: 'herald_retention_retired_streams',
      help: "Streams the read models' pruning retired that the event store's next passes archive and remove",
      registers: [this.registry],
      async collect() {
        await refresh();
        this.set(queued);
      },
    });
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'herald_process_' });
  }

  /** Lag per projection, read at scrape time: positions behind the store's head, and the age of the oldest event not yet applied. */
  projectionLag(read: () => Promise<ReadonlyArray<{ projection: string; positions: number; seconds: number }>>): void {
    let lags: ReadonlyArray<{ projection: string; positions: number; seconds: number }> = [];
    const refresh = sharedRead(read, (read) => (lags = read));
    new Gauge({
      name: 'herald_projection_lag_positions',
      help: 'Store positions between the head and the projection checkpoint (PostgreSQL: about the events still to apply)',
      labelNames: ['projection'],
      registers: [this.registry],
      async collect() {
        await refresh();
        for (const lag of lags) this.set({ projection: lag.projection }, lag.positions);
      },
    });
    new Gauge({
      name: 'herald_projection_lag_seconds',
      help: 'Age of the oldest event the projection has not applied yet; 0 when caught up',
      labelNames: ['projection'],
      registers: [this.registry],
      async collect() {
        await refresh();
        for (const lag of lags) this.set({ projection: lag.projection }, lag.seconds);
      },
    });
  }

  /** Rows (PostgreSQL's estimate) and bytes of each read model table, read at scrape time. */
  readModelSizes(read: () => Promise<ReadonlyArray<{ table: string; rows: number; bytes: number }>>): void {
    let sizes: ReadonlyArray<{ table: string; rows: number; bytes: number }> = [];
    const refresh = sharedRead(read, (read) => (sizes = read));
    new Gauge({
      name: 'herald_read_model_rows',
      help: "Rows of each read model table (PostgreSQL's live-row estimate)",
      labelNames: ['table'],
      registers: [this.registry],
      async collect() {
        await refresh();
        for (const size of sizes) this.set({ table: size.table }, size.rows);
      },
    });
    new Gauge({
      name: 'herald_read_model_bytes',
      help: 'Bytes of each read model table, with its indexes and TOAST',
      labelNames: ['table'],
      registers: [this.registry],
      async collect() {
        await refresh();
        for (const size of sizes) this.set({ table: size.table }, size.bytes);
      },
    });
  }

  /** Connected sockets by kind (graphql-ws, msgpush devices, RTIO devices), counted at scrape time. */
  connectedSockets(countsByKind: () => Readonly<Record<string, number>>): void {
    new Gauge({
      name: 'herald_connected_sockets',
      help: 'WebSocket connections open on this node, by kind',
      labelNames: ['kind'],
      registers: [this.registry],
      collect() {
        for (const [kind, count] of Object.entries(countsByKind())) this.set({ kind }, count);
      },
    });
  }

  /** Times every request; the route label is the matched route's pattern, never the raw URL (bounded cardinality). */
  httpTimer(): express.RequestHandler {
    return (req, res, next) => {
      const end = this.httpDuration.startTimer();
      res.once('finish', () => {
        const route = req.route ? `${req.baseUrl}${String((req.route as { path: unknown }).path)}` : 'unmatched';
        end({ method: req.method, route, status: `${Math.floor(res.statusCode / 100)}xx` });
      });
      next();
    };
  }

  /**
   * GET /metrics for Prometheus, with `Authorization: Bearer <HERALD_METRICS_TOKEN>`; without a token
   * configured the route does not exist (metrics tell who is connected and how busy herald is).
   */
  router(token: string | undefined): express.Router {
    const router = express.Router();
    if (!token) return router;
    const expected = Buffer.from(`Bearer ${token}`);
    router.get('/metrics', async (req, res) => {
      const given = Buffer.from(req.headers.authorization ?? '');
      if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
        res
          .status(401)
          .set('www-authenticate', 'Bearer')
          .json({ error: { code: 'UNAUTHENTICATED', message: 'send Authorization: Bearer <HERALD_METRICS_TOKEN>' } });
        return;
      }
      res.set('content-type', this.registry.contentType).send(await this.registry.metrics());
    });
    return router;
  }
}

/**
 * One read shared by the gauges of a scrape (reused for a second); a failed read keeps the last values
 * (the store is down: /readyz says why).
 */
function sharedRead<T>(read: () => Promise<T>, keep: (value: T) => void): () => Promise<void> {
  let reading: Promise<void> | undefined;
  let readAt = 0;
  return () => {
    if (!reading || Date.now() - readAt > 1000) {
      readAt = Date.now();
      reading = read().then(keep, () => undefined);
    }
    return reading;
  };
}
