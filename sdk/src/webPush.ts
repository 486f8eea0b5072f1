import { MessageClientError, type TicketSource } from './messageClient.js';

/**
 * Web Push for a browser (herald's docs/platform-push.md, "Web Push"): while the page is closed, the
 * user's messages pushed to this browser (ONE-PUSH sends to its WEB device) arrive through the browser's
 * push service and its service worker shows them. `subscribeWebPush` asks permission, registers the
 * service worker, registers the browser as a WEB device of the ticket's user, subscribes with the app's
 * VAPID public key and gives herald the subscription.
 */
export interface WebPushOptions {
  /** herald's GraphQL endpoint (`https://host/graphql`; a `ws(s)://` URL means the same host's `http(s)://`). */
  readonly url: string;
  readonly ticket: TicketSource;
  /** The service worker's script URL (it shows the notifications: herald's /demo/webpush-sw.js is one). */
  readonly serviceWorker: string;
  /** The WEB device's native token: default, an id made once and kept in this browser's localStorage. */
  readonly nativeToken?: string;
  /** The device's alias: default, the ticket's user id. */
  readonly alias?: string;
}

export interface WebPushSubscribed {
  /** The browser's WEB device. */
  readonly deviceId: string;
  /** Where its push service takes messages for it. */
  readonly endpoint: string;
}

const NATIVE_TOKEN_KEY = 'herald.webPush.nativeToken';

// The browser's Push API as far as this file uses it (the SDK's sources also compile without the DOM library).
interface BrowserSubscription {
  readonly endpoint: string;
  readonly options: { readonly applicationServerKey: ArrayBuffer | null };
  toJSON(): unknown;
  unsubscribe(): Promise<boolean>;
}
interface BrowserPushManager {
  getSubscription(): Promise<BrowserSubscription | null>;
  subscribe(options: { userVisibleOnly: boolean; applicationServerKey: Uint8Array }): Promise<BrowserSubscription>;
}
interface Browser {
  readonly navigator?: {
    readonly serviceWorker?: {
      register(url: string): Promise<unknown>;
      readonly ready: Promise<{ readonly pushManager: BrowserPushManager }>;
    };
  };
  readonly PushManager?: unknown;
  readonly Notification?: { readonly permission: string; requestPermission(): Promise<string> };
  readonly localStorage?: { getItem(key: string): string | null; setItem(key: string, value: string): void };
  atob(text: string): string;
}
const browser = () => globalThis as unknown as Browser;

/**
 * Subscribes this browser; rejects with a MessageClientError: UNSUPPORTED (no service workers or Push
 * API), PERMISSION_DENIED, NOT_CONFIGURED (the app has no VAPID key pair), PUSH_SERVICE (the browser's
 * push service refused or could not be reached), or herald's error code (BAD_USER_INPUT, …).
 */
export async function subscribeWebPush(options: WebPushOptions): Promise<WebPushSubscribed> {
  const { navigator: nav, PushManager, Notification } = browser();
  if (!nav?.serviceWorker || PushManager === undefined || Notification === undefined)
    throw new MessageClientError('UNSUPPORTED', 'this browser has no Push API (service workers, PushManager)');
  const permission = Notification.permission === 'granted' ? 'granted' : await Notification.requestPermission();
  if (permission !== 'granted')
    throw new MessageClientError('PERMISSION_DENIED', `notifications are not allowed (${permission})`);
  await nav.serviceWorker.register(options.serviceWorker);
  const ticket = typeof options.ticket === 'function' ? await options.ticket() : options.ticket;
  const endpoint = options.url.replace(/^ws(s?):\/\//i, (_, secure: string) => (secure ? 'https://' : 'http://'));
  const ask = async <T>(query: string, variables?: Record<string, unknown>): Promise<T> => {
    const response = await fetch(endpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${ticket}` },
      body: JSON.stringify({ query, variables }),
    });
    const answer = (await response.json()) as {
      data?: T;
      errors?: Array<{ message: string; extensions?: { code?: string } }>;
    };
    const error = answer.errors?.[0];
    if (error || !answer.data)
      throw new MessageClientError(error?.extensions?.code ?? 'INTERNAL', error?.message ?? 'no answer');
    return answer.data;
  };
  const { webPushPublicKey } = await ask<{ webPushPublicKey: string | null }>('{ webPushPublicKey }');
  if (!webPushPublicKey)
    throw new MessageClientError('NOT_CONFIGURED', "the app has no VAPID key pair (its admin's setWebPushCredentials)");
  const { registerDevice } = await ask<{ registerDevice: { device: { id: string } } }>(
    'mutation($i: RegisterDeviceInput!) { registerDevice(input: $i) { device { id } } }',
    {
      i: {
        platform: 'WEB',
        nativeToken: options.nativeToken ?? browserToken(),
        ...(options.alias !== undefined && { alias: options.alias }),
      },
    },
  );
  const deviceId = registerDevice.device.id;
  const { pushManager } = await nav.serviceWorker.ready;
  const applicationServerKey = fromBase64url(webPushPublicKey);
  let subscription = await pushManager.getSubscription();
  // Subscribed with another key (the app's pair changed): its push service would refuse herald's requests.
  if (subscription && !sameKey(subscription.options.applicationServerKey, applicationServerKey)) {
    await subscription.unsubscribe();
    subscription = null;
  }
  try {
    subscription ??= await pushManager.subscribe({ userVisibleOnly: true, applicationServerKey });
  } catch (error) {
    throw new MessageClientError('PUSH_SERVICE', `the browser's push service: ${(error as Error).message}`);
  }
  await ask('mutation($d: ID, $s: WebPushSubscriptionInput!) { subscribeWebPush(deviceId: $d, subscription: $s) }', {
    d: deviceId,
    s: subscription.toJSON(),
  });
  return { deviceId, endpoint: subscription.endpoint };
}

/** This browser's own native token, made once (random, unguessable) and kept. */
function browserToken(): string {
  const storage = browser().localStorage;
  const kept = storage?.getItem(NATIVE_TOKEN_KEY);
  if (kept) return kept;
  const bytes = globalThis.crypto.getRandomValues(new Uint8Array(16));
  const made = `web-${Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('')}`;
  storage?.setItem(NATIVE_TOKEN_KEY, made);
  return made;
}

function fromBase64url(text: string): Uint8Array<ArrayBuffer> {
  const base64 = text.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (text.length % 4)) % 4);
  return Uint8Array.from(browser().atob(base64), (c) => c.charCodeAt(0));
}

function sameKey(given: ArrayBuffer | null, key: Uint8Array): boolean {
  if (!given) return false;
  const bytes = new Uint8Array(given);
  return bytes.length === key.length && bytes.every((b, i) => b === key[i]);
}
