import type { DevicePush } from './deviceQueries';

/**
 * What the devices projection publishes on a device's topic (deviceTopic). A push's object is the same
 * for every device it reaches, so what is made of it (its wire frames) can be kept per object and made once.
 * It crosses Redis as JSON, so the push's position is a decimal string: JSON has no bigint (as one, it
 * made every publication with a push fail to encode, and pushes reached other nodes only by retries).
 */
export type DevicePublication =
  | { readonly type: 'push'; readonly push: DevicePush; readonly pushPosition: string }
  | { readonly type: 'unregistered' };
