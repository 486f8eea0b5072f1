import type { Pool } from 'pg';
import { mountApi } from '../api';
import { appStreamName } from '../domain/app/app';
import { migrations, readModels, type ReadModels } from '../projections';
import { EventFeed } from './analysts/eventFeed';
import { InProcessBus, type Bus } from './bus/bus';
import { RedisBus } from './bus/redisBus';
import { appAggregate } from './command/aggregates';
import { handleCommand } from './command/commandHandler';
import type { Config } from './config';
import { Datahub } from './datahub/datahub';
import { ItemOwners } from './datahub/itemOwners';
import { WhitelistOwnerNotifier } from './datahub/whitelistOwnerNotifier';
import { AppCallbacks, postJson } from './devices/appCallbacks';
import { DeviceGateway } from './devices/deviceGateway';
import { Devices } from './devices/devices';
import { TerminalPresence } from './devices/presence';
import { Pushes } from './devices/pushes';
import type { EventStore } from './eventStore/eventStore';
import { MeteredEventStore } from './eventStore/meteredEventStore';
import { hashAppSecret } from './identity/appSecret';
import { Tickets } from './identity/tickets';
import { openInfrastructure, type Infrastructure } from './infrastructure';
import { Emails } from './mail/emails';
import { createMailer } from './mail/mailer';
import { MessageScheduler } from './messaging/messageScheduler';
import { Messaging, SendAllowance } from './messaging/messaging';
import { LocalDirectory, RedisDirectory, type Directory } from './nodes/directory';
import { Leadership } from './nodes/leadership';
import { Metrics } from './nodes/metrics';
import { assessReadiness, type Readiness, type ReadinessCheck } from './nodes/readiness';
import { Apns } from './platformPush/apns';
import { credentialsKey, PlatformCredentials } from './platformPush/credentials';
import { Fcm } from './platformPush/fcm';
import { KoalaWebPushes } from './platformPush/koalaWebPushes';
import { PlatformPushes } from './platformPush/platformPusher';
import { WebPush } from './platformPush/webPush';
import { projectionLags, projectionsReadiness } from './projection/projectionLag';
import { ProjectionProgress } from './projection/projectionProgress';
import { ProjectionRunner } from './projection/projectionRunner';
import { Rtio } from './rtio/deviceCalls';
import { ReportForwarder } from './rtio/reportForwarder';
import { systemClock, type Clock } from './runtime/clock';
import type { Logger } from './runtime/logger';
import { closing, Services } from './runtime/services';
import { AppRetentionSettings } from './storage/appRetentionSettings';
import { EventArchive } from './storage/eventArchive';
import { EventRetention, retiredStreamsQueued } from './storage/eventRetention';
import { RetentionPass } from './storage/retention';
import { tableSizes } from './storage/storageStatus';

/**
 * The composition root: every long-lived piece of herald is created and wired here, and closed here. It
 * sees api/ and projections/ only through their entry points (mountApi, readModels and the migration
 * registry).
 */

export interface Herald {
  readonly url: string;
  readonly infrastructure: Infrastructure;
  readonly bus: Bus;
  readonly runners: readonly ProjectionRunner[];
  readonly tickets: Tickets;
  readonly messaging: Messaging;
  readonly datahub: Datahub;
  readonly devices: Devices;
  readonly pushes: Pushes;
  readonly gateway: DeviceGateway;
  readonly appCallbacks: AppCallbacks;
  readonly rtio: Rtio;
  readonly reportForwarder: ReportForwarder | undefined;
  /** The read models' pruning, run by the node that leads (runOnce: a pass now, for tests and tools). */
  readonly retention: RetentionPass;
  /** How long each app keeps its records that never end (GraphQL `setRetention`). */
  readonly appRetention: AppRetentionSettings;
  /** The app's event stream for analysts (GraphQL `events`). */
  readonly events: EventFeed;
  /** Apps' platform-push credentials (GraphQL `setApnsCredentials`, `setFcmCredentials`). */
  readonly platformCredentials: PlatformCredentials;
  /** The leader's platform pushes (APNs, FCM): `wake()` after a test moved the clock. */
  readonly platformPushes: PlatformPushes;
  /** The leader's look for Koala messages to users' closed browsers (docs/platform-push.md): `wake()` for tests. */
  readonly koalaWebPushes: KoalaWebPushes;
  /** Users with a live `messages` subscription, on any node. */
  readonly terminals: TerminalPresence;
  readiness(): Promise<Readiness>;
  close(): Promise<void>;
}

/**
 * Starts herald as one list of services (src/runtime/services.ts), each started after the ones it uses
 * and stopped, on close or a failed start, in reverse: the stores, the bus, the directory, projection
 * progress, the mailer's transport, the projection runners, the device gateway, the leader's background
 * work, then the APIs (HTTP, RTIO's ports, the socket endpoints), so HTTP drains before the projections
 * stop and they stop before the stores.
 */
export async function startHerald(
  config: Config,
  log: Logger,
  options: { readonly clock?: Clock; readonly onStoreLost?: (error: Error) => void } = {},
): Promise<Herald> {
  const clock = options.clock ?? systemClock;
  const services = new Services(log);
  try {
    const infrastructure = services.add(
      closing(
        'store',
        await openInfrastructure(config, log, {
          migrations,
          ...(options.onStoreLost && { onStoreLost: options.onStoreLost }),
        }),
      ),
    ).running;
    const { database } = infrastructure;
    const metrics = new Metrics();
    const store = new MeteredEventStore(infrastructure.store, metrics);
    const bus = services.add(closing('bus', await openBus(config, log))).running;
    const directory = services.add(closing('directory', await openDirectory(config, log))).running;
    const models = readModels(database.pool);
    const progress = new ProjectionProgress({ database, log });
    await services.start({ name: 'projection progress', start: () => progress.start(), stop: () => progress.close() });
    await registerConfiguredApps(store, config, clock, log);
    let leadership: Leadership | undefined;
    const features = await openFeatures({
      config,
      log,
      pool: database.pool,
      clock,
      store,
      bus,
      directory,
      models,
      progress,
      isLeader: () => leadership?.isLeader ?? false,
      services,
      metrics,
    });
    // Ready once every projection has caught up to the events that existed at start-up.
    const startupHead = await store.headPosition();
    const onCommitted = (name: string, position: bigint) => progress.advance(name, position);
    const runners = models.projections.map(
      (projection) =>
        new ProjectionRunner({ database, store, projection, bus, log, onCommitted, onError: config.projectionOnError }),
    );
    await services.start({
      name: 'projections',
      start: () => runners.forEach((r) => r.start()),
      stop: async () => void (await Promise.all(runners.map((r) => r.stop()))),
    });
    const { gateway } = features;
    await services.start({ name: 'device gateway', start: () => gateway.start(), stop: () => gateway.stop() });
    // Work done once for all nodes runs on the node that leads (one process alone leads itself).
    leadership = await services.start(new Leadership({ database, log, work: features.backgroundWork }));
    const { readiness, unhealthy } = probes({
      config,
      clock,
      store,
      infrastructure,
      runners,
      progress,
      startupHead,
      leadership,
      bus,
    });
    metrics.readModelSizes(() =>
      tableSizes(
        database.pool,
        models.projections.flatMap((p) => p.tables),
      ),
    );
    metrics.projectionLag(() =>
      projectionLags(
        store,
        runners.map((r) => ({ name: r.name, position: progress.position(r.name) })),
        clock(),
      ),
    );
    const { url } = await mountApi(
      { ...features, config, clock, log, bus, metrics, readiness, unhealthy, deviceQueries: models.devices.queries },
      services,
    );
    return {
      url,
      infrastructure,
      bus,
      runners,
      ...features,
      readiness,
      async close() {
        log.info('shutting down');
        await services.stop();
        log.info('stopped');
      },
    };
  } catch (error) {
    await services.stop();
    throw error;
  }
}

/**
 * herald's features, each behind the read models it queries: what the APIs call, and the background work
 * the node that leads runs. Nothing here runs yet.
 */
async function openFeatures(deps: {
  readonly config: Config;
  readonly log: Logger;
  readonly pool: Pool;
  readonly clock: Clock;
  readonly store: EventStore;
  readonly bus: Bus;
  readonly directory: Directory;
  readonly models: ReadModels;
  readonly progress: ProjectionProgress;
  /** Whether this node leads (runs the background work) now. */
  readonly isLeader: () => boolean;
  /** Where what must close with herald is added as soon as it opens. */
  readonly services: Services;
  readonly metrics: Metrics;
}) {
  const { config, log, clock, store, bus, directory, models } = deps;
  // A command answers once the read models its caller queries show it (docs/architecture.md: read your writes).
  const shows = (...readModels: ReadonlyArray<{ readonly name: string }>) =>
    deps.progress.readYourWrites(
      readModels.map((m) => m.name),
      config.readYourWritesTimeoutMs,
    );
  const inbox = models.koalaInbox.queries;
  // Sends and acks answer once the inbox shows them; the scheduler's releases wait the same way, so a
  // lagging projection does not make them due again and again.
  const inboxShows = shows(models.koalaInbox);
  const scheduler = new MessageScheduler({ store, scheduled: inbox, clock, log, readYourWrites: inboxShows });
  const tickets = await Tickets.open({
    store,
    keptKey: models.ticketKey,
    apps: models.apps.secrets,
    ttlSeconds: config.ticketTtlSeconds,
    ...(config.ticketSecret !== undefined && { configuredSecret: config.ticketSecret }),
  });
  // One budget per sender, whichever API it sends through; stats clears and RTIO reports take from it too.
  const sendAllowance = new SendAllowance(config.sendRatePerMinute);
  const messaging = new Messaging({
    store,
    inbox,
    readYourWrites: inboxShows,
    sendAllowance,
    inboxPosition: () => deps.progress.position(models.koalaInbox.name),
  });
  const datahub = new Datahub({
    store,
    queries: models.datahub.queries,
    subscribers: models.datahub.itemSubscribers,
    sendAllowance,
    readYourWrites: shows(models.datahub),
  });
  // apply_whitelist without an owner waits for the item's owner (docs/api/datahub.md, "Item owners").
  const whitelistShows = shows(models.whitelist);
  const whitelistOwnerNotifier = new WhitelistOwnerNotifier({
    store,
    waiting: models.whitelist.waiting,
    clock,
    log,
    readYourWrites: whitelistShows,
  });
  const itemOwners = new ItemOwners({
    store,
    readYourWrites: whitelistShows,
    ownerRegistered: () => whitelistOwnerNotifier.wake(),
  });
  const emailsShow = shows(models.emails);
  const mailer = createMailer({
    store,
    pending: models.emails.pending,
    clock,
    log,
    smtpUrl: config.smtpUrl,
    readYourWrites: emailsShow,
    ...(config.mailFrom && { from: config.mailFrom }),
  });
  // The leader starts and stops its sending; its SMTP transport closes with herald.
  if (mailer) deps.services.add(closing('mailer transport', mailer));
  const devicesShow = shows(models.devices);
  const devices = new Devices({
    store,
    numbers: models.devices.numbers,
    queries: models.devices.queries,
    keys: tickets,
    readYourWrites: devicesShow,
    webPushEndpoint: config.webPushEndpoint,
  });
  const { deliveries } = models.devices;
  const gateway = new DeviceGateway({
    store,
    devices: models.devices.queries,
    deliveries,
    bus,
    clock,
    log,
    readYourWrites: devicesShow,
    leads: deps.isLeader,
    directory,
  });
  const appCallbacks = new AppCallbacks({
    store,
    deliveries,
    urls: models.apps.pushCallbackUrls,
    bus,
    clock,
    log,
    readYourWrites: devicesShow,
    appsShow: shows(models.apps),
    post: postJson({ privateNetworks: config.callbackPrivateNetworks }),
  });
  const pushes = new Pushes({
    store,
    deliveries,
    presence: gateway.presence,
    sendAllowance,
    readYourWrites: devicesShow,
  });
  // Platform push (docs/platform-push.md): APNs for IOS, FCM for ANDROID, Web Push for WEB devices with no live connection.
  const platformCredentials = new PlatformCredentials({
    store: models.platformPushes.credentials,
    fcmStore: models.platformPushes.fcmCredentials,
    vapidStore: models.platformPushes.vapidCredentials,
    key: () => credentialsKey(config.credentialsKey, config.dataDir),
    ...(config.apns && { fromEnvironment: config.apns }),
    ...(config.fcm && { fcmFromEnvironment: config.fcm }),
    ...(config.vapid && { vapidFromEnvironment: config.vapid }),
    onUnreadable: (appId, service) =>
      log.error(
        { appId, service },
        "the app's platform-push key does not open with this credentials key (HERALD_CREDENTIALS_KEY changed, or not shared by the nodes?): its pushes wait; share the key or set the app's again",
      ),
    onNoKey: (error) =>
      log.error(
        { err: error },
        'no credentials key: HERALD_CREDENTIALS_KEY is unset and the data dir has none it can make (not writable?); platform pushes wait',
      ),
  });
  const apns = deps.services.add(
    closing('APNs connections', new Apns((appId) => platformCredentials.apns.forSending(appId), config.apnsEndpoint)),
  ).running;
  const fcm = deps.services.add(
    closing(
      'FCM access tokens',
      new Fcm((appId) => platformCredentials.fcm.forSending(appId), config.fcmEndpoint, {
        clock: () => clock().getTime(),
      }),
    ),
  ).running;
  const webpush = deps.services.add(
    closing(
      'Web Push connections',
      new WebPush((appId) => platformCredentials.vapid.forSending(appId), config.webPushEndpoint, {
        clock: () => clock().getTime(),
      }),
    ),
  ).running;
  // Koala's messages to users with no live terminal go to their subscribed browsers (docs/platform-push.md).
  const terminals = new TerminalPresence(directory);
  const platformPushesShow = shows(models.platformPushes);
  const koalaWebPushes: KoalaWebPushes = new KoalaWebPushes({
    store,
    queries: models.koalaWebPushes,
    terminals,
    appsWithVapid: () => platformCredentials.vapid.apps(),
    shownThrough: () =>
      [models.koalaInbox, models.devices, models.platformPushes]
        .map((m) => deps.progress.position(m.name))
        .reduce((a, b) => (a < b ? a : b)),
    readYourWrites: platformPushesShow,
    requested: () => platformPushes.wake(),
    clock,
    log,
  });
  const platformPushes = new PlatformPushes({
    koala: koalaWebPushes,
    store,
    queries: models.platformPushes.queries,
    presence: gateway.presence,
    services: { apns, fcm, webpush },
    appsWith: async () => {
      const [IOS, ANDROID, WEB] = await Promise.all([
        platformCredentials.apns.apps(),
        platformCredentials.fcm.apps(),
        platformCredentials.vapid.apps(),
      ]);
      return { IOS, ANDROID, WEB };
    },
    clock,
    log,
    metrics: deps.metrics,
    readYourWrites: platformPushesShow,
  });
  const reportsShow = shows(models.rtioReports);
  let reportForwarder: ReportForwarder | undefined;
  if (config.rtioNotifyUrl) {
    reportForwarder = new ReportForwarder({
      store,
      pending: models.rtioReports.pending,
      clock,
      log,
      notifyUrl: config.rtioNotifyUrl,
      readYourWrites: reportsShow,
    });
  } else log.warn("RTIO_NOTIFY_URL is not set: RTIO devices' reports are recorded but not forwarded");
  const rtio = new Rtio({
    store,
    clock,
    log,
    directory,
    bus,
    sendAllowance,
    reportsShow,
    ...(reportForwarder && { forwarder: reportForwarder }),
  });
  const emails = new Emails({
    store,
    queries: models.emails.pending,
    readYourWrites: emailsShow,
    log,
    ...(mailer && { mailer }),
  });
  const appRetention = new AppRetentionSettings({
    store,
    retentions: models.apps.retentions,
    policy: config.retention,
    appsShow: shows(models.apps),
  });
  const retention = new RetentionPass({
    pool: deps.pool,
    prunables: models.retention,
    policy: config.retention,
    appRetentions: models.apps.retentions,
    clock,
    log,
    batchSize: config.retentionBatchSize,
    intervalMs: config.retentionIntervalSeconds * 1000,
    onPruned: (table, rows) => deps.metrics.retentionPruned.inc({ table }, rows),
  });
  // The event store's part: what the read model passes retired, archived then removed (PostgreSQL for now).
  const eventRetention = new EventRetention({
    pool: deps.pool,
    store,
    archive: new EventArchive(config.archiveDir),
    batchSize: config.retentionBatchSize,
    projectionNames: models.projections.map((p) => p.name),
    log,
    intervalMs: config.retentionIntervalSeconds * 1000,
    onBatch: (batch) => {
      deps.metrics.retentionArchived.inc(batch.archived);
      deps.metrics.retentionRemoved.inc(batch.removed);
    },
  });
  deps.metrics.retiredStreams(() => retiredStreamsQueued(deps.pool));
  return {
    tickets,
    messaging,
    datahub,
    itemOwners,
    emails,
    devices,
    gateway,
    appCallbacks,
    pushes,
    rtio,
    reportForwarder,
    mailer,
    retention,
    appRetention,
    platformCredentials,
    platformPushes,
    koalaWebPushes,
    terminals,
    events: new EventFeed({ store }),
    /** Started in this order on the node that leads, stopped in reverse when it no longer does. */
    backgroundWork: [
      scheduler,
      appCallbacks,
      whitelistOwnerNotifier,
      platformPushes,
      koalaWebPushes,
      ...(mailer ? [mailer] : []),
      ...(reportForwarder ? [reportForwarder] : []),
      retention,
      eventRetention,
    ],
  };
}

/** With REDIS_URL, the directory of which node holds which device's connection is shared through Redis. */
async function openDirectory(config: Config, log: Logger): Promise<Directory> {
  return config.redisUrl ? await RedisDirectory.connect(config.redisUrl, log) : new LocalDirectory();
}

/** /readyz (ready when every check is: docs/operations.md, "Probes") and /healthz. */
function probes(deps: {
  readonly config: Config;
  readonly clock: Clock;
  readonly store: EventStore;
  readonly infrastructure: Infrastructure;
  readonly runners: readonly ProjectionRunner[];
  readonly progress: ProjectionProgress;
  readonly startupHead: bigint;
  readonly leadership: Leadership;
  readonly bus: Bus;
}): { readiness: () => Promise<Readiness>; unhealthy: () => string | undefined } {
  const { config, clock, store, infrastructure, leadership } = deps;
  const readinessChecks: ReadinessCheck[] = [
    {
      name: 'eventStore',
      run: async () => ({ detail: { kind: store.kind, head: (await store.headPosition()).toString() } }),
    },
    projectionsReadiness({
      store,
      pool: infrastructure.database.pool,
      runners: deps.runners,
      progress: deps.progress,
      clock,
      startupHead: deps.startupHead,
      maxLagSeconds: config.readyMaxLagSeconds,
    }),
    // Which node runs the background work is shown, not required: a standby node serves as well.
    { name: 'leadsBackgroundWork', run: async () => ({ detail: leadership.isLeader }) },
    // A node whose bus is down pushes nothing live (its subscribers catch up once it is back).
    ...(config.redisUrl ? [busReadiness(deps.bus)] : []),
  ];
  return {
    readiness: () => assessReadiness(readinessChecks),
    // A store down briefly (being restarted) is not yet a reason to restart herald; one down longer is.
    unhealthy: () => {
      const since = infrastructure.embedded?.downSince();
      return since && clock().getTime() - since.getTime() > STORE_DOWN_GRACE_MS
        ? `embedded PostgreSQL down since ${since.toISOString()}`
        : undefined;
    },
  };
}

/** With REDIS_URL, the bus between nodes; without, this process's own (a single node). */
async function openBus(config: Config, log: Logger): Promise<Bus> {
  if (!config.redisUrl)
    return new InProcessBus((error, topic) => log.error({ err: error, topic }, 'bus subscriber failed'));
  const bus = await RedisBus.connect(config.redisUrl, log);
  log.info('publications travel between nodes on Redis (REDIS_URL)');
  return bus;
}

const STORE_DOWN_GRACE_MS = 15_000;

/** HERALD_APPS at start-up: registering an app again with the same secret appends nothing. */
async function registerConfiguredApps(store: EventStore, config: Config, clock: Clock, log: Logger): Promise<void> {
  for (const { appId, secret } of config.apps) {
    const secretHash = hashAppSecret(appId, secret);
    const result = await handleCommand(
      store,
      appAggregate,
      appStreamName(appId),
      { type: 'RegisterApp', appId, secretHash, now: clock().toISOString() },
      // No commandId: a secret used before (A → B → A) is a change like any other, not a retry; nodes
      // starting at once are told apart by the expected revision, and the same secret appends nothing.
      { appId, actor: 'herald:HERALD_APPS' },
    );
    if (result.events.length > 0)
      log.info({ appId, events: result.events.map((e) => e.type) }, 'app registered from HERALD_APPS');
  }
}

function busReadiness(bus: Bus): ReadinessCheck {
  return {
    name: 'bus',
    run: async () => {
      const healthy = bus.healthy();
      return { detail: { healthy }, ...(!healthy && { problem: 'disconnected from Redis' }) };
    },
  };
}
