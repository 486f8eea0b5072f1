import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import {
  decideAttempt,
  evolveItem,
  failedAttemptFields,
  firstAttemptAt,
  maxAttempts,
  type AttemptState,
  type RetrySchedule,
} from '../outbox';
import { isStorableText } from '../text';

/**
 * RTIO device RPC (shared/seeds/004_e2f5c37d54658cec.txt): an app's server creates devices, and calls
 * a connected device synchronously (`call/send`: the message goes to the device, whose reply is the
 * answer, within `time_live` seconds).
 *
 * Streams: `rtio-nonce-<nonceId>` (a nonce taken), `rtio-device-<deviceId>` (created once) and
 * `rtio-call-<callId>` (one call: made, then replied to or failed). A request first takes its `nonce` in
 * the app's one nonce space (RtioNonceUsed), then lands on the stream its nonce decides (the ids derive
 * from the app and the nonce): a nonce used before, by either request, is refused.
 */

export const RTIO_LIMITS = {
  /** The seed's maximum lengths are in bytes (UTF-8). */
  nonceBytes: 32,
  deviceIdBytes: 64,
  messageBytes: 512,
  reportBytes: 1024,
  /** An answer's `desc`. */
  descBytes: 128,
  timeLiveDefaultSeconds: 6,
  timeLiveMaxSeconds: 30,
} as const;

/**
 * `call/send`'s `time_live` as the caller wrote it → the seconds the call waits for the device's reply.
 * The seed: "消息有效秒数，默认6秒，最大30秒". Absent, `null`, `""` (blank) and `0` are the default: `0` is
 * what a Go struct field without `omitempty` (or a PHP form left empty) sends when the caller meant none.
 * Above the maximum is the maximum, as the seed states one and a caller expects its call made rather than
 * lost. A string of digits (`"6"`, what a PHP or form-fed client sends) is its number. A negative number,
 * a fraction or any other value is refused (1604).
 */
export function rtioTimeLiveSeconds(raw: unknown): number {
  const value =
    typeof raw === 'string' ? (raw.trim() === '' ? undefined : /^\s*\d{1,9}\s*$/.test(raw) ? Number(raw) : raw) : raw;
  if (value === undefined || value === null || value === 0) return RTIO_LIMITS.timeLiveDefaultSeconds;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0) {
    throw new DomainError(
      'invalid',
      `time_live: an integer of seconds, 1-${RTIO_LIMITS.timeLiveMaxSeconds} (0 or none: ${RTIO_LIMITS.timeLiveDefaultSeconds})`,
    );
  }
  return Math.min(value, RTIO_LIMITS.timeLiveMaxSeconds);
}

export const RtioDeviceCreated = t.type({
  type: t.literal('RtioDeviceCreated'),
  data: t.type({ deviceId: t.string, appId: t.string, keyHash: t.string, nonce: t.string, createdAt: t.string }),
});
export const RtioDeviceEvent = RtioDeviceCreated;
export type RtioDeviceEvent = t.TypeOf<typeof RtioDeviceEvent>;

/** docs/events.md, rtio device: what the codecs cannot say. */
export const rtioDeviceCatalogue: CatalogueEntry = {
  title: 'rtio device',
  stream: 'rtio-device-<deviceId>',
  module: 'domain/rtio/rtio.ts',
  union: RtioDeviceEvent,
  description: [
    "RTIO device RPC (docs/api/rtio.md): a device an app's server created. Its id, like a call's, derives from " +
      "the app and the request's `nonce`, taken first as an `RtioNonceUsed`: a nonce used again appends nothing.",
  ],
  events: {
    RtioDeviceCreated: {
      when: '`POST /manage/create_device`',
      fields: { keyHash: 'SHA-256 of the device key, base64url' },
    },
  },
};

export interface CreateRtioDevice {
  readonly type: 'CreateRtioDevice';
  readonly deviceId: string;
  readonly appId: string;
  /** SHA-256 of the device key (random, high-entropy: no slow hash needed), never the key. */
  readonly keyHash: string;
  readonly nonce: string;
  readonly now: string;
}
export type RtioDeviceCommand = CreateRtioDevice;
export type RtioDeviceState =
  { readonly status: 'none' } | { readonly status: 'created'; readonly appId: string; readonly keyHash: string };

export const rtioDeviceStreamName = (deviceId: string) => `rtio-device-${deviceId}`;
export const rtioNonceStreamName = (nonceId: string) => `rtio-nonce-${nonceId}`;

export const rtioDeviceDecider: Decider<RtioDeviceCommand, RtioDeviceEvent, RtioDeviceState> = {
  initialState: () => ({ status: 'none' }),
  evolve: (_state, event) => ({ status: 'created', appId: event.data.appId, keyHash: event.data.keyHash }),
  decide(command, state) {
    checkNonce(command.nonce);
    // The nonce names the device's stream: a device there already means the nonce was used.
    if (state.status !== 'none') throw new DomainError('conflict', 'nonce: already used');
    const { deviceId, appId, keyHash, nonce, now } = command;
    return [{ type: 'RtioDeviceCreated', data: { deviceId, appId, keyHash, nonce, createdAt: now } }];
  },
};

/**
 * The seed: every request's nonce differs ("每次请求不能相同") — one space per app for all its RTIO
 * requests, `create_device` and `call/send` alike. A request first takes its nonce here, on the stream
 * named by the app and the nonce, so two requests racing for one nonce are decided on one stream. The
 * request the nonce was first used for may take it again: a retry whose own stream was never written
 * (herald failed between the two appends) goes through, and its own stream refuses it if it was.
 */
export const RTIO_REQUESTS = ['create_device', 'call/send'] as const;
export type RtioRequest = (typeof RTIO_REQUESTS)[number];

export const RtioNonceUsed = t.type({
  type: t.literal('RtioNonceUsed'),
  data: t.type({
    appId: t.string,
    nonce: t.string,
    request: t.keyof({ create_device: null, 'call/send': null }),
    usedAt: t.string,
  }),
});
export const RtioNonceEvent = RtioNonceUsed;
export type RtioNonceEvent = t.TypeOf<typeof RtioNonceEvent>;

/** docs/events.md, rtio nonce: what the codecs cannot say. */
export const rtioNonceCatalogue: CatalogueEntry = {
  title: 'rtio nonce',
  stream: 'rtio-nonce-<nonceId>',
  module: 'domain/rtio/rtio.ts',
  union: RtioNonceEvent,
  description: [
    "An RTIO request's `nonce`, taken once per app for every request (docs/api/rtio.md, Nonces). The id derives " +
      'from the app and the nonce; the request the nonce was used for may take it again (its retry), any other is refused.',
  ],
  events: {
    RtioNonceUsed: {
      when: "`POST /manage/create_device`, `POST /call/send`: before the request's own event",
      fields: { request: 'what the nonce was used for' },
    },
  },
};

export interface UseRtioNonce {
  readonly type: 'UseRtioNonce';
  readonly appId: string;
  readonly nonce: string;
  readonly request: RtioRequest;
  readonly now: string;
}
export type RtioNonceCommand = UseRtioNonce;
export type RtioNonceState = { readonly status: 'none' } | { readonly status: 'used'; readonly request: RtioRequest };

export const rtioNonceDecider: Decider<RtioNonceCommand, RtioNonceEvent, RtioNonceState> = {
  initialState: () => ({ status: 'none' }),
  evolve: (_state, event) => ({ status: 'used', request: event.data.request }),
  decide(command, state) {
    checkNonce(command.nonce);
    if (state.status === 'none') {
      const { appId, nonce, request, now } = command;
      return [{ type: 'RtioNonceUsed', data: { appId, nonce, request, usedAt: now } }];
    }
    if (state.request !== command.request)
      throw new DomainError('conflict', `nonce: already used (by ${state.request})`);
    return [];
  },
};

const Call = { callId: t.string, appId: t.string, deviceId: t.string };

export const RtioDeviceCalled = t.type({
  type: t.literal('RtioDeviceCalled'),
  data: t.type({
    ...Call,
    nonce: t.string,
    message: t.string,
    timeLiveSeconds: t.number,
    calledAt: t.string,
    expiresAt: t.string,
  }),
});
export const RtioDeviceReplied = t.type({
  type: t.literal('RtioDeviceReplied'),
  data: t.type({ ...Call, code: t.number, message: t.string, repliedAt: t.string }),
});
/** `offline`: the device had no connection; `timeout`: it did not reply within time_live. */
export const RtioCallFailed = t.type({
  type: t.literal('RtioCallFailed'),
  data: t.type({ ...Call, reason: t.keyof({ offline: null, timeout: null }), failedAt: t.string }),
});
export const RtioCallEvent = t.union([RtioDeviceCalled, RtioDeviceReplied, RtioCallFailed]);
export type RtioCallEvent = t.TypeOf<typeof RtioCallEvent>;

/** docs/events.md, rtio call: what the codecs cannot say. */
export const rtioCallCatalogue: CatalogueEntry = {
  title: 'rtio call',
  stream: 'rtio-call-<callId>',
  module: 'domain/rtio/rtio.ts',
  union: RtioCallEvent,
  description: [
    'One RTIO call of a device (docs/api/rtio.md): made, then replied to or failed. Its id, like a created ' +
      "device's, derives from the app and the request's `nonce`, taken first as an `RtioNonceUsed`: a nonce used " +
      'again appends nothing.',
  ],
  events: {
    RtioDeviceCalled: {
      when: '`POST /call/send`, before the message is written to the device',
      fields: { timeLiveSeconds: '`time_live`: 6 unless given, at most 30' },
    },
    RtioDeviceReplied: { when: "the device's reply within `time_live`" },
    RtioCallFailed: {
      when: 'the device had no connection, or did not reply in time',
      fields: { reason: '`offline`: no connection; `timeout`: no reply within `time_live`' },
    },
  },
};

export interface CallRtioDevice {
  readonly type: 'CallRtioDevice';
  readonly callId: string;
  readonly appId: string;
  readonly deviceId: string;
  readonly nonce: string;
  readonly message: string;
  /** Seconds; undefined → the default (6). */
  readonly timeLiveSeconds?: number;
  readonly now: string;
}
export interface RecordReply {
  readonly type: 'RecordReply';
  readonly code: number;
  readonly message: string;
  readonly now: string;
}
export interface RecordCallFailure {
  readonly type: 'RecordCallFailure';
  readonly reason: 'offline' | 'timeout';
  readonly now: string;
}
export type RtioCallCommand = CallRtioDevice | RecordReply | RecordCallFailure;

export type RtioCallState =
  | { readonly status: 'none' }
  | {
      readonly status: 'calling' | 'replied' | 'failed';
      readonly callId: string;
      readonly appId: string;
      readonly deviceId: string;
      readonly expiresAt: string;
    };

export const rtioCallStreamName = (callId: string) => `rtio-call-${callId}`;

export const rtioCallDecider: Decider<RtioCallCommand, RtioCallEvent, RtioCallState> = {
  initialState: () => ({ status: 'none' }),
  evolve(state, event) {
    switch (event.type) {
      case 'RtioDeviceCalled':
        return {
          status: 'calling',
          callId: event.data.callId,
          appId: event.data.appId,
          deviceId: event.data.deviceId,
          expiresAt: event.data.expiresAt,
        };
      case 'RtioDeviceReplied':
        return state.status === 'none' ? state : { ...state, status: 'replied' };
      case 'RtioCallFailed':
        return state.status === 'none' ? state : { ...state, status: 'failed' };
      default:
        return unreachable(event);
    }
  },
  decide(command, state) {
    switch (command.type) {
      case 'CallRtioDevice': {
        checkNonce(command.nonce);
        if (state.status !== 'none') throw new DomainError('conflict', 'nonce: already used');
        if (!isStorableText(command.message) || Buffer.byteLength(command.message, 'utf8') > RTIO_LIMITS.messageBytes) {
          throw new DomainError('invalid', `message: at most ${RTIO_LIMITS.messageBytes} bytes of text`);
        }
        const timeLive = command.timeLiveSeconds ?? RTIO_LIMITS.timeLiveDefaultSeconds;
        if (!Number.isInteger(timeLive) || timeLive < 1 || timeLive > RTIO_LIMITS.timeLiveMaxSeconds) {
          throw new DomainError('invalid', `time_live: 1-${RTIO_LIMITS.timeLiveMaxSeconds} seconds`);
        }
        const { callId, appId, deviceId, nonce, message, now } = command;
        const expiresAt = new Date(Date.parse(now) + timeLive * 1000).toISOString();
        return [
          {
            type: 'RtioDeviceCalled',
            data: { callId, appId, deviceId, nonce, message, timeLiveSeconds: timeLive, calledAt: now, expiresAt },
          },
        ];
      }
      case 'RecordReply': {
        if (state.status === 'none') throw new DomainError('not_found', 'no such call');
        // One outcome per call: a reply after the call failed (timed out) is not taken.
        if (state.status !== 'calling') return [];
        if (!isDeviceCode(command.code)) throw new DomainError('invalid', 'code: a 32-bit integer');
        if (!isStorableText(command.message) || Buffer.byteLength(command.message, 'utf8') > RTIO_LIMITS.messageBytes) {
          throw new DomainError('invalid', `message: at most ${RTIO_LIMITS.messageBytes} bytes of text`);
        }
        const { callId, appId, deviceId } = state;
        return [
          {
            type: 'RtioDeviceReplied',
            data: { callId, appId, deviceId, code: command.code, message: command.message, repliedAt: command.now },
          },
        ];
      }
      case 'RecordCallFailure': {
        if (state.status === 'none') throw new DomainError('not_found', 'no such call');
        if (state.status !== 'calling') return [];
        const { callId, appId, deviceId } = state;
        return [
          { type: 'RtioCallFailed', data: { callId, appId, deviceId, reason: command.reason, failedAt: command.now } },
        ];
      }
      default:
        return unreachable(command);
    }
  },
};

/** A device's `code` (the answer's `device_code`): the seed's `int`, 4 bytes — a signed 32-bit integer. */
export const isDeviceCode = (code: unknown): code is number =>
  typeof code === 'number' && Number.isInteger(code) && code >= -(2 ** 31) && code < 2 ** 31;

/** The seed: a nonce is a string of at most 32 bytes; herald also wants it non-empty and printable. */
function checkNonce(nonce: unknown): void {
  if (
    typeof nonce !== 'string' ||
    nonce.length === 0 ||
    Buffer.byteLength(nonce, 'utf8') > RTIO_LIMITS.nonceBytes ||
    !isStorableText(nonce) ||
    /[\r\n\t]/.test(nonce)
  ) {
    throw new DomainError('invalid', `nonce: 1-${RTIO_LIMITS.nonceBytes} bytes of text`);
  }
}

/**
 * A device's report (RTIO `$notifyurl`): forwarded to the app's notify URL as `{nonce, device_id,
 * device_message}`; the reply `{nonce, code: 1000}` acknowledges it. Anything else — or no answer — is
 * tried again after 2, 4, 8, 16 … s, 10 tries in all, then recorded as failed for good. Stream:
 * `rtio-report-<reportId>`; the retry state is the stream's (and the read model's), so a restart of
 * herald continues the schedule. A report is an outbox item (domain/outbox.ts).
 */
/** Wait after failed attempt n (1-based) before attempt n+1: 2^n seconds, 10 tries in all. */
export const RTIO_REPORT_SCHEDULE: RetrySchedule = {
  retryDelaysMs: Array.from({ length: 9 }, (_, i) => 2 ** (i + 1) * 1000),
};
export const RTIO_REPORT_ATTEMPTS = maxAttempts(RTIO_REPORT_SCHEDULE);

const Report = { reportId: t.string, appId: t.string, deviceId: t.string };

export const RtioDeviceReported = t.type({
  type: t.literal('RtioDeviceReported'),
  data: t.type({ ...Report, nonce: t.string, message: t.string, reportedAt: t.string }),
});
export const RtioReportForwarded = t.type({
  type: t.literal('RtioReportForwarded'),
  data: t.type({ ...Report, attempt: t.number, forwardedAt: t.string }),
});
export const RtioReportForwardFailed = t.type({
  type: t.literal('RtioReportForwardFailed'),
  data: t.type({
    ...Report,
    ...failedAttemptFields,
  }),
});
export const RtioReportEvent = t.union([RtioDeviceReported, RtioReportForwarded, RtioReportForwardFailed]);
export type RtioReportEvent = t.TypeOf<typeof RtioReportEvent>;

/** docs/events.md, rtio report: what the codecs cannot say. */
export const rtioReportCatalogue: CatalogueEntry = {
  title: 'rtio report',
  stream: 'rtio-report-<reportId>',
  module: 'domain/rtio/rtio.ts',
  union: RtioReportEvent,
  description: ["A device's report, forwarded to the app's notify URL (docs/api/rtio.md)."],
  events: {
    RtioDeviceReported: {
      when: 'a device\'s `{"report"}` frame',
      fields: { nonce: "herald's, for the notify request" },
    },
    RtioReportForwarded: { when: 'the notify URL acknowledged it (`{nonce, code: 1000}`)' },
    RtioReportForwardFailed: {
      when: 'a try failed',
      fields: { attempt: '1–10', retryAt: '2^attempt s later; null when final' },
    },
  },
};

export interface ReportFromDevice {
  readonly type: 'ReportFromDevice';
  readonly reportId: string;
  readonly appId: string;
  readonly deviceId: string;
  /** The nonce of the notify request: made by herald, the same on every try. */
  readonly nonce: string;
  readonly message: string;
  readonly now: string;
}
export interface RecordForwarded {
  readonly type: 'RecordForwarded';
  readonly attempt: number;
  readonly now: string;
}
export interface RecordForwardFailed {
  readonly type: 'RecordForwardFailed';
  readonly attempt: number;
  readonly error: string;
  readonly now: string;
}
export type RtioReportCommand = ReportFromDevice | RecordForwarded | RecordForwardFailed;

/** Reported: what to forward, and where its attempts stand (`succeeded`: forwarded). */
export type RtioReportState =
  | { readonly status: 'none' }
  | ({
      readonly reportId: string;
      readonly appId: string;
      readonly deviceId: string;
      readonly nonce: string;
      readonly message: string;
    } & AttemptState);

export const rtioReportStreamName = (reportId: string) => `rtio-report-${reportId}`;

export const rtioReportDecider: Decider<RtioReportCommand, RtioReportEvent, RtioReportState> = {
  initialState: () => ({ status: 'none' }),
  evolve(state, event) {
    switch (event.type) {
      case 'RtioDeviceReported': {
        const { reportId, appId, deviceId, nonce, message, reportedAt } = event.data;
        return { reportId, appId, deviceId, nonce, message, ...firstAttemptAt(reportedAt) };
      }
      case 'RtioReportForwarded':
        return evolveItem(state, { succeeded: true, attempt: event.data.attempt });
      case 'RtioReportForwardFailed':
        return evolveItem(state, { succeeded: false, ...event.data });
      default:
        return unreachable(event);
    }
  },
  decide(command, state) {
    switch (command.type) {
      case 'ReportFromDevice': {
        if (state.status !== 'none') return [];
        if (!isStorableText(command.message) || Buffer.byteLength(command.message, 'utf8') > RTIO_LIMITS.reportBytes) {
          throw new DomainError('invalid', `message: at most ${RTIO_LIMITS.reportBytes} bytes of text`);
        }
        const { reportId, appId, deviceId, nonce, message, now } = command;
        return [{ type: 'RtioDeviceReported', data: { reportId, appId, deviceId, nonce, message, reportedAt: now } }];
      }
      case 'RecordForwarded':
      case 'RecordForwardFailed': {
        if (state.status === 'none') throw new DomainError('not_found', 'no such report');
        const outcome =
          command.type === 'RecordForwarded' ? { ok: true as const } : { ok: false as const, error: command.error };
        const recorded = decideAttempt(RTIO_REPORT_SCHEDULE, state, command.attempt, outcome, command.now);
        if (!recorded) return [];
        const { reportId, appId, deviceId } = state;
        if (recorded.succeeded)
          return [
            {
              type: 'RtioReportForwarded',
              data: { reportId, appId, deviceId, attempt: recorded.attempt, forwardedAt: command.now },
            },
          ];
        const { attempt, error, final, retryAt } = recorded;
        return [
          {
            type: 'RtioReportForwardFailed',
            data: { reportId, appId, deviceId, attempt, error, final, failedAt: command.now, retryAt },
          },
        ];
      }
      default:
        return unreachable(command);
    }
  },
};
