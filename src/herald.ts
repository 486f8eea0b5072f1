import { buildSchema, GRAPHQL_PATH, graphqlRouter, graphqlWsServer } from '../api/graphql/graphqlServer';
import { OperationChecks } from '../api/graphql/operationChecks';
import { datahubItemsRouter } from '../api/rest/datahubItems';
import { datahubRouter } from '../api/rest/datahubShim';
import { datahubTopicsRouter } from '../api/rest/datahubTopics';
import { koalaRouter } from '../api/rest/koalaShim';
import { onePushRouter } from '../api/rest/onepushShim';
import { rtioRouter } from '../api/rest/rtioShim';
import { sdkAssetsRouter } from '../api/rest/sdkAssets';
import { topvdnRouter } from '../api/rest/topvdnShim';
import { msgpushSockets, MSGPUSH_PATH } from '../api/sockets/msgpush';
import { RTIO_PATH, rtioSockets } from '../api/sockets/rtioSocket';
import { routeUpgrades } from '../api/sockets/upgrades';
import { appStreamName } from '../domain/app/app';
import { projections as allProjections } from '../projections';
import { appSecrets, appsProjection, pushCallbackUrls } from '../projections/apps';
import { datahubProjection, datahubQueries, itemSubscribers } from '../projections/datahubNotifications';
import { deliveryQueries, deviceQueries, devicesProjection } from '../projections/devices';
import { emailQueries, emailsProjection } from '../projections/emails';
import { notificationQueries, notificationsProjection } from '../projections/koalaInbox';
import { rtioProjection, rtioReportQueries } from '../projections/rtioReports';
import { waitingApplications, whitelistProjection } from '../projections/whitelist';
import { EventFeed } from './analysts/eventFeed';
import { InProcessBus, type Bus } from './bus/bus';
import { RedisBus } from './bus/redisBus';
import { appAggregate } from './command/aggregates';
import { handleCommand } from './command/commandHandler';
import type { Config } from './config';
import { corsRouter } from './cors';
import { Datahub } from './datahub/datahub';
import { ItemOwners } from './datahub/itemOwners';
import { WhitelistOwnerNotifier } from './datahub/whitelistOwnerNotifier';
import { AppCallbacks, postJson } from './devices/appCallbacks';
import { DeviceGateway } from './devices/deviceGateway';
import { Devices } from './devices/devices';
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
import { projectionLags, projectionsReadiness } from './projection/projectionLag';
import { ProjectionProgress } from './projection/projectionProgress';
import { ProjectionRunner } from './projection/projectionRunner';
import { Rtio } from './rtio/deviceCalls';
import { ReportForwarder } from './rtio/reportForwarder';
import { systemClock, type Clock } from './runtime/clock';
import type { Logger } from './runtime/logger';
import { Services, type Service } from './runtime/services';
import { createHttpApp, listen } from './server';

/** The composition root: every long-lived piece of herald is created and wired here, and closed here. */

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
  /** The app's event stream for analysts (GraphQL `events`). */
  readonly events: EventFeed;
  readiness(): Promise<Readiness>;
  close(): Promise<void>;
}

export async function startHerald(
  config: Config,
  log: Logger,
  options: { readonly clock?: Clock; readonly onStoreLost?: (error: Error) => void } = {},
): Promise<Herald> {
  const clock = options.clock ?? systemClock;
  // Everything that runs, in the order it starts; stopped in reverse, on close or a failed start.
  const services = new Services(log);
  try {
    const infrastructure = await openInfrastructure(config, log, {
      ...(options.onStoreLost && { onStoreLost: options.onStoreLost }),
    });
    services.add({ name: 'store', stop: () => infrastructure.close() });
    const { database } = infrastructure;
    const metrics = new Metrics();
    const store = new MeteredEventStore(infrastructure.store, metrics);
    const bus = await openBus(config, log);
    services.add({ name: 'bus', stop: () => bus.close() });
    const directory: Directory = config.redisUrl
      ? await RedisDirectory.connect(config.redisUrl, log)
      : new LocalDirectory();
    services.add({ name: 'directory', stop: () => directory.close() });
    const inbox = notificationQueries(database.pool);
    const progress = new ProjectionProgress({ database, log });
    // Sends and acks answer once the inbox shows them (docs/architecture.md: read your writes); the
    // scheduler's releases wait the same way, so a lagging projection does not make them due again and again.
    const inboxShows = progress.readYourWrites([notificationsProjection.name], config.readYourWritesTimeoutMs);
    const scheduler = new MessageScheduler({ store, scheduled: inbox, clock, log, readYourWrites: inboxShows });
    await services.start({ name: 'projection progress', start: () => progress.start(), stop: () => progress.close() });
    await registerConfiguredApps(store, config, clock, log);
    const tickets = await Tickets.open({
      store,
      pool: database.pool,
      apps: appSecrets(database.pool),
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
      inboxPosition: () => progress.position(notificationsProjection.name),
    });
    const datahub = new Datahub({
      store,
      queries: datahubQueries(database.pool),
      subscribers: itemSubscribers(database.pool),
      sendAllowance,
      readYourWrites: progress.readYourWrites([datahubProjection.name], config.readYourWritesTimeoutMs),
    });
    // apply_whitelist without an owner waits for the item's owner (docs/api/datahub.md, "Item owners").
    const whitelistShows = progress.readYourWrites([whitelistProjection.name], config.readYourWritesTimeoutMs);
    const whitelistOwnerNotifier = new WhitelistOwnerNotifier({
      store,
      waiting: waitingApplications(database.pool),
      clock,
      log,
      readYourWrites: whitelistShows,
    });
    const itemOwners = new ItemOwners({
      store,
      readYourWrites: whitelistShows,
      ownerRegistered: () => whitelistOwnerNotifier.wake(),
    });
    const pendingEmails = emailQueries(database.pool);
    const emailsShow = progress.readYourWrites([emailsProjection.name], config.readYourWritesTimeoutMs);
    const mailer = createMailer({
      store,
      pending: pendingEmails,
      clock,
      log,
      smtpUrl: config.smtpUrl,
      readYourWrites: emailsShow,
      ...(config.mailFrom && { from: config.mailFrom }),
    });
    // The leader starts and stops its sending; its SMTP transport closes with herald.
    if (mailer) services.add({ name: 'mailer transport', stop: () => mailer.close() });
    const devicesShow = progress.readYourWrites([devicesProjection.name], config.readYourWritesTimeoutMs);
    const devices = new Devices({
      store,
      pool: database.pool,
      queries: deviceQueries(database.pool),
      keys: tickets,
      readYourWrites: devicesShow,
    });
    const deliveries = deliveryQueries(database.pool);
    let leadership: Leadership | undefined;
    const gateway = new DeviceGateway({
      store,
      devices: deviceQueries(database.pool),
      deliveries,
      bus,
      clock,
      log,
      readYourWrites: devicesShow,
      leads: () => leadership?.isLeader ?? false,
      directory,
    });
    const appCallbacks = new AppCallbacks({
      store,
      deliveries,
      urls: pushCallbackUrls(database.pool),
      bus,
      clock,
      log,
      readYourWrites: devicesShow,
      appsShow: progress.readYourWrites([appsProjection.name], config.readYourWritesTimeoutMs),
      post: postJson({ privateNetworks: config.callbackPrivateNetworks }),
    });
    const pushes = new Pushes({
      store,
      deliveries,
      presence: gateway.presence,
      sendAllowance,
      readYourWrites: devicesShow,
    });
    let reportForwarder: ReportForwarder | undefined;
    if (config.rtioNotifyUrl) {
      reportForwarder = new ReportForwarder({
        store,
        pending: rtioReportQueries(database.pool),
        clock,
        log,
        notifyUrl: config.rtioNotifyUrl,
        readYourWrites: progress.readYourWrites([rtioProjection.name], config.readYourWritesTimeoutMs),
      });
    } else log.warn("RTIO_NOTIFY_URL is not set: RTIO devices' reports are recorded but not forwarded");
    const rtio = new Rtio({
      store,
      clock,
      log,
      directory,
      bus,
      sendAllowance,
      reportsShow: progress.readYourWrites([rtioProjection.name], config.readYourWritesTimeoutMs),
      ...(reportForwarder && { forwarder: reportForwarder }),
    });
    const emails = new Emails({
      store,
      queries: pendingEmails,
      readYourWrites: emailsShow,
      log,
      ...(mailer && { mailer }),
    });
    // Ready once every projection has caught up to the events that existed at start-up.
    const startupHead = await store.headPosition();
    const onCommitted = (name: string, position: bigint) => progress.advance(name, position);
    const runners = allProjections.map(
      (projection) =>
        new ProjectionRunner({ database, store, projection, bus, log, onCommitted, onError: config.projectionOnError }),
    );
    await services.start({
      name: 'projections',
      start: () => runners.forEach((r) => r.start()),
      stop: async () => void (await Promise.all(runners.map((r) => r.stop()))),
    });
    await services.start({ name: 'device gateway', start: () => gateway.start(), stop: () => gateway.stop() });
    // Work done once for all nodes runs on the node that leads (one process alone leads itself).
    leadership = await services.start(
      new Leadership({
        database,
        log,
        work: [
          scheduler,
          appCallbacks,
          whitelistOwnerNotifier,
          ...(mailer ? [mailer] : []),
          ...(reportForwarder ? [reportForwarder] : []),
        ],
      }),
    );

    const leads = leadership;
    // /readyz: ready when every check is (docs/operations.md, "Probes").
    const readinessChecks: ReadinessCheck[] = [
      {
        name: 'eventStore',
        run: async () => ({ detail: { kind: store.kind, head: (await store.headPosition()).toString() } }),
      },
      projectionsReadiness({
        store,
        pool: database.pool,
        runners,
        progress,
        clock,
        startupHead,
        maxLagSeconds: config.readyMaxLagSeconds,
      }),
      // Which node runs the background work is shown, not required: a standby node serves as well.
      { name: 'leadsBackgroundWork', run: async () => ({ detail: leads.isLeader }) },
      // A node whose bus is down pushes nothing live (its subscribers catch up once it is back).
      ...(config.redisUrl ? [busReadiness(bus)] : []),
    ];
    const readiness = () => assessReadiness(readinessChecks);
    const events = new EventFeed({ store });
    const schema = buildSchema({ messaging, bus, clock, datahub, devices, pushes, gateway, rtio, events });
    const checks = new OperationChecks(schema);
    const routers = [
      corsRouter(config.corsOrigins),
      koalaRouter({ tickets, messaging, clock, log }),
      datahubRouter({ tickets, datahub, clock, log }),
      datahubTopicsRouter({ tickets, datahub, emails, clock, log }),
      datahubItemsRouter({ tickets, itemOwners, clock, log }),
      onePushRouter({ tickets, devices, pushes, clock, log }),
      topvdnRouter({ tickets, devices, deviceQueries: deviceQueries(database.pool), pushes, appCallbacks, clock, log }),
      rtioRouter({ rtio, tickets, trustedCidrs: config.rtioTrustedCidrs, appId: config.rtioAppId, log }),
      graphqlRouter({ schema, checks, tickets, devices, rtio, clock, log }),
      sdkAssetsRouter({ log }),
      metrics.router(config.metricsToken),
    ];
    metrics.projectionLag(() =>
      projectionLags(
        store,
        runners.map((r) => ({ name: r.name, position: progress.position(r.name) })),
        clock(),
      ),
    );
    // A store down briefly (being restarted) is not yet a reason to restart herald; one down longer is.
    const unhealthy = () => {
      const since = infrastructure.embedded?.downSince();
      return since && clock().getTime() - since.getTime() > STORE_DOWN_GRACE_MS
        ? `embedded PostgreSQL down since ${since.toISOString()}`
        : undefined;
    };
    const server = await listen(createHttpApp({ readiness, unhealthy, routers, log, before: metrics.httpTimer() }), {
      port: config.port,
      host: config.host,
      log,
    });
    services.add(closing('http', server));
    // RTIO's own ports, as its seed documents them (8095 manage, 8090 call), when configured: off by
    // default, so nodes and test runs on one host do not clash; said at start-up, as its callers need them.
    if (config.rtioManagePort === undefined || config.rtioCallPort === undefined) {
      log.info(
        { rtioManagePort: config.rtioManagePort ?? null, rtioCallPort: config.rtioCallPort ?? null },
        "rtio: routes on PORT only; set RTIO_MANAGE_PORT=8095 and RTIO_CALL_PORT=8090 to serve the seed's URLs, and list the app-service's network in RTIO_TRUSTED_CIDRS",
      );
    }
    for (const [only, port] of [
      ['manage', config.rtioManagePort],
      ['call', config.rtioCallPort],
    ] as const) {
      if (port === undefined) continue;
      const router = rtioRouter({
        rtio,
        tickets,
        trustedCidrs: config.rtioTrustedCidrs,
        appId: config.rtioAppId,
        log,
        only,
      });
      services.add(
        closing(
          `rtio ${only} port`,
          await listen(createHttpApp({ readiness, unhealthy, routers: [router], log }), {
            port,
            host: config.host,
            log,
          }),
        ),
      );
    }
    const rtioDeviceSockets = rtioSockets({ rtio, log });
    services.add(closing('rtio device sockets', rtioDeviceSockets));
    services.add(closing('rtio calls', rtio));
    const deviceSockets = msgpushSockets({ gateway, log });
    services.add(closing('msgpush sockets', deviceSockets));
    const graphqlWs = graphqlWsServer({ schema, checks, tickets, devices, rtio, clock, log });
    services.add(closing('graphql-ws', graphqlWs));
    routeUpgrades(
      server.server,
      { [GRAPHQL_PATH]: graphqlWs.wss, [MSGPUSH_PATH]: deviceSockets.wss, [RTIO_PATH]: rtioDeviceSockets.wss },
      log,
    );
    metrics.connectedSockets(() => ({
      graphql: graphqlWs.wss.clients.size,
      msgpush: deviceSockets.wss.clients.size,
      rtio: rtioDeviceSockets.wss.clients.size,
    }));
    return {
      url: server.url,
      infrastructure,
      bus,
      runners,
      tickets,
      messaging,
      datahub,
      devices,
      pushes,
      gateway,
      appCallbacks,
      rtio,
      reportForwarder,
      events,
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

/** Something opened by its own factory (a listening server, a socket endpoint), as the service that closes it. */
function closing(name: string, running: { close(): void | Promise<void> }): Service {
  return { name, stop: () => running.close() };
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
      { commandId: `register-app:${secretHash}`, appId, actor: 'herald:HERALD_APPS' },
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
