import type { Owner } from '../datahub/datahub';
import type { DevicePublication } from '../devices/devicePublication';
import type { DeliveredMessage } from '../messaging/inboxQueries';
import type { NodeMessage } from '../rtio/nodeMessage';
import { topic, type Topic } from './bus';

/**
 * Every topic herald publishes on, with what it carries: publishers (the projections, the RTIO nodes)
 * and subscribers (GraphQL subscriptions, the socket gateways, the app callbacks) take their topics from
 * here, and the compiler checks that both sides agree. A topic's name is what crosses Redis; payloads
 * cross it as JSON, so they hold no bigint, Date or class instance.
 */

/** What a recipient is pushed when a message reaches their Koala inbox (projections/koalaInbox.ts). */
export const inboxTopic = (appId: string, userId: string) => topic<DeliveredMessage>(`inbox:${appId}:${userId}`);

/** One device: its new deliveries, and its end (unregistered) (projections/devices.ts). */
export const deviceTopic = (appId: string, deviceId: string) => topic<DevicePublication>(`device:${appId}:${deviceId}`);

/** New deliveries to apps' callback URLs (topvdn `callback: 1`). */
export const APP_CALLBACKS_TOPIC: Topic<DevicePublication> = topic('app-callbacks');

/** A datahub user's unread counts changed (projections/datahubNotifications.ts): subscribers read them again. */
export const notificationStatsTopic = (appId: string, userId: string) =>
  topic<Owner>(`datahub-stats:${appId}:${userId}`);

/** A datahub broadcast reached every user of an app: their subscribers read their counts again. */
export const broadcastStatsTopic = (appId: string) => topic<{ readonly appId: string }>(`datahub-broadcast:${appId}`);

/** What other nodes send this one about RTIO device calls (src/rtio/deviceCalls.ts). */
export const nodeTopic = (nodeId: string) => topic<NodeMessage>(`rtio:node:${nodeId}`);
