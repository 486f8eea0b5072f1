import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import { characterCount, isStorableText, UUID } from '../text';
import { DEVICE_LIMITS, PLATFORMS, PlatformCodec } from './device';

/**
 * A push to devices: one ONE-PUSH send (shared/seeds/003_834cb051d61fc48e.txt: by alias, tag or ALL,
 * crossed with platform) or one topvdn message (shared/seeds/002_66d9dfe67c8bed29.txt: to device
 * numbers). Stream: `push-<pushId>`; the push id is the `requestId` / `request_id` the caller gets
 * and the `messageId` a device confirms.
 *
 * The audience is recorded as asked, not as a list of devices: the devices read model expands it to
 * one delivery per matching registered device of the app, in stream order, so a replay expands it to
 * the same devices. Each delivery's life is its own stream (domain/device/delivery.ts).
 *
 * SMS (ONE-PUSH `smsMessage`, "send an SMS when offline"): herald has no SMS gateway. For the devices
 * with a mobile number that were offline when the push was made, it records SmsRequested, for a gateway
 * to act on.
 */

export const PUSH_LIMITS = {
  audiences: 1000,
  alertLength: 1024,
  extraLength: 4096,
  tenantCodeLength: 64,
  soundLength: 64,
  badgeMax: 99_999,
  senderLength: 128,
  sendDeviceLength: 32,
  smsLength: 500,
  /** `duration`, in seconds: a longer one is taken as 30 days. */
  durationSeconds: 30 * 24 * 3600,
  /** topvdn: the message is at most 256 bytes before base64. */
  topvdnBytes: 256,
  /** topvdn: one request's `clients` / `access_tokens`. */
  topvdnTargets: 1000,
  /** SmsRequested recipients per event. */
  smsRecipients: 1000,
} as const;

/** How long a ONE-PUSH message waits for an offline device when the sender gives no `duration`. */
export const ONEPUSH_DEFAULT_VALIDITY_SECONDS = 7 * 24 * 3600;
/**
 * topvdn flag 2: tries 1, 2, 3 and 5 s apart (at 0, 1, 3, 6 and 11 s after the request), and dropped
 * if still unconfirmed 5 s after the last: 16 s after the request.
 */
export const TOPVDN_RETRY_OFFSETS_SECONDS = [0, 1, 3, 6, 11] as const;
export const TOPVDN_RETRY_WINDOW_SECONDS = 16;
/** topvdn flag 3: one attempt, made to a device connected within this time of the request. */
export const TOPVDN_ONCE_WINDOW_SECONDS = 5;

export const PushPlatformCodec = t.union([t.literal('ALL'), PlatformCodec]);
export const PUSH_PLATFORMS = ['ALL', ...PLATFORMS] as const;

export const Audience = t.union([
  t.type({ type: t.literal('ALIAS'), aliases: t.array(t.string) }),
  t.type({ type: t.literal('TAG'), tags: t.array(t.string) }),
  t.type({ type: t.literal('ALL') }),
  t.type({ type: t.literal('CLIENTS'), clientIds: t.array(t.number) }),
]);
export type Audience = t.TypeOf<typeof Audience>;

/** A JSON value as JSON.parse gives it. */
export type JsonValue = string | number | boolean | null | JsonValue[] | { [key: string]: JsonValue };

/**
 * ONE-PUSH `extra` given as JSON that is not text — an object, an array, a number, a boolean — kept and
 * delivered as that JSON (the original service took any JSON there: "业务系统自定义的消息数据"). The event
 * holds the value itself; onePushExtra checked it (size, depth, storable text) before it was recorded.
 */
type JsonExtraValue = Exclude<JsonValue, string | null>;
const isJsonExtra = (u: unknown): u is JsonExtraValue =>
  (typeof u === 'number' && Number.isFinite(u)) || typeof u === 'boolean' || (typeof u === 'object' && u !== null);
export const JsonExtra = new t.Type<JsonExtraValue, JsonExtraValue, unknown>(
  'JsonValue',
  isJsonExtra,
  (u, c) => (isJsonExtra(u) ? t.success(u) : t.failure(u, c, 'JSON')),
  t.identity,
);

export const OnePushMessage = t.type({
  kind: t.literal('onepush'),
  tenantCode: t.string,
  alert: t.string,
  /** Text (every event before issue 22), or other JSON as the sender gave it. */
  extra: t.union([t.string, JsonExtra]),
  pushMsgType: t.keyof({ MSG: null, CMD: null }),
  sound: t.union([t.string, t.null]),
  badge: t.union([t.number, t.null]),
  sender: t.union([t.string, t.null]),
  sendDevice: t.union([t.string, t.null]),
  smsMessage: t.union([t.string, t.null]),
});
export const TopvdnMessage = t.type({
  kind: t.literal('topvdn'),
  /** Standard padded base64 of 1-256 bytes, however the sender wrote it (topvdnMsg). */
  msg: t.string,
  flag: t.union([t.literal(2), t.literal(3)]),
  /** The sending device's number; null when the app's server sent it. */
  from: t.union([t.number, t.null]),
  /** Also deliver it to the app's callback URL. */
  callback: t.boolean,
});
export const PushMessage = t.union([OnePushMessage, TopvdnMessage]);
export type PushMessage = t.TypeOf<typeof PushMessage>;

/** How deliveries of a push are retried (domain/device/delivery.ts). */
export const RetryCodec = t.keyof({ none: null, backoff: null, topvdn: null });
export type Retry = t.TypeOf<typeof RetryCodec>;

export const PushRequested = t.type({
  type: t.literal('PushRequested'),
  data: t.type({
    pushId: t.string,
    appId: t.string,
    audience: Audience,
    platform: PushPlatformCodec,
    message: PushMessage,
    /** A delivery ends when the device confirms it (otherwise when it has been written once). */
    needsConfirm: t.boolean,
    retry: RetryCodec,
    requestedAt: t.string,
    /** Deliveries still open then are dropped (topvdn) or expired (ONE-PUSH). */
    expiresAt: t.string,
  }),
});
export const SmsRequested = t.type({
  type: t.literal('SmsRequested'),
  data: t.type({
    pushId: t.string,
    appId: t.string,
    message: t.string,
    recipients: t.array(t.type({ deviceId: t.string, mobile: t.string })),
    requestedAt: t.string,
  }),
});
export const PushEvent = t.union([PushRequested, SmsRequested]);
export type PushEvent = t.TypeOf<typeof PushEvent>;
export type PushRequestedData = t.TypeOf<typeof PushRequested>['data'];

/** docs/events.md, push: what the codecs cannot say. */
export const pushCatalogue: CatalogueEntry = {
  title: 'push',
  stream: 'push-<pushId>',
  module: 'domain/device/push.ts',
  union: PushEvent,
  description: [
    'One ONE-PUSH send or one topvdn message; the push id is the `requestId` / `request_id` the caller gets ' +
      'and the `messageId` devices confirm.',
  ],
  events: {
    PushRequested: {
      when:
        '`POST /msgpush/send`, `POST /v2/message/client/push`, `POST /v2/message/server/push` (one per message), ' +
        "GraphQL `pushToDevices`. The audience is expanded to devices by the devices projection, at this event's position",
      fields: {
        audience: 'as asked, not a list of devices',
        platform: 'ALL or one',
        message:
          'a topvdn `msg` is standard padded base64 (RFC 4648 §4), whatever form of base64 the sender used; a ONE-PUSH `extra` is text, ' +
          'or other JSON (`JsonValue`: an object, an array, a number, a boolean) as the sender gave it — events before issue 22 hold text only',
        needsConfirm: 'a delivery ends when the device confirms it (otherwise when it has been written once)',
        retry: 'how deliveries are retried (see delivery)',
        expiresAt: 'deliveries still open then are dropped (topvdn) or expired (ONE-PUSH)',
      },
    },
    SmsRequested: {
      when:
        'a ONE-PUSH send with `smsMessage`: the addressed devices with a mobile number that were not connected. ' +
        'herald has no SMS gateway; one would act on these',
      fields: { recipients: '≤ 1,000 per event' },
    },
  },
};

export interface RequestOnePush {
  readonly type: 'RequestOnePush';
  readonly pushId: string;
  readonly appId: string;
  readonly platform: string;
  readonly audienceType: string;
  readonly audiences: readonly string[];
  readonly tenantCode?: string | null;
  readonly alert: string;
  /** Text, or any other JSON (JsonExtra); null is none. */
  readonly extra?: unknown;
  readonly pushMsgType?: string | null;
  readonly needConfirm?: boolean | null;
  /** Seconds. */
  readonly duration?: number | null;
  readonly sound?: string | null;
  readonly badge?: number | null;
  readonly sender?: string | null;
  readonly sendDevice?: string | null;
  readonly smsMessage?: string | null;
  readonly now: string;
}
export interface RequestTopvdnPush {
  readonly type: 'RequestTopvdnPush';
  readonly pushId: string;
  readonly appId: string;
  readonly msg: string;
  readonly flag: number;
  readonly from: number | null;
  readonly clientIds: readonly number[];
  readonly callback: boolean;
  readonly now: string;
}
export interface RecordSmsRequests {
  readonly type: 'RecordSmsRequests';
  readonly recipients: ReadonlyArray<{ readonly deviceId: string; readonly mobile: string }>;
  readonly now: string;
}
export type PushCommand = RequestOnePush | RequestTopvdnPush | RecordSmsRequests;

export type PushState =
  { readonly status: 'none' } | { readonly status: 'requested'; readonly push: PushRequestedData };

export const pushStreamName = (pushId: string) => `push-${pushId}`;

export const pushDecider: Decider<PushCommand, PushEvent, PushState> = {
  initialState: () => ({ status: 'none' }),

  evolve(state, event) {
    switch (event.type) {
      case 'PushRequested':
        return { status: 'requested', push: event.data };
      case 'SmsRequested':
        return state;
      default:
        return unreachable(event);
    }
  },

  decide(command, state) {
    switch (command.type) {
      case 'RequestOnePush':
      case 'RequestTopvdnPush': {
        if (!UUID.test(command.pushId)) throw new DomainError('invalid', 'pushId: must be a UUID');
        const now = Date.parse(command.now);
        if (Number.isNaN(now)) throw new DomainError('invalid', 'now: not a valid time');
        const push = command.type === 'RequestOnePush' ? onePush(command, now) : topvdnPush(command, now);
        if (state.status === 'none') return [{ type: 'PushRequested', data: push }];
        // Requested already: the id came from the caller's idempotency key. A retry of that request
        // appends nothing; another request under the same key is refused, not taken for the first.
        if (!sameRequest(state.push, push))
          throw new DomainError('conflict', 'this idempotency key was used for a different push');
        return [];
      }
      case 'RecordSmsRequests': {
        if (state.status === 'none') throw new DomainError('not_found', 'no such push');
        const { message } = state.push;
        if (message.kind !== 'onepush' || message.smsMessage === null || command.recipients.length === 0) return [];
        if (command.recipients.length > PUSH_LIMITS.smsRecipients)
          throw new DomainError('invalid', `at most ${PUSH_LIMITS.smsRecipients} SMS recipients per event`);
        const { pushId, appId } = state.push;
        return [
          {
            type: 'SmsRequested',
            data: {
              pushId,
              appId,
              message: message.smsMessage,
              recipients: command.recipients.map(({ deviceId, mobile }) => ({ deviceId, mobile })),
              requestedAt: command.now,
            },
          },
        ];
      }
      default:
        return unreachable(command);
    }
  },
};

function onePush(command: RequestOnePush, now: number): PushRequestedData {
  const L = PUSH_LIMITS;
  const platform = checkPlatform(command.platform);
  const audience = onePushAudience(command.audienceType, command.audiences);
  // Multi-line, as the seed sets no such limit: LF, CR and TAB are kept (other controls are not storable).
  const alert = text('alert', command.alert, L.alertLength, { required: true, multiline: true });
  const pushMsgType = command.pushMsgType ?? 'MSG';
  if (pushMsgType !== 'MSG' && pushMsgType !== 'CMD')
    throw new DomainError('invalid', 'pushMsgType: must be MSG or CMD');
  const badge = command.badge ?? null;
  if (badge !== null && !(Number.isSafeInteger(badge) && badge >= 0 && badge <= L.badgeMax))
    throw new DomainError('invalid', `badge: must be an integer 0-${L.badgeMax}`);
  const needsConfirm = command.needConfirm ?? false;
  const validitySeconds = needsConfirm ? confirmValidity(command.duration ?? null) : ONEPUSH_DEFAULT_VALIDITY_SECONDS;
  return {
    pushId: command.pushId,
    appId: command.appId,
    audience,
    platform,
    message: {
      kind: 'onepush',
      tenantCode: text('tenantCode', command.tenantCode ?? '', L.tenantCodeLength, { required: false }),
      alert,
      extra: onePushExtra(command.extra),
      pushMsgType,
      sound: optionalText('sound', command.sound, L.soundLength),
      badge,
      sender: optionalText('sender', command.sender, L.senderLength),
      sendDevice: optionalText('sendDeive', command.sendDevice, L.sendDeviceLength),
      smsMessage: optionalText('smsMessage', command.smsMessage, L.smsLength),
    },
    needsConfirm,
    retry: needsConfirm ? 'backoff' : 'none',
    requestedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + validitySeconds * 1000).toISOString(),
  };
}

/** How deep JSON in `extra` may nest: business data is shallow; a bound keeps every walk of it small. */
const EXTRA_DEPTH = 32;

/**
 * `extra` as it is recorded and delivered: text (none is `""`), or other JSON as given (JsonExtra), at
 * most 4,096 characters of its JSON text, nesting at most EXTRA_DEPTH deep, every string and key
 * storable (no NUL or other C0 controls but TAB, LF and CR), every number finite, every integer exact
 * (within ±2^53, what a JSON number reaches the device as).
 */
function onePushExtra(extra: unknown): string | JsonExtraValue {
  const L = PUSH_LIMITS;
  if (extra === null || extra === undefined) return '';
  if (typeof extra === 'string') return text('extra', extra, L.extraLength, { required: false, multiline: true });
  const check = (value: unknown, depth: number): void => {
    if (depth > EXTRA_DEPTH) throw new DomainError('invalid', `extra: JSON nested at most ${EXTRA_DEPTH} deep`);
    if (typeof value === 'string') {
      if (!isStorableText(value)) throw new DomainError('invalid', 'extra: may not contain control characters');
    } else if (typeof value === 'number') {
      if (!Number.isFinite(value)) throw new DomainError('invalid', 'extra: a number too large for JSON');
      // JSON.parse rounds an integer past 2^53 (a Java long id): refused, not delivered changed.
      if (Number.isInteger(value) && !Number.isSafeInteger(value))
        throw new DomainError(
          'invalid',
          'extra: an integer beyond ±9007199254740991 cannot be delivered exactly; send it as a string',
        );
    } else if (Array.isArray(value)) {
      for (const item of value) check(item, depth + 1);
    } else if (typeof value === 'object' && value !== null) {
      for (const [key, item] of Object.entries(value)) {
        if (!isStorableText(key)) throw new DomainError('invalid', 'extra: may not contain control characters');
        check(item, depth + 1);
      }
    } else if (typeof value !== 'boolean' && value !== null) {
      throw new DomainError('invalid', 'extra: must be text or JSON');
    }
  };
  check(extra, 1);
  if (characterCount(JSON.stringify(extra)) > L.extraLength)
    throw new DomainError('invalid', `extra: at most ${L.extraLength} characters (of its JSON)`);
  return extra as JsonExtraValue;
}

/**
 * How long a needConfirm message is kept and re-sent: its `duration`, which the seed says counts only
 * then ("needConfirm=true时有效"; without a confirmation the default keeps it for an offline device).
 * Longer than the maximum is the maximum, as ONE-PUSH clamped it (to its own 3 days).
 */
function confirmValidity(duration: number | null): number {
  // 0 is what a client's unset int field sends (Java's `int duration`): no duration, the default.
  if (duration === null || duration === 0) return ONEPUSH_DEFAULT_VALIDITY_SECONDS;
  // Any whole number: past Number's exact integers (a Java Long.MAX_VALUE) is still past the maximum.
  if (!Number.isInteger(duration) || duration <= 0)
    throw new DomainError('invalid', `duration: must be a whole number of seconds, at least 1`);
  return Math.min(duration, PUSH_LIMITS.durationSeconds);
}

function topvdnPush(command: RequestTopvdnPush, now: number): PushRequestedData {
  const L = PUSH_LIMITS;
  const msg = topvdnMsg(command.msg);
  if (command.flag !== 2 && command.flag !== 3) throw new DomainError('invalid', 'flag: must be 2 or 3');
  if (command.from !== null && !isClientId(command.from))
    throw new DomainError('invalid', 'from: must be a device number');
  if (command.clientIds.length > L.topvdnTargets)
    throw new DomainError('invalid', `at most ${L.topvdnTargets} devices per message`);
  for (const id of command.clientIds)
    if (!isClientId(id)) throw new DomainError('invalid', 'clients: each is a device number');
  const flag = command.flag;
  const windowSeconds = flag === 2 ? TOPVDN_RETRY_WINDOW_SECONDS : TOPVDN_ONCE_WINDOW_SECONDS;
  return {
    pushId: command.pushId,
    appId: command.appId,
    audience: { type: 'CLIENTS', clientIds: [...new Set(command.clientIds)] },
    platform: 'ALL',
    message: { kind: 'topvdn', msg, flag, from: command.from, callback: command.callback },
    needsConfirm: flag === 2,
    retry: flag === 2 ? 'topvdn' : 'none',
    requestedAt: new Date(now).toISOString(),
    expiresAt: new Date(now + windowSeconds * 1000).toISOString(),
  };
}

/** Whether two pushes are the same request made at different times (a retry): all but when, with the same validity. */
function sameRequest(a: PushRequestedData, b: PushRequestedData): boolean {
  const asked = ({ requestedAt, expiresAt, ...rest }: PushRequestedData) => ({
    ...rest,
    validityMs: Date.parse(expiresAt) - Date.parse(requestedAt),
  });
  return sameJson(asked(a), asked(b));
}

/** Deep equality of JSON values, whatever the order of object keys (a stored event's may differ). */
function sameJson(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (
    typeof a !== 'object' ||
    typeof b !== 'object' ||
    a === null ||
    b === null ||
    Array.isArray(a) !== Array.isArray(b)
  )
    return false;
  if (Array.isArray(a))
    return a.length === (b as unknown[]).length && a.every((item, i) => sameJson(item, (b as unknown[])[i]));
  const [ka, kb] = [Object.keys(a), Object.keys(b)];
  return (
    ka.length === kb.length &&
    ka.every(
      (key) =>
        Object.hasOwn(b, key) && sameJson((a as Record<string, unknown>)[key], (b as Record<string, unknown>)[key]),
    )
  );
}

/**
 * topvdn's `msg` as devices receive it: the standard, padded base64 (RFC 4648 §4) of its bytes, which
 * number 1-256 (the seed's limit is on the message before encoding). Every common way of writing base64
 * is taken, as the decoders devices use take it: with or without `=` padding, the URL-safe alphabet
 * (`-` `_`), and line breaks or other ASCII white space anywhere (Android's `Base64.DEFAULT` ends every
 * 76 characters and the text with `\n`; MIME uses `\r\n`). Anything else — another character, padding
 * that does not match the length, padding inside the text — is not base64 and refused.
 */
export function topvdnMsg(msg: unknown): string {
  if (typeof msg !== 'string') throw new DomainError('invalid', 'msg: the base64 of the message is required');
  const notBase64 = new DomainError('invalid', `msg: must be base64 of 1-${PUSH_LIMITS.topvdnBytes} bytes`);
  // Bounded before the work: 256 bytes are 344 characters; line breaks and padding leave room for this much.
  if (msg.length > 4 * PUSH_LIMITS.topvdnBytes) throw notBase64;
  const written = /^([A-Za-z0-9+/_-]*)(=*)$/.exec(msg.replace(/[\t\n\r ]/g, ''));
  if (!written) throw notBase64;
  const [, digits = '', padding = ''] = written;
  // 4 digits make 3 bytes; a group of 1 digit cannot be; padding, when given, completes the last group.
  if (
    digits.length % 4 === 1 ||
    (padding.length > 0 && (padding.length > 2 || (digits.length + padding.length) % 4 !== 0))
  )
    throw notBase64;
  const bytes = Buffer.from(digits.replace(/-/g, '+').replace(/_/g, '/'), 'base64');
  if (bytes.length === 0) throw new DomainError('invalid', 'msg: the base64 of the message is required');
  if (bytes.length > PUSH_LIMITS.topvdnBytes)
    throw new DomainError('invalid', `msg: the message is ${bytes.length} bytes; at most ${PUSH_LIMITS.topvdnBytes}`);
  return bytes.toString('base64');
}

/**
 * topvdn's `request_id` as its seed writes it: 32 lowercase hex digits (`2279fa57f4d644c1b333f5ff5ff7a2b7`),
 * the push id without its dashes — a legacy client may keep it in a 32-character column. Internally
 * (events, streams, the `messageId` of device frames) the push id stays a UUID.
 */
export const topvdnRequestId = (pushId: string): string => pushId.replace(/-/g, '').toLowerCase();

/**
 * The push id a client sent back (a device's confirmation, a status look-up): a UUID, or the same 32 hex
 * digits without dashes (topvdn's `request_id`), in either case → the UUID, lowercase. Anything else is
 * returned as given (it names no push).
 */
export function pushIdOfSentId(id: string): string {
  const hex = /^[0-9a-f]{32}$/i.test(id)
    ? id.toLowerCase()
    : UUID.test(id)
      ? id.replace(/-/g, '').toLowerCase()
      : undefined;
  return hex === undefined
    ? id
    : `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

/**
 * topvdn's server push: the device numbers it names that are no registered device of the app — skipped,
 * as a client push skips stale tokens — each once, in the order named.
 */
export function unknownClients(named: readonly number[], known: ReadonlySet<number>): number[] {
  return [...new Set(named)].filter((number) => !known.has(number));
}

/**
 * topvdn's `flag` as sent → the flag pushed. The seed: optional, "默认行为为 2". Absent, `null`, `""` and
 * `0` are the default: `0` is what a Go struct field without `omitempty` (or a PHP form left empty) sends
 * for none, and is no flag of the seed's. Any other value is checked by the decider (2 or 3).
 */
export const topvdnFlag = (flag: number | null | undefined): number =>
  flag === undefined || flag === null || flag === 0 ? 2 : flag;

export const isClientId = (value: unknown): value is number =>
  typeof value === 'number' && Number.isSafeInteger(value) && value > 0;

function checkPlatform(platform: string): t.TypeOf<typeof PushPlatformCodec> {
  if (!PushPlatformCodec.is(platform))
    throw new DomainError('invalid', `platform: must be one of ${PUSH_PLATFORMS.join(', ')}`);
  return platform;
}

function onePushAudience(audienceType: string, audiences: readonly string[]): Audience {
  const L = PUSH_LIMITS;
  if (audienceType === 'ALL') return { type: 'ALL' };
  if (audienceType !== 'ALIAS' && audienceType !== 'TAG')
    throw new DomainError('invalid', 'audienceType: must be ALIAS, TAG or ALL');
  // Each audience as registration stores it: trimmed (tags are trimmed on register, aliases have no
  // spaces). A blank one names nobody: dropped, like an empty optional field (docs/api/onepush.md).
  const values = [...new Set(audiences.map((value) => (typeof value === 'string' ? value.trim() : value)))].filter(
    (value) => value !== '',
  );
  if (values.length === 0) throw new DomainError('invalid', 'audiences: at least one is required');
  if (values.length > L.audiences) throw new DomainError('invalid', `audiences: at most ${L.audiences}`);
  const maxLength = audienceType === 'ALIAS' ? DEVICE_LIMITS.aliasLength : DEVICE_LIMITS.tagLength;
  for (const value of values) {
    text('audiences', value, maxLength, { required: true });
    // No device can be registered under such an alias: refused rather than accepted and delivered to no one.
    if (audienceType === 'ALIAS' && /\s/.test(value))
      throw new DomainError('invalid', `audiences: ${JSON.stringify(value)} is not an alias (aliases have no spaces)`);
  }
  return audienceType === 'ALIAS' ? { type: 'ALIAS', aliases: values } : { type: 'TAG', tags: values };
}

function text(
  field: string,
  value: unknown,
  maxLength: number,
  options: { required: boolean; multiline?: boolean },
): string {
  if (typeof value !== 'string') throw new DomainError('invalid', `${field}: must be text`);
  if (options.required && value.trim().length === 0) throw new DomainError('invalid', `${field}: is required`);
  if (characterCount(value) > maxLength) throw new DomainError('invalid', `${field}: at most ${maxLength} characters`);
  if (!isStorableText(value) || (!options.multiline && /[\r\n]/.test(value)))
    throw new DomainError('invalid', `${field}: may not contain control characters`);
  return value;
}

function optionalText(field: string, value: string | null | undefined, maxLength: number): string | null {
  return value === null || value === undefined || value === ''
    ? null
    : text(field, value, maxLength, { required: false });
}
