import { createHmac, timingSafeEqual } from 'node:crypto';
import { DomainError } from '../../domain/decider';
import { DEVICE_LIMITS, deviceStreamName } from '../../domain/device/device';
import { checkWebPushSubscription } from '../../domain/device/webPushSubscription';
import { characterCount, isStorableText } from '../../domain/text';
import { deviceAggregate } from '../command/aggregates';
import { handleCommand, newStream } from '../command/commandHandler';
import type { EventStore } from '../eventStore/eventStore';
import { endpointRefusal, isP256PublicKey, type WebPushEndpointPolicy } from '../platformPush/webPush';
import type { DeviceFilter, DeviceQueries, DeviceView } from './deviceQueries';

/**
 * Registering and unregistering devices, and their tokens: the one implementation behind ONE-PUSH's
 * /msgpush/register and GraphQL's registerDevice.
 *
 * A device's id is derived from its app and native token with a key only herald holds: registering
 * the same pair again (also twice at once, on two nodes) lands on the same stream, and nobody can
 * work out another device's id. A device already in the read model keeps the id it has.
 *
 * A device token (topvdn's `X-Client-Token` and `access_tokens`) is `<number>_<registration>_<issued
 * at>_<signature>`, the shape of topvdn's own. It is valid while the registration it names lasts.
 */

/** Device numbers (the first part of a device token), never handed out twice (implemented by projections/deviceNumbers.ts). */
export interface DeviceNumbers {
  next(): Promise<number>;
}

export interface RegisterDeviceInput {
  readonly appId: string;
  readonly alias: string;
  readonly platform: string;
  readonly nativeToken: string;
  readonly mobile?: string | null;
  readonly tags?: readonly string[];
  /**
   * The alias a device already registered under this native token must have for this registration to
   * take it over (a signed-in user re-registering their own device). Unset: any (ONE-PUSH's open route).
   */
  readonly ownedBy?: string;
}

export interface RegisteredDevice {
  readonly device: DeviceView;
  readonly token: string;
}

const TOKEN = /^([1-9][0-9]{0,15})_([1-9][0-9]{0,8})_([0-9]{1,12})_([0-9a-f]{32})$/;

/** Whether a credential has a device token's form (a ticket has another: `<payload>.<signature>`). */
export const isDeviceTokenForm = (credential: string): boolean => TOKEN.test(credential);

export class Devices {
  private readonly idKey: Buffer;
  private readonly tokenKey: Buffer;

  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly numbers: DeviceNumbers;
      readonly queries: DeviceQueries;
      /** The ticket keys (device ids and tokens are signed with keys derived from them) and the apps. */
      readonly keys: { derivedKey(purpose: string): Buffer; isRegisteredApp(appId: string): Promise<boolean> };
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
      /** Where a browser's push endpoint may be (docs/platform-push.md, Web Push): public https unless configured. */
      readonly webPushEndpoint?: WebPushEndpointPolicy;
    },
  ) {
    this.idKey = deps.keys.derivedKey('device-id');
    this.tokenKey = deps.keys.derivedKey('device-token');
  }

  /** Registers the device (or updates it); answers once it can connect and be pushed to. */
  async register(input: RegisterDeviceInput, now: Date): Promise<RegisteredDevice> {
    if (!(await this.deps.keys.isRegisteredApp(input.appId))) throw new DomainError('invalid', 'appId: no such app');
    // Looked up only when it can be one (text PostgreSQL can compare); anything else the decider refuses.
    const lookup =
      typeof input.nativeToken === 'string' &&
      characterCount(input.nativeToken) <= DEVICE_LIMITS.nativeTokenLength &&
      isStorableText(input.nativeToken);
    const known = lookup ? await this.deps.queries.byNativeToken(input.appId, input.nativeToken) : undefined;
    if (known?.active && input.ownedBy !== undefined && known.alias !== input.ownedBy)
      throw new DomainError('forbidden', 'this native token is registered to another alias');
    const deviceId = known?.deviceId ?? this.deviceIdOf(input.appId, input.nativeToken);
    const clientId = known?.clientId ?? (await this.deps.numbers.next());
    const result = await handleCommand(
      this.deps.store,
      deviceAggregate,
      deviceStreamName(deviceId),
      {
        type: 'RegisterDevice',
        deviceId,
        appId: input.appId,
        clientId,
        alias: input.alias,
        platform: input.platform,
        nativeToken: input.nativeToken,
        mobile: input.mobile ?? null,
        tags: input.tags ?? [],
        // A user registering their own device (GraphQL, with their ticket): keeps their browser for Koala.
        ...(input.ownedBy !== undefined && { byUser: input.ownedBy }),
        now: now.toISOString(),
      },
      { appId: input.appId, actor: `device:${deviceId}` },
      known ? undefined : newStream(deviceAggregate),
    );
    await this.deps.readYourWrites(result.position);
    const device = await this.deps.queries.byId(deviceId);
    if (!device) throw new Error(`device ${deviceId} is not in the read model after its registration`);
    return { device, token: this.tokenOf(device, now) };
  }

  /** Unregisters the device: it receives nothing more, and its connections are closed. */
  async unregister(deviceId: string, now: Date): Promise<DeviceView> {
    const device = await this.deps.queries.byId(deviceId);
    if (!device) throw new DomainError('not_found', 'no such device');
    const result = await handleCommand(
      this.deps.store,
      deviceAggregate,
      deviceStreamName(deviceId),
      { type: 'UnregisterDevice', now: now.toISOString() },
      { appId: device.appId, actor: `device:${deviceId}` },
    );
    await this.deps.readYourWrites(result.position);
    return { ...device, active: false };
  }

  /**
   * Sets a WEB device's browser push subscription (`PushSubscription.toJSON()`), or drops it (null). The
   * endpoint is a URL the leader will POST to: refused unless https on a public host (or an origin the
   * deployment allows), the keys checked as RFC 8291 needs them. Bad input is an `invalid` DomainError
   * naming the field, and appends nothing. Answers once the push trigger can see it. `caller`: who acts
   * (the audit's actor) and, when their permission rested on the device's alias, that alias (re-checked by
   * the decider with the registration `device` was read at).
   */
  async subscribeWebPush(
    device: DeviceView,
    input: unknown,
    now: Date,
    caller: { readonly actor: string; readonly alias?: string },
  ): Promise<void> {
    let subscription = null;
    if (input !== null) {
      subscription = checkWebPushSubscription(input);
      const refusal = endpointRefusal(subscription.endpoint, this.deps.webPushEndpoint ?? { allowedOrigins: [] });
      if (refusal) throw new DomainError('invalid', `subscription.endpoint: ${refusal}`);
      if (!isP256PublicKey(subscription.p256dh))
        throw new DomainError('invalid', 'subscription.keys: p256dh is not a point of P-256');
    }
    const result = await handleCommand(
      this.deps.store,
      deviceAggregate,
      deviceStreamName(device.deviceId),
      {
        type: 'SubscribeWebPush',
        subscription,
        registration: device.registration,
        ...(caller.alias !== undefined && { alias: caller.alias }),
        now: now.toISOString(),
      },
      { appId: device.appId, actor: caller.actor },
    );
    await this.deps.readYourWrites(result.position);
  }

  byId(deviceId: string): Promise<DeviceView | undefined> {
    return this.deps.queries.byId(deviceId);
  }

  list(appId: string, filter: DeviceFilter): Promise<DeviceView[]> {
    return this.deps.queries.list(appId, filter);
  }

  /** A token for the device's current registration. */
  tokenOf(device: DeviceView, now: Date): string {
    const body = `${device.clientId}_${device.registration}_${Math.floor(now.getTime() / 1000)}`;
    return `${body}_${this.sign(body)}`;
  }

  /** The registered device a token names, or undefined (malformed, forged, or its registration ended). */
  async authenticate(token: string): Promise<DeviceView | undefined> {
    const match = typeof token === 'string' ? TOKEN.exec(token) : null;
    if (!match) return undefined;
    const [, clientId, registration, issuedAt, signature] = match;
    const expected = Buffer.from(this.sign(`${clientId}_${registration}_${issuedAt}`));
    if (!timingSafeEqual(expected, Buffer.from(signature!))) return undefined;
    const device = await this.deps.queries.byClientId(Number(clientId));
    return device?.active && device.registration === Number(registration) ? device : undefined;
  }

  private deviceIdOf(appId: string, nativeToken: string): string {
    return createHmac('sha256', this.idKey).update(`${appId}\u0000${nativeToken}`).digest('hex').slice(0, 32);
  }

  private sign(body: string): string {
    return createHmac('sha256', this.tokenKey).update(body).digest('hex').slice(0, 32);
  }
}
