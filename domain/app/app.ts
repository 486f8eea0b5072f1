import * as t from 'io-ts';
import type { CatalogueEntry } from '../catalogueEntry';
import { DomainError, unreachable, type Decider } from '../decider';
import {
  APP_RETENTION_CATEGORIES,
  formatKeep,
  parseKeep,
  type AppRetention,
  type AppRetentionCategory,
} from '../retention';

/**
 * An app (DESIGN.md: identity) owns users and devices; its secret is Koala's secret_key, topvdn's
 * X-APP-Key and ONE-PUSH's appKey. Events hold only a hash of the secret, never the secret.
 */

export const AppId = t.refinement(t.string, (s) => /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/.test(s), 'AppId');

export const AppRegistered = t.type({
  type: t.literal('AppRegistered'),
  data: t.type({ appId: t.string, secretHash: t.string, registeredAt: t.string }),
});
export const AppSecretChanged = t.type({
  type: t.literal('AppSecretChanged'),
  data: t.type({ appId: t.string, secretHash: t.string, changedAt: t.string }),
});
/** Where the app's server receives topvdn messages sent with `callback: 1` (null: nowhere). */
export const AppPushCallbackSet = t.type({
  type: t.literal('AppPushCallbackSet'),
  data: t.type({ appId: t.string, url: t.union([t.string, t.null]), setAt: t.string }),
});
/**
 * How long the app keeps its records that never end (domain/retention.ts, APP_RETENTION_CATEGORIES): the
 * whole setting after the change, each a duration as HERALD_RETENTION_* takes it (`30d`, `forever`), or
 * null to follow the deployment's default.
 */
export const AppRetentionSet = t.type({
  type: t.literal('AppRetentionSet'),
  data: t.type({
    appId: t.string,
    unexpiringMessages: t.union([t.string, t.null]),
    datahubNotifications: t.union([t.string, t.null]),
    setAt: t.string,
  }),
});
export const AppEvent = t.union([AppRegistered, AppSecretChanged, AppPushCallbackSet, AppRetentionSet]);
export type AppEvent = t.TypeOf<typeof AppEvent>;

/** docs/events.md, app: what the codecs cannot say. */
export const appCatalogue: CatalogueEntry = {
  title: 'app',
  stream: 'app-<appId>',
  module: 'domain/app/app.ts',
  union: AppEvent,
  events: {
    AppRegistered: {
      when: 'first registration (from `HERALD_APPS` at start-up)',
      fields: { secretHash: '`scrypt:` + base64url, salted with the app id', registeredAt: 'ISO 8601' },
    },
    AppSecretChanged: { when: 'registration with a different secret', fields: { secretHash: 'as in `AppRegistered`' } },
    AppPushCallbackSet: {
      when: '`PUT /v2/message/callback` (topvdn `callback: 1` goes there)',
      fields: { url: 'absolute http(s), ≤ 2,048 characters, no credentials; null = none' },
    },
    AppRetentionSet: {
      when: "GraphQL `setRetention` by the app's admin, when it changes the setting",
      fields: {
        unexpiringMessages:
          "how long a Koala message with `expire` 0 is kept after it was sent: `<n>s|m|h|d`, `0` or `forever`; null = the deployment's `HERALD_RETENTION_UNEXPIRING_MESSAGES`",
        datahubNotifications:
          "how long a datahub notification is kept after it was sent, as above; null = the deployment's `HERALD_RETENTION_DATAHUB_NOTIFICATIONS`",
      },
    },
  },
  notes: ['Secrets themselves are never stored or logged.'],
};

/** Registers the app, or changes its secret; registering it again with the same secret changes nothing. */
export interface RegisterApp {
  readonly type: 'RegisterApp';
  readonly appId: string;
  readonly secretHash: string;
  readonly now: string;
}
export interface SetPushCallback {
  readonly type: 'SetPushCallback';
  readonly appId: string;
  /** An http(s) URL, or null to stop callbacks. */
  readonly url: string | null;
  readonly now: string;
}
/**
 * Changes how long the app keeps its records that never end: per category given, a duration (`30d`),
 * `forever`, or `default` (the deployment's again); a category not given is unchanged.
 */
export interface SetRetention {
  readonly type: 'SetRetention';
  readonly appId: string;
  readonly changes: Readonly<Partial<Record<AppRetentionCategory, string>>>;
  readonly now: string;
}
export type AppCommand = RegisterApp | SetPushCallback | SetRetention;

export type AppState =
  | { readonly status: 'unregistered' }
  | {
      readonly status: 'registered';
      readonly secretHash: string;
      readonly pushCallbackUrl: string | null;
      readonly retention: AppRetention;
    };

export const PUSH_CALLBACK_URL_LENGTH = 2048;

export const appStreamName = (appId: string) => `app-${appId}`;

export const appDecider: Decider<AppCommand, AppEvent, AppState> = {
  initialState: () => ({ status: 'unregistered' }),

  evolve(state, event) {
    switch (event.type) {
      case 'AppRegistered':
      case 'AppSecretChanged':
        return {
          status: 'registered',
          secretHash: event.data.secretHash,
          pushCallbackUrl: state.status === 'registered' ? state.pushCallbackUrl : null,
          retention: state.status === 'registered' ? state.retention : {},
        };
      case 'AppPushCallbackSet':
        return state.status === 'registered' ? { ...state, pushCallbackUrl: event.data.url } : state;
      case 'AppRetentionSet':
        return state.status === 'registered' ? { ...state, retention: retentionOf(event.data) } : state;
      default:
        return unreachable(event);
    }
  },

  decide(command, state) {
    switch (command.type) {
      case 'RegisterApp': {
        if (!AppId.is(command.appId))
          throw new DomainError(
            'invalid',
            `app id ${JSON.stringify(command.appId)} must be 1-64 letters, digits, '_', '.' or '-'`,
          );
        if (state.status === 'unregistered') {
          return [
            {
              type: 'AppRegistered',
              data: { appId: command.appId, secretHash: command.secretHash, registeredAt: command.now },
            },
          ];
        }
        if (state.secretHash === command.secretHash) return [];
        return [
          {
            type: 'AppSecretChanged',
            data: { appId: command.appId, secretHash: command.secretHash, changedAt: command.now },
          },
        ];
      }
      case 'SetPushCallback': {
        if (state.status !== 'registered') throw new DomainError('not_found', 'no such app');
        const url = command.url === null ? null : checkCallbackUrl(command.url);
        if (url === state.pushCallbackUrl) return [];
        return [{ type: 'AppPushCallbackSet', data: { appId: command.appId, url, setAt: command.now } }];
      }
      case 'SetRetention': {
        if (state.status !== 'registered') throw new DomainError('not_found', 'no such app');
        const next = { ...state.retention };
        for (const category of APP_RETENTION_CATEGORIES) {
          const text = command.changes[category];
          if (text === undefined) continue;
          if (text === 'default') delete next[category];
          else next[category] = checkKeep(category, text);
        }
        const shown = (retention: AppRetention, category: AppRetentionCategory) => {
          const keep = retention[category];
          return keep === undefined ? null : formatKeep(keep);
        };
        if (APP_RETENTION_CATEGORIES.every((c) => shown(next, c) === shown(state.retention, c))) return [];
        return [
          {
            type: 'AppRetentionSet',
            data: {
              appId: command.appId,
              unexpiringMessages: shown(next, 'unexpiringMessages'),
              datahubNotifications: shown(next, 'datahubNotifications'),
              setAt: command.now,
            },
          },
        ];
      }
      default:
        return unreachable(command);
    }
  },
};

/** A setting as the event holds it (a value no codec made is ignored: as the deployment's default). */
export function retentionOf(data: t.TypeOf<typeof AppRetentionSet>['data']): AppRetention {
  const retention: Partial<Record<AppRetentionCategory, number | 'forever'>> = {};
  for (const category of APP_RETENTION_CATEGORIES) {
    const text = data[category];
    const keep = text === null ? undefined : parseKeep(text);
    if (keep !== undefined) retention[category] = keep;
  }
  return retention;
}

/**
 * The least an app may keep what never ends: its records go at the pass after this, unread or not (a
 * device offline for a moment, a retried send's dedup window), so `0` and minutes are refused.
 */
const MIN_APP_KEEP_MS = 3600_000;

/** What a refused setting is told, after its field's name. */
export const APP_KEEP_RULE = 'must be a duration (<n>s, <n>m, <n>h or <n>d, from 1h to 36500d), forever, or default';

function checkKeep(category: AppRetentionCategory, text: string) {
  const keep = parseKeep(text);
  if (keep === undefined || (keep !== 'forever' && keep < MIN_APP_KEEP_MS))
    throw new DomainError('invalid', `${category}: ${APP_KEEP_RULE}`);
  return keep;
}

/** An absolute http(s) URL without credentials in it, as the URL parser writes it. */
function checkCallbackUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new DomainError('invalid', 'url: must be an absolute http or https URL');
  }
  if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:')
    throw new DomainError('invalid', 'url: must be an http or https URL');
  if (parsed.username || parsed.password) throw new DomainError('invalid', 'url: may not hold a user name or password');
  if (parsed.href.length > PUSH_CALLBACK_URL_LENGTH)
    throw new DomainError('invalid', `url: at most ${PUSH_CALLBACK_URL_LENGTH} characters`);
  return parsed.href;
}
