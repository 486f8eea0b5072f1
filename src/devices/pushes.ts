import { randomUUID } from 'node:crypto';
import { pushStreamName, PUSH_LIMITS, type RequestOnePush, type RequestTopvdnPush } from '../../domain/device/push';
import { pushAggregate } from '../command/aggregates';
import { handleCommand, newStream } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import type { SendAllowance } from '../messaging/messaging';
import type { DeliveryQueries, PushStatus } from './deviceQueries';
import type { Presence } from './presence';

/**
 * Pushing to devices: the one implementation behind ONE-PUSH's /msgpush/send, topvdn's client and
 * server push, and GraphQL's pushToDevices. A push is recorded (PushRequested), and answered once the
 * devices read model has expanded it to its deliveries: the caller's next query sees them, and the
 * connected devices are being written to.
 */

export type OnePushInput = Omit<RequestOnePush, 'type' | 'pushId' | 'appId' | 'now'>;
export type TopvdnPushInput = Omit<RequestTopvdnPush, 'type' | 'pushId' | 'appId' | 'now'>;

/** Who sends, when it is a user or a device (their sends count against their rate); an app's own server is not limited. */
export interface LimitedSender {
  readonly appId: string;
  readonly userId: string;
}

export class Pushes {
  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly deliveries: DeliveryQueries;
      readonly presence: Presence;
      readonly sendAllowance: SendAllowance;
      /** Resolves once the devices read model shows the effect of a command at this position. */
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
    },
  ) {}

  async onePush(appId: string, input: OnePushInput, now: Date, sender?: LimitedSender): Promise<{ pushId: string }> {
    if (sender) this.deps.sendAllowance.take(sender, now);
    const pushId = await this.request({ ...input, type: 'RequestOnePush', pushId: randomUUID(), appId, now: now.toISOString() });
    if (input.smsMessage) await this.requestSms(pushId, appId, now);
    return { pushId };
  }

  async topvdnPush(appId: string, input: TopvdnPushInput, now: Date, sender?: LimitedSender): Promise<{ pushId: string }> {
    if (sender) this.deps.sendAllowance.take(sender, now);
    return { pushId: await this.request({ ...input, type: 'RequestTopvdnPush', pushId: randomUUID(), appId, now: now.toISOString() }) };
  }

  status(appId: string, pushId: string): Promise<PushStatus | undefined> {
    return this.deps.deliveries.statusOf(appId, pushId);
  }

  private async request(command: RequestOnePush | RequestTopvdnPush): Promise<string> {
    const result = await handleCommand(this.deps.store, pushAggregate, pushStreamName(command.pushId), command, { appId: command.appId, actor: `app:${command.appId}` }, newStream(pushAggregate));
    await this.deps.readYourWrites(result.position);
    return command.pushId;
  }

  /** SmsRequested for the addressed devices with a mobile number that are offline now, a page at a time. */
  private async requestSms(pushId: string, appId: string, now: Date): Promise<void> {
    let after: string | undefined;
    for (;;) {
      const addressed = await this.deps.deliveries.addressed(pushId, after, PUSH_LIMITS.smsRecipients);
      if (addressed.length === 0) return;
      after = addressed[addressed.length - 1];
      const offline = addressed.filter((deviceId) => !this.deps.presence.isOnline(deviceId));
      const recipients = await this.deps.deliveries.mobiles(pushId, offline);
      if (recipients.length > 0) {
        await handleCommand(this.deps.store, pushAggregate, pushStreamName(pushId), { type: 'RecordSmsRequests', recipients, now: now.toISOString() }, { appId, actor: `app:${appId}` });
      }
      if (addressed.length < PUSH_LIMITS.smsRecipients) return;
    }
  }
}
