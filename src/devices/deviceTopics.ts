import type { DevicePush } from './deviceQueries';

/** The bus topic of one device: its new deliveries, and its end (unregistered). */
export const deviceTopic = (appId: string, deviceId: string) => `device:${appId}:${deviceId}`;

/** New deliveries to apps' callback URLs (topvdn `callback: 1`). */
export const APP_CALLBACKS_TOPIC = 'app-callbacks';

/**
 * What the devices projection publishes on a device's topic. A push's object is the same for every
 * device it reaches, so what is made of it (its wire frames) can be kept per object and made once.
 * It crosses Redis as JSON, so the push's position is a decimal string: JSON has no bigint (as one, it
 * made every publication with a push fail to encode, and pushes reached other nodes only by retries).
 */
export type DevicePublication =
  | { readonly type: 'push'; readonly push: DevicePush; readonly pushPosition: string }
  | { readonly type: 'unregistered' };
