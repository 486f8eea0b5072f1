import type { DevicePush } from './deviceQueries';

/** The bus topic of one device: its new deliveries, and its end (unregistered). */
export const deviceTopic = (appId: string, deviceId: string) => `device:${appId}:${deviceId}`;

/** New deliveries to apps' callback URLs (topvdn `callback: 1`). */
export const APP_CALLBACKS_TOPIC = 'app-callbacks';

/**
 * What the devices projection publishes on a device's topic. A push's object is the same for every
 * device it reaches, so what is made of it (its wire frames) can be kept per object and made once.
 */
export type DevicePublication =
  | { readonly type: 'push'; readonly push: DevicePush; readonly pushPosition: bigint }
  | { readonly type: 'unregistered' };
