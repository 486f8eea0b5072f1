import { APP_CALLBACK_TARGET, deliveryStreamName } from '../../domain/device/delivery';
import { pushIdOfSentId } from '../../domain/device/push';
import { storedEvents } from './storedEvents';

/** A push's deliveries to devices by status, as their events record them. */
export interface RecordedDeliveries {
  readonly delivered: number;
  readonly confirmed: number;
  readonly dropped: number;
  readonly expired: number;
}

/** A delivery's status as its last recorded event says it (the statuses of GraphQL `DeliveryCounts`). */
const STATUS_OF_LAST_EVENT: Readonly<Record<string, keyof RecordedDeliveries>> = {
  MessageDelivered: 'delivered',
  DeliveryRetried: 'delivered',
  DeliveryConfirmed: 'confirmed',
  DeliveryDropped: 'dropped',
  DeliveryExpired: 'expired',
};

/**
 * A push's deliveries to devices by status, read from their streams through GraphQL `events` by an admin
 * of the push's app (`requestId`: ONE-PUSH's UUID or topvdn's 32 hex digits). ONE-PUSH's /msgpush/send has
 * no status query, so a test reads what was recorded. A delivery not yet attempted (`pending`) has no event
 * and is not counted; the delivery to the app's callback URL is not one to a device.
 */
export async function pushDeliveries(
  baseUrl: string,
  adminTicket: string,
  requestId: string,
): Promise<RecordedDeliveries> {
  const pushId = pushIdOfSentId(requestId);
  const callback = deliveryStreamName(pushId, APP_CALLBACK_TARGET);
  const statusOfStream = new Map<string, keyof RecordedDeliveries>();
  for (const event of await storedEvents(baseUrl, adminTicket, { stream: deliveryStreamName(pushId, '') })) {
    const status = STATUS_OF_LAST_EVENT[event.type];
    if (status && event.stream !== callback) statusOfStream.set(event.stream, status);
  }
  const counts = { delivered: 0, confirmed: 0, dropped: 0, expired: 0 };
  for (const status of statusOfStream.values()) counts[status]++;
  return counts;
}
