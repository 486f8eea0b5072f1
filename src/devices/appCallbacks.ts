import { lookup, type LookupAddress, type LookupOptions } from 'node:dns';
import http from 'node:http';
import https from 'node:https';
import { BlockList, isIP } from 'node:net';
import { appStreamName } from '../../domain/app/app';
import { APP_CALLBACK_TARGET, deliveryDecider, deliveryStreamName, deliveryTerms, type RecordAttempt } from '../../domain/device/delivery';
import type { Bus } from '../bus/bus';
import type { Clock } from '../clock';
import { appAggregate, deliveryAggregate } from '../command/aggregates';
import { handleCommand, loadState } from '../command/commandHandler';
import { DueWork } from '../dueWork';
import type { EventStore } from '../eventStore/eventStore';
import type { Logger } from '../logger';
import type { DeliveryQueries, DevicePush, OpenDelivery } from './deviceQueries';
import { APP_CALLBACKS_TOPIC, type DevicePublication } from './deviceTopics';

/**
 * topvdn's `callback: 1` (shared/seeds/002_66d9dfe67c8bed29.txt): the message also goes to the app's
 * server, at the URL the app set (PUT /v2/message/callback, docs/api/topvdn.md). It is a delivery like
 * a device's, to the target APP_CALLBACK_TARGET: each POST is an attempt, and a 2xx answer is the
 * confirmation. flag 2 retries at the device schedule (0, 1, 3, 6, 11 s) until a 2xx and is dropped
 * at 16 s; flag 3 is one POST, whatever the answer. An app without a URL gets no attempt: the
 * delivery is dropped when its push expires.
 *
 * POST body: `{"request_id", "from", "msg", "flag"}` as JSON; redirects are not followed; 5 s timeout.
 */

/** What the sender reads of the apps read model (implemented by projections/apps.ts). */
export interface PushCallbackUrls {
  urlOf(appId: string): Promise<string | undefined>;
}

/** POSTs a JSON body; answers the HTTP status (tests may pass their own). */
export type PostJson = (url: string, body: string) => Promise<number>;

const TIMEOUT_MS = 5000;
const MAX_WAIT_MS = 1000;
/** POSTs in flight at once: in all, and per app (one app's slow server must not hold up the others'). */
const MAX_IN_FLIGHT = 64;
const MAX_IN_FLIGHT_PER_APP = 8;

/**
 * POSTs with node's own client: no redirects followed, a 5 s timeout, and — unless private networks are
 * allowed — no connection to a loopback, private, link-local or otherwise non-public address, checked on
 * the addresses the connection actually uses (so a name that resolves differently later cannot slip by).
 */
export function postJson(options: { readonly privateNetworks: 'allow' | 'refuse' }): PostJson {
  const guard = options.privateNetworks === 'refuse';
  return (url, body) =>
    new Promise<number>((resolve, reject) => {
      const target = new URL(url);
      const host = target.hostname.replace(/^\[|\]$/g, '');
      if (guard && isIP(host) && !isPublicAddress(host)) return reject(new Error(`${host} is not a public address`));
      const client = target.protocol === 'https:' ? https : http;
      const request = client.request(
        target,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) },
          timeout: TIMEOUT_MS,
          ...(guard && { lookup: publicLookup }),
        },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.on('timeout', () => request.destroy(new Error(`no answer within ${TIMEOUT_MS} ms`)));
      request.on('error', reject);
      request.end(body);
    });
}

const NON_PUBLIC = new BlockList();
for (const [network, prefix] of [
  ['0.0.0.0', 8], ['10.0.0.0', 8], ['100.64.0.0', 10], ['127.0.0.0', 8], ['169.254.0.0', 16], ['172.16.0.0', 12],
  ['192.0.0.0', 24], ['192.168.0.0', 16], ['198.18.0.0', 15], ['224.0.0.0', 4], ['240.0.0.0', 4],
] as const) NON_PUBLIC.addSubnet(network, prefix, 'ipv4');
for (const [network, prefix] of [['::', 128], ['::1', 128], ['fc00::', 7], ['fe80::', 10], ['ff00::', 8]] as const) NON_PUBLIC.addSubnet(network, prefix, 'ipv6');

function isPublicAddress(address: string): boolean {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address)?.[1];
  if (mapped) return !NON_PUBLIC.check(mapped, 'ipv4');
  return !NON_PUBLIC.check(address, isIP(address) === 6 ? 'ipv6' : 'ipv4');
}

/** dns.lookup, refusing a name any of whose addresses is not public. */
function publicLookup(hostname: string, options: LookupOptions, callback: (error: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void): void {
  lookup(hostname, { ...options, all: true }, (error, addresses) => {
    if (error) return callback(error, []);
    const refused = addresses.find((a) => !isPublicAddress(a.address));
    if (refused) return callback(Object.assign(new Error(`${hostname} resolves to ${refused.address}, not a public address`), { code: 'ENOTPUBLIC' }), []);
    if (options.all) return callback(null, addresses);
    callback(null, addresses[0]!.address, addresses[0]!.family);
  });
}

export class AppCallbacks {
  private readonly work: DueWork<OpenDelivery>;
  private unsubscribe: () => void = () => undefined;
  /** Callbacks being made, by push id, with their app: each is made by one caller at a time. */
  private readonly inFlight = new Map<string, string>();

  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly deliveries: DeliveryQueries;
      readonly urls: PushCallbackUrls;
      readonly bus: Bus;
      readonly clock: Clock;
      readonly log: Logger;
      /** Resolves once the devices read model shows a delivery change at this position. */
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
      /** Resolves once the apps read model (where the URL is read) shows a change at this position. */
      readonly appsShow: (position: bigint | undefined) => Promise<void>;
      readonly post: PostJson;
    },
  ) {
    this.work = new DueWork<OpenDelivery>({
      clock: deps.clock,
      log: deps.log,
      doing: 'a callback to an app',
      maxWaitMs: MAX_WAIT_MS,
      due: (now, limit) => deps.deliveries.dueCallbacks(now, limit),
      nextDueAt: () => deps.deliveries.nextDue([APP_CALLBACK_TARGET]),
      idOf: (delivery) => delivery.push.pushId,
      // Started, not awaited: a slow app's POST must not hold up the other callbacks.
      perform: async (delivery) => {
        this.begin(delivery.push, true);
        return undefined;
      },
      readYourWrites: deps.readYourWrites,
    });
  }

  /** Sets (or, with null, removes) where the app receives callbacks. */
  async setUrl(appId: string, url: string | null, now: Date): Promise<string | null> {
    const result = await handleCommand(this.deps.store, appAggregate, appStreamName(appId), { type: 'SetPushCallback', appId, url, now: now.toISOString() }, { appId, actor: `app:${appId}` });
    await this.deps.appsShow(result.position);
    return result.state.status === 'registered' ? result.state.pushCallbackUrl : null;
  }

  /** Where the app receives callbacks, if it set a URL. */
  async urlOf(appId: string): Promise<string | null> {
    return (await this.deps.urls.urlOf(appId)) ?? null;
  }

  start(): void {
    this.unsubscribe = this.deps.bus.subscribe(APP_CALLBACKS_TOPIC, (payload) => {
      const publication = payload as DevicePublication;
      if (publication.type === 'push') this.begin(publication.push, false);
    });
    this.work.start();
  }

  async stop(): Promise<void> {
    this.unsubscribe();
    await this.work.stop();
  }

  /** Look for due callbacks now (a test moved the clock). */
  wake(): void {
    this.work.wake();
  }

  /** Makes the callback unless it is being made, or too many are (the worker finds it due again). */
  private begin(push: DevicePush, dueOnly: boolean): void {
    const { pushId, appId } = push;
    if (this.inFlight.has(pushId) || this.inFlight.size >= MAX_IN_FLIGHT) return;
    if ([...this.inFlight.values()].filter((app) => app === appId).length >= MAX_IN_FLIGHT_PER_APP) return;
    this.inFlight.set(pushId, appId);
    this.attempt(push, dueOnly)
      .then((result) => {
        if (result?.events.length) this.work.wake();
      })
      .catch((error: unknown) => this.deps.log.error({ err: error, appId, pushId }, 'a callback to an app failed; it is tried again'))
      .finally(() => this.inFlight.delete(pushId));
  }

  private async attempt(push: DevicePush, dueOnly: boolean) {
    if (push.message.kind !== 'topvdn') return undefined;
    const streamName = deliveryStreamName(push.pushId, APP_CALLBACK_TARGET);
    const terms = deliveryTerms(push, APP_CALLBACK_TARGET);
    const context = { appId: push.appId, actor: 'herald:callbacks' };
    const url = await this.deps.urls.urlOf(push.appId);
    // Nowhere to deliver it: ended now rather than looked at again until it expires.
    if (!url) return handleCommand(this.deps.store, deliveryAggregate, streamName, { type: 'DropDelivery', terms, reason: 'no_callback_url', now: this.deps.clock().toISOString() }, context);
    const loaded = await loadState(this.deps.store, deliveryAggregate, streamName);
    const command: RecordAttempt = { type: 'RecordAttempt', terms, dueOnly, now: this.deps.clock().toISOString() };
    if (deliveryDecider.decide(command, loaded.state).length === 0) return undefined;
    const { message } = push;
    const status = await this.deps.post(url, JSON.stringify({ request_id: push.pushId, from: message.from, msg: message.msg, flag: message.flag })).catch((error: unknown) => {
      this.deps.log.warn({ appId: push.appId, pushId: push.pushId, error: (error as Error).message }, 'callback: the app did not answer');
      return 0;
    });
    const attempted = await handleCommand(this.deps.store, deliveryAggregate, streamName, command, context, loaded);
    if (status < 200 || status >= 300) {
      if (status !== 0) this.deps.log.warn({ appId: push.appId, pushId: push.pushId, status }, 'callback: the app answered with an error');
      return attempted;
    }
    if (!push.needsConfirm) return attempted;
    return handleCommand(this.deps.store, deliveryAggregate, streamName, { type: 'ConfirmDelivery', terms, now: this.deps.clock().toISOString() }, context);
  }
}
