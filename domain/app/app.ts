import * as t from 'io-ts';
import { DomainError, unreachable, type Decider } from '../decider';

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
export const AppEvent = t.union([AppRegistered, AppSecretChanged]);
export type AppEvent = t.TypeOf<typeof AppEvent>;

/** Registers the app, or changes its secret; registering it again with the same secret changes nothing. */
export interface RegisterApp {
  readonly type: 'RegisterApp';
  readonly appId: string;
  readonly secretHash: string;
  readonly now: string;
}
export type AppCommand = RegisterApp;

export type AppState = { readonly status: 'unregistered' } | { readonly status: 'registered'; readonly secretHash: string };

export const appStreamName = (appId: string) => `app-${appId}`;

export const appDecider: Decider<AppCommand, AppEvent, AppState> = {
  initialState: () => ({ status: 'unregistered' }),

  evolve(state, event) {
    switch (event.type) {
      case 'AppRegistered':
      case 'AppSecretChanged':
        return { status: 'registered', secretHash: event.data.secretHash };
      default:
        return unreachable(event);
    }
  },

  decide(command, state) {
    switch (command.type) {
      case 'RegisterApp': {
        if (!AppId.is(command.appId)) throw new DomainError('invalid', `app id ${JSON.stringify(command.appId)} must be 1-64 letters, digits, '_', '.' or '-'`);
        if (state.status === 'unregistered') {
          return [{ type: 'AppRegistered', data: { appId: command.appId, secretHash: command.secretHash, registeredAt: command.now } }];
        }
        if (state.secretHash === command.secretHash) return [];
        return [{ type: 'AppSecretChanged', data: { appId: command.appId, secretHash: command.secretHash, changedAt: command.now } }];
      }
      default:
        return unreachable(command.type);
    }
  },
};
