import type { EventFeed } from '../src/analysts/eventFeed';
import type { Bus } from '../src/bus/bus';
import type { Config } from '../src/config';
import { corsRouter } from '../src/cors';
import type { Datahub } from '../src/datahub/datahub';
import type { ItemOwners } from '../src/datahub/itemOwners';
import type { AppCallbacks } from '../src/devices/appCallbacks';
import type { DeviceGateway } from '../src/devices/deviceGateway';
import type { DeviceQueries } from '../src/devices/deviceQueries';
import type { Devices } from '../src/devices/devices';
import type { TerminalPresence } from '../src/devices/presence';
import type { Pushes } from '../src/devices/pushes';
import type { Tickets } from '../src/identity/tickets';
import type { Emails } from '../src/mail/emails';
import type { Messaging } from '../src/messaging/messaging';
import type { Metrics } from '../src/nodes/metrics';
import type { Readiness } from '../src/nodes/readiness';
import type { PlatformCredentials } from '../src/platformPush/credentials';
import type { Rtio } from '../src/rtio/deviceCalls';
import type { Clock } from '../src/runtime/clock';
import type { Logger } from '../src/runtime/logger';
import { closing, type Services } from '../src/runtime/services';
import { createHttpApp, listen } from '../src/server';
import type { AppRetentionSettings } from '../src/storage/appRetentionSettings';
import { buildSchema, GRAPHQL_PATH, graphqlRouter, graphqlWsServer } from './graphql/graphqlServer';
import { OperationChecks } from './graphql/operationChecks';
import { datahubItemsRouter } from './rest/datahubItems';
import { datahubRouter } from './rest/datahubShim';
import { datahubTopicsRouter } from './rest/datahubTopics';
import { koalaRouter } from './rest/koalaShim';
import { onePushRouter } from './rest/onepushShim';
import { rtioRouter } from './rest/rtioShim';
import { sdkAssetsRouter } from './rest/sdkAssets';
import { topvdnRouter } from './rest/topvdnShim';
import { msgpushSockets, MSGPUSH_PATH } from './sockets/msgpush';
import { RTIO_PATH, rtioSockets } from './sockets/rtioSocket';
import { routeUpgrades } from './sockets/upgrades';

/**
 * api/ to the rest of herald: everything herald serves over HTTP and WebSocket, mounted on what the
 * composition root (src/herald.ts) built. Nothing else outside api/ imports api/. A new legacy shim is a
 * router in api/rest/ added to `routers` below.
 */

/** What the APIs serve: herald's features, and the settings of the ports they listen on. */
export interface ApiDeps {
  readonly config: Pick<
    Config,
    | 'port'
    | 'host'
    | 'corsOrigins'
    | 'metricsToken'
    | 'rtioTrustedCidrs'
    | 'rtioAppId'
    | 'rtioManagePort'
    | 'rtioCallPort'
  >;
  readonly clock: Clock;
  readonly log: Logger;
  readonly bus: Bus;
  readonly tickets: Tickets;
  readonly messaging: Messaging;
  readonly datahub: Datahub;
  readonly emails: Emails;
  readonly itemOwners: ItemOwners;
  readonly devices: Devices;
  readonly deviceQueries: DeviceQueries;
  readonly pushes: Pushes;
  readonly gateway: DeviceGateway;
  /** Users with a live `messages` subscription (Koala's web terminals). */
  readonly terminals: TerminalPresence;
  readonly appCallbacks: AppCallbacks;
  readonly rtio: Rtio;
  readonly events: EventFeed;
  readonly platformCredentials: PlatformCredentials;
  readonly appRetention: AppRetentionSettings;
  readonly metrics: Metrics;
  /** /readyz and /healthz (src/server.ts). */
  readonly readiness: () => Promise<Readiness>;
  readonly unhealthy: () => string | undefined;
}

/**
 * Opens the HTTP server on PORT with every router, RTIO's own ports when configured, and the socket
 * endpoints (graphql-ws, ONE-PUSH's msgpush, RTIO devices') on it. Each (and rtio's calls) is added to `services` as it
 * opens, so a failed start closes what did open, and shutdown closes the sockets, then the ports (requests
 * in flight may finish), before anything they use. Answers the URL herald serves on.
 */
export async function mountApi(deps: ApiDeps, services: Services): Promise<{ readonly url: string }> {
  const { config, clock, log, tickets, devices, rtio, metrics } = deps;
  const { readiness, unhealthy } = deps;
  const schema = buildSchema(deps);
  const checks = new OperationChecks(schema);
  // GraphQL and RTIO's calls first after CORS: their requests then pass no other router's routes on the
  // way (express tries each route of each router in turn; the paths do not overlap, so order is free).
  const routers = [
    corsRouter(config.corsOrigins),
    graphqlRouter({ schema, checks, tickets, devices, rtio, clock, log }),
    rtioRouter({ rtio, tickets, trustedCidrs: config.rtioTrustedCidrs, appId: config.rtioAppId, log }),
    koalaRouter({ tickets, messaging: deps.messaging, clock, log }),
    datahubRouter({ tickets, datahub: deps.datahub, clock, log }),
    datahubTopicsRouter({ tickets, datahub: deps.datahub, emails: deps.emails, clock, log }),
    datahubItemsRouter({ tickets, itemOwners: deps.itemOwners, clock, log }),
    onePushRouter({ tickets, devices, pushes: deps.pushes, clock, log }),
    topvdnRouter({
      tickets,
      devices,
      deviceQueries: deps.deviceQueries,
      pushes: deps.pushes,
      appCallbacks: deps.appCallbacks,
      clock,
      log,
    }),
    sdkAssetsRouter({ log }),
    metrics.router(config.metricsToken),
  ];
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
    const app = createHttpApp({ readiness, unhealthy, routers: [router], log });
    services.add(closing(`rtio ${only} port`, await listen(app, { port, host: config.host, log })));
  }
  const rtioDeviceSockets = services.add(closing('rtio device sockets', rtioSockets({ rtio, log })));
  // Stopped between the endpoints: once graphql-ws and msgpush have closed, rtio closes the RTIO devices'
  // connections still open (1001, "herald is stopping"), then RTIO's endpoint closes.
  services.add(closing('rtio calls', rtio));
  const deviceSockets = services.add(closing('msgpush sockets', msgpushSockets({ gateway: deps.gateway, log })));
  const graphqlWs = services.add(
    closing('graphql-ws', graphqlWsServer({ schema, checks, tickets, devices, rtio, clock, log })),
  );
  routeUpgrades(
    server.server,
    {
      [GRAPHQL_PATH]: graphqlWs.running.wss,
      [MSGPUSH_PATH]: deviceSockets.running.wss,
      [RTIO_PATH]: rtioDeviceSockets.running.wss,
    },
    log,
  );
  metrics.connectedSockets(() => ({
    graphql: graphqlWs.running.wss.clients.size,
    msgpush: deviceSockets.running.wss.clients.size,
    rtio: rtioDeviceSockets.running.wss.clients.size,
  }));
  return { url: server.url };
}
