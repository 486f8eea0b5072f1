import http from 'node:http';
import https from 'node:https';
import { isIP } from 'node:net';
import { appStreamName } from '../../domain/app/app';
import {
  APP_CALLBACK_TARGET,
  deliveryDecider,
  deliveryStreamName,
  deliveryTerms,
  type RecordAttempt,
} from '../../domain/device/delivery';
import { topvdnRequestId } from '../../domain/device/push';
import type { Bus } from '../bus/bus';
import { APP_CALLBACKS_TOPIC } from '../bus/topics';
import { appAggregate, deliveryAggregate } from '../command/aggregates';
import { handleCommand, loadState } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import type { Clock } from '../runtime/clock';
import { DueWork, isStopping } from '../runtime/dueWork';
import type { Logger } from '../runtime/logger';
import { isPublicAddress, publicLookup } from '../runtime/publicAddress';
import type { DeliveryQueries, DevicePush, OpenDelivery } from './deviceQueries';

/**
 * topvdn's `callback: 1` (shared/seeds/002_66d9dfe67c8bed29.txt): the message also goes to the app's
 * server, at the URL the app set (PUT /v2/message/callback, docs/api/topvdn.md). It is a delivery like
 * a device's, to the target APP_CALLBACK_TARGET: each POST is an attempt, and a 2xx answer is the
 * confirmation. flag 2 retries at the device schedule (0, 1, 3, 6, 11 s) until a 2xx and is dropped
 * at 16 s; flag 3 is one POST, whatever the answer. An app without a URL gets no attempt: the
 * delivery is dropped when its push expires.
 *
 * POST body: `{"request_id", "from", "msg", "flag"}` as JSON; redirects are not followed; an app that
 * does not answer within 5 s (CALLBACK_TIMEOUT_MS) fails that attempt. Attempts run side by side
 * (src/runtime/dueWork.ts), at most 64 at once and 8 per app, so one app's hung server holds up no other app's.
 */

/** What the sender reads of the apps read model (implemented by projections/apps.ts). */
export interface PushCallbackUrls {
  urlOf(appId: string): Promise<string | undefined>;
}

/** POSTs a JSON body until `signal` aborts; answers the HTTP status (tests may pass their own). */
export type PostJson = (url: string, body: string, signal: AbortSignal) => Promise<number>;

/** One attempt's bound. */
export const CALLBACK_TIMEOUT_MS = 5000;
const MAX_WAIT_MS = 1000;
const MAX_IN_FLIGHT_PER_APP = 8;

/**
 * POSTs with node's own client: no redirects followed, aborted with its signal, and — unless private networks are
 * allowed — no connection to a loopback, private, link-local or otherwise non-public address, checked on
 * the addresses the connection actually uses (so a name that resolves differently later cannot slip by).
 */
export function postJson(options: { readonly privateNetworks: 'allow' | 'refuse' }): PostJson {
  const guard = options.privateNetworks === 'refuse';
  return (url, body, signal) =>
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
          signal,
          ...(guard && { lookup: publicLookup }),
        },
        (response) => {
          response.resume();
          resolve(response.statusCode ?? 0);
        },
      );
      request.on('error', reject);
      request.end(body);
    });
}

/** A callback to make: a scheduled one (`dueOnly`: made only when its attempt is due), or one arriving live. */
interface Callback {
  readonly push: DevicePush;
  readonly dueOnly: boolean;
}

export class AppCallbacks {
  readonly name = 'app callbacks';
  /** Each callback is made by one attempt at a time; a push arriving live is offered to it at once. */
  private readonly work: DueWork<Callback>;
  private unsubscribe: () => void = () => undefined;

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
    this.work = new DueWork<Callback>({
      clock: deps.clock,
      log: deps.log,
      doing: 'a callback to an app',
      maxWaitMs: MAX_WAIT_MS,
      attemptTimeoutMs: CALLBACK_TIMEOUT_MS,
      due: async (now, limit) =>
        (await deps.deliveries.dueCallbacks(now, limit)).map((delivery: OpenDelivery) => ({
          push: delivery.push,
          dueOnly: true,
        })),
      nextDueAt: () => deps.deliveries.nextDue([APP_CALLBACK_TARGET]),
      idOf: (callback) => callback.push.pushId,
      keyOf: (callback) => callback.push.appId,
      // Apps' servers are many: 8 apps with hung servers still leave room for the others.
      maxInFlightPerKey: MAX_IN_FLIGHT_PER_APP,
      perform: (callback, _now, signal) => this.attempt(callback.push, callback.dueOnly, signal),
      readYourWrites: deps.readYourWrites,
    });
  }

  /** Sets (or, with null, removes) where the app receives callbacks. */
  async setUrl(appId: string, url: string | null, now: Date): Promise<string | null> {
    const result = await handleCommand(
      this.deps.store,
      appAggregate,
      appStreamName(appId),
      { type: 'SetPushCallback', appId, url, now: now.toISOString() },
      { appId, actor: `app:${appId}` },
    );
    await this.deps.appsShow(result.position);
    return result.state.status === 'registered' ? result.state.pushCallbackUrl : null;
  }

  /** Where the app receives callbacks, if it set a URL. */
  async urlOf(appId: string): Promise<string | null> {
    return (await this.deps.urls.urlOf(appId)) ?? null;
  }

  start(): void {
    this.unsubscribe = this.deps.bus.subscribe(APP_CALLBACKS_TOPIC, (publication) => {
      if (publication.type === 'push') this.work.offer({ push: publication.push, dueOnly: false });
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

  private async attempt(push: DevicePush, dueOnly: boolean, signal: AbortSignal) {
    if (push.message.kind !== 'topvdn') return undefined;
    const streamName = deliveryStreamName(push.pushId, APP_CALLBACK_TARGET);
    const terms = deliveryTerms(push, APP_CALLBACK_TARGET);
    const context = { appId: push.appId, actor: 'herald:callbacks' };
    const url = await this.deps.urls.urlOf(push.appId);
    // Nowhere to deliver it: ended now rather than looked at again until it expires.
    if (!url)
      return handleCommand(
        this.deps.store,
        deliveryAggregate,
        streamName,
        { type: 'DropDelivery', terms, reason: 'no_callback_url', now: this.deps.clock().toISOString() },
        context,
      );
    const loaded = await loadState(this.deps.store, deliveryAggregate, streamName);
    const command: RecordAttempt = { type: 'RecordAttempt', terms, dueOnly, now: this.deps.clock().toISOString() };
    if (deliveryDecider.decide(command, loaded.state).length === 0) return undefined;
    const { message } = push;
    const status = await this.deps
      .post(
        url,
        JSON.stringify({
          request_id: topvdnRequestId(push.pushId),
          from: message.from,
          msg: message.msg,
          flag: message.flag,
        }),
        signal,
      )
      .catch((error: unknown) => {
        if (isStopping(signal)) throw error;
        const reason = signal.aborted ? `no answer within ${CALLBACK_TIMEOUT_MS} ms` : (error as Error).message;
        this.deps.log.warn(
          { appId: push.appId, pushId: push.pushId, error: reason },
          'callback: the app did not answer',
        );
        return 0;
      });
    const attempted = await handleCommand(this.deps.store, deliveryAggregate, streamName, command, context, loaded);
    if (status < 200 || status >= 300) {
      if (status !== 0)
        this.deps.log.warn(
          { appId: push.appId, pushId: push.pushId, status },
          'callback: the app answered with an error',
        );
      return attempted;
    }
    if (!push.needsConfirm) return attempted;
    return handleCommand(
      this.deps.store,
      deliveryAggregate,
      streamName,
      { type: 'ConfirmDelivery', terms, now: this.deps.clock().toISOString() },
      context,
    );
  }
}
