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

export const postJson: PostJson = async (url, body) => {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body,
    redirect: 'manual',
    signal: AbortSignal.timeout(TIMEOUT_MS),
  });
  await response.body?.cancel();
  return response.status;
};

export class AppCallbacks {
  private readonly work: DueWork<OpenDelivery>;
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
      readonly post?: PostJson;
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
      perform: (delivery) => this.attempt(delivery.push, true),
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
      if (publication.type === 'push') void this.attempt(publication.push, false).catch((error: unknown) => this.deps.log.error({ err: error }, 'a callback to an app failed; it is retried'));
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

  private async attempt(push: DevicePush, dueOnly: boolean) {
    if (push.message.kind !== 'topvdn') return undefined;
    const url = await this.deps.urls.urlOf(push.appId);
    if (!url) return undefined;
    const streamName = deliveryStreamName(push.pushId, APP_CALLBACK_TARGET);
    const terms = deliveryTerms(push, APP_CALLBACK_TARGET);
    const loaded = await loadState(this.deps.store, deliveryAggregate, streamName);
    const command: RecordAttempt = { type: 'RecordAttempt', terms, dueOnly, now: this.deps.clock().toISOString() };
    if (deliveryDecider.decide(command, loaded.state).length === 0) return undefined;
    const { message } = push;
    const status = await (this.deps.post ?? postJson)(url, JSON.stringify({ request_id: push.pushId, from: message.from, msg: message.msg, flag: message.flag })).catch((error: unknown) => {
      this.deps.log.warn({ appId: push.appId, pushId: push.pushId, error: (error as Error).message }, 'callback: the app did not answer');
      return 0;
    });
    const context = { appId: push.appId, actor: 'herald:callbacks' };
    const attempted = await handleCommand(this.deps.store, deliveryAggregate, streamName, command, context, loaded);
    if (status < 200 || status >= 300) {
      if (status !== 0) this.deps.log.warn({ appId: push.appId, pushId: push.pushId, status }, 'callback: the app answered with an error');
      return attempted;
    }
    if (!push.needsConfirm) return attempted;
    return handleCommand(this.deps.store, deliveryAggregate, streamName, { type: 'ConfirmDelivery', terms, now: this.deps.clock().toISOString() }, context);
  }
}
