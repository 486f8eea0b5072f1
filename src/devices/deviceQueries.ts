import type { DeliveryStatus } from '../../domain/device/delivery';
import type { Platform } from '../../domain/device/device';
import type { PushRequestedData } from '../../domain/device/push';

/** What src/devices reads of the devices read model (implemented by projections/devices.ts). */

export interface DeviceView {
  readonly deviceId: string;
  readonly appId: string;
  readonly clientId: number;
  readonly alias: string;
  readonly platform: Platform;
  readonly mobile: string | null;
  readonly tags: readonly string[];
  /** Counts registrations after an unregister; device tokens carry it. */
  readonly registration: number;
  readonly active: boolean;
  readonly registeredAt: Date;
  readonly updatedAt: Date;
}

/** A push as a device receives it: its content and the terms of its deliveries (not its audience). */
export type DevicePush = Omit<PushRequestedData, 'audience' | 'platform'>;

/** A delivery not yet ended, with what a device connection needs to make an attempt. */
export interface OpenDelivery {
  readonly push: DevicePush;
  readonly deviceId: string;
  readonly status: DeliveryStatus;
  readonly attempts: number;
  /** Revision of the delivery's stream as the read model last applied it (-1: no event yet). */
  readonly revision: bigint;
  /** Position of the push: the order deliveries reach a device in. */
  readonly pushPosition: bigint;
}

export interface DeviceFilter {
  readonly alias?: string;
  readonly tag?: string;
  readonly platform?: Platform;
  /** Devices after this id (keyset paging), in id order. */
  readonly afterDeviceId?: string;
  readonly first: number;
}

export interface DeviceQueries {
  byId(deviceId: string): Promise<DeviceView | undefined>;
  byNativeToken(appId: string, nativeToken: string): Promise<DeviceView | undefined>;
  byClientId(clientId: number): Promise<DeviceView | undefined>;
  /** The app's registered devices. */
  list(appId: string, filter: DeviceFilter): Promise<DeviceView[]>;
}

export interface DeliveryQueries {
  /**
   * The device's open deliveries of pushes made since its current registration, oldest push first,
   * after `afterPushPosition`: what it receives on connecting. Expired ones are left out.
   */
  backlog(deviceId: string, now: Date, afterPushPosition: bigint, limit: number): Promise<OpenDelivery[]>;
  /** Open deliveries to these devices whose next attempt is due at `now` (of pushes since their current registration). */
  dueAttempts(deviceIds: readonly string[], now: Date, limit: number): Promise<OpenDelivery[]>;
  /** Open deliveries to apps' callback URLs whose next attempt is due at `now`. */
  dueCallbacks(now: Date, limit: number): Promise<OpenDelivery[]>;
  /** Open deliveries whose push has expired at `now`: to be closed (dropped or expired). */
  expired(now: Date, limit: number): Promise<OpenDelivery[]>;
  /** The earliest time something above falls due for these devices, if any. */
  nextDue(deviceIds: readonly string[]): Promise<Date | undefined>;
  /** One delivery to a device, open or not, of a push made since the device's current registration. */
  byKey(pushId: string, deviceId: string): Promise<OpenDelivery | undefined>;
  /** A push's deliveries by status (for the sender's view, tests and analysts). */
  statusOf(appId: string, pushId: string): Promise<PushStatus | undefined>;
  /** The mobile numbers of the push's addressed devices among `deviceIds` (for SMS). */
  mobiles(pushId: string, deviceIds: readonly string[]): Promise<Array<{ deviceId: string; mobile: string }>>;
  /** The devices a push was expanded to, in device id order, after `afterDeviceId`. */
  addressed(pushId: string, afterDeviceId: string | undefined, limit: number): Promise<string[]>;
}

export interface PushStatus {
  readonly pushId: string;
  readonly appId: string;
  readonly requestedAt: Date;
  readonly expiresAt: Date;
  /** Deliveries to devices, by status. */
  readonly deliveries: Readonly<Record<DeliveryStatus, number>>;
  /** The delivery to the app's callback URL (topvdn `callback: 1`), if the push has one. */
  readonly callback: DeliveryStatus | null;
}
