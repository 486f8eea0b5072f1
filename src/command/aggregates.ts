import { appDecider, AppEvent, type AppCommand, type AppState } from '../../domain/app/app';
import { deliveryDecider, DeliveryEvent, type DeliveryCommand, type DeliveryState } from '../../domain/device/delivery';
import { deviceDecider, DeviceStreamEvent, type DeviceCommand, type DeviceState } from '../../domain/device/device';
import {
  platformPushDecider,
  PlatformPushEvent,
  type PlatformPushCommand,
  type PlatformPushState,
} from '../../domain/device/platformPush';
import { pushDecider, PushEvent, type PushCommand, type PushState } from '../../domain/device/push';
import { emailDecider, EmailEvent, type EmailCommand, type EmailState } from '../../domain/email/email';
import {
  broadcastReadDecider,
  BroadcastReadEvent,
  inboxDecider,
  InboxEvent,
  type InboxCommand,
  type InboxState,
  type MarkBroadcastRead,
} from '../../domain/inbox/inbox';
import { messageDecider, MessageEvent, type MessageCommand, type MessageState } from '../../domain/message/message';
import {
  notificationDecider,
  NotificationEvent,
  type NotificationCommand,
  type NotificationState,
} from '../../domain/notification/notification';
import {
  rtioCallDecider,
  RtioCallEvent,
  rtioDeviceDecider,
  RtioDeviceEvent,
  rtioNonceDecider,
  RtioNonceEvent,
  type RtioNonceCommand,
  type RtioNonceState,
  rtioReportDecider,
  RtioReportEvent,
  type RtioReportCommand,
  type RtioReportState,
  type RtioCallCommand,
  type RtioCallState,
  type RtioDeviceCommand,
  type RtioDeviceState,
} from '../../domain/rtio/rtio';
import { ticketDecider, TicketEvent, type TicketCommand, type TicketState } from '../../domain/ticket/ticket';
import {
  itemOwnerDecider,
  ItemOwnerEvent,
  type ItemOwnerCommand,
  type ItemOwnerState,
} from '../../domain/whitelist/itemOwner';
import {
  whitelistDecider,
  WhitelistEvent,
  type WhitelistCommand,
  type WhitelistState,
} from '../../domain/whitelist/whitelistApplication';
import type { Aggregate } from './commandHandler';

/**
 * Each aggregate's decider with the codec its stored events are decoded by, and, for a stream that grows
 * with use, the window of it a decision needs (docs/architecture.md, "Stream bounds"; each window is
 * checked on generated histories by test/unit/streamWindows.unit.spec.ts).
 */
export const appAggregate: Aggregate<AppCommand, AppEvent, AppState> = { decider: appDecider, eventCodec: AppEvent };
export const ticketAggregate: Aggregate<TicketCommand, TicketEvent, TicketState> = {
  decider: ticketDecider,
  eventCodec: TicketEvent,
};
export const messageAggregate: Aggregate<MessageCommand, MessageEvent, MessageState> = {
  decider: messageDecider,
  eventCodec: MessageEvent,
};
export const notificationAggregate: Aggregate<NotificationCommand, NotificationEvent, NotificationState> = {
  decider: notificationDecider,
  eventCodec: NotificationEvent,
};
/** A clear needs only the clears appended since the request arrived: the inbox's revision, not its events. */
export const inboxAggregate: Aggregate<InboxCommand, InboxEvent, InboxState> = {
  decider: inboxDecider,
  eventCodec: InboxEvent,
  window: { last: 0 },
};
export const broadcastReadAggregate: Aggregate<MarkBroadcastRead, BroadcastReadEvent, { readonly read: boolean }> = {
  decider: broadcastReadDecider,
  eventCodec: BroadcastReadEvent,
};
export const whitelistAggregate: Aggregate<WhitelistCommand, WhitelistEvent, WhitelistState> = {
  decider: whitelistDecider,
  eventCodec: WhitelistEvent,
};
export const itemOwnerAggregate: Aggregate<ItemOwnerCommand, ItemOwnerEvent, ItemOwnerState> = {
  decider: itemOwnerDecider,
  eventCodec: ItemOwnerEvent,
  // Its owner is its last event's: registered again and removed as often as the app likes.
  window: { last: 1 },
};
export const emailAggregate: Aggregate<EmailCommand, EmailEvent, EmailState> = {
  decider: emailDecider,
  eventCodec: EmailEvent,
};
export const deviceAggregate: Aggregate<DeviceCommand, DeviceStreamEvent, DeviceState> = {
  decider: deviceDecider,
  eventCodec: DeviceStreamEvent,
  // Registered and unregistered at every login and logout. After the last registration come at most a
  // token revocation (only of a registered device, once) and an unregister: the last three hold the state.
  window: { last: 3 },
};
export const platformPushAggregate: Aggregate<PlatformPushCommand, PlatformPushEvent, PlatformPushState> = {
  decider: platformPushDecider,
  eventCodec: PlatformPushEvent,
};
export const pushAggregate: Aggregate<PushCommand, PushEvent, PushState> = {
  decider: pushDecider,
  eventCodec: PushEvent,
};
export const deliveryAggregate: Aggregate<DeliveryCommand, DeliveryEvent, DeliveryState> = {
  decider: deliveryDecider,
  eventCodec: DeliveryEvent,
  // A retry per reconnect of the device until the push expires: the last attempt, and the end after it.
  window: { last: 2 },
};
export const rtioDeviceAggregate: Aggregate<RtioDeviceCommand, RtioDeviceEvent, RtioDeviceState> = {
  decider: rtioDeviceDecider,
  eventCodec: RtioDeviceEvent,
};
export const rtioCallAggregate: Aggregate<RtioCallCommand, RtioCallEvent, RtioCallState> = {
  decider: rtioCallDecider,
  eventCodec: RtioCallEvent,
};
export const rtioReportAggregate: Aggregate<RtioReportCommand, RtioReportEvent, RtioReportState> = {
  decider: rtioReportDecider,
  eventCodec: RtioReportEvent,
};
export const rtioNonceAggregate: Aggregate<RtioNonceCommand, RtioNonceEvent, RtioNonceState> = {
  decider: rtioNonceDecider,
  eventCodec: RtioNonceEvent,
};
