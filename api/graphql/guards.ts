import { GraphQLError } from 'graphql';
import { HeraldError, type HeraldErrorCode } from '../../domain/heraldError';
import { characterCount, isStorableText } from '../../domain/text';
import type { DeviceView } from '../../src/devices/deviceQueries';
import type { Viewer } from '../../src/identity/tickets';

/**
 * What every GraphQL resolver checks before and after it runs: who calls (asUser, asDevice,
 * asRtioDevice: one kind of caller per field), its arguments' common shapes (badInput, filterText), and
 * herald's errors as typed GraphQL errors (guard, by GRAPHQL_CODES). The resolvers themselves are in
 * resolvers.ts (Koala's messages and datahub's notifications), deviceResolvers.ts, rtioResolvers.ts and
 * eventResolvers.ts.
 */

/** An RTIO device (shared/seeds/004_e2f5c37d54658cec.txt), authenticated by its device_id and device_key. */
export interface RtioDevicePrincipal {
  readonly deviceId: string;
  readonly appId: string;
}

/**
 * Who calls: a user (a ticket: `viewer`), a ONE-PUSH device (a device token: `device`) or an RTIO
 * device (its id and key: `rtioDevice`), only ever one of them. User fields take the first, device
 * fields the second, RTIO device fields the third (`asUser`, `asDevice`, `asRtioDevice`).
 */
export interface GraphqlContext extends Record<PropertyKey, unknown> {
  readonly viewer?: Viewer;
  readonly device?: DeviceView;
  readonly rtioDevice?: RtioDevicePrincipal;
  /** graphql-ws `connectionParams.since`: the last seq the client saw before reconnecting. */
  readonly since?: unknown;
  /** graphql-ws `connectionParams.pending`: without `since`, start with the user's unacknowledged messages (a terminal's first connect). */
  readonly pending?: unknown;
}

/** The context of a user field: the ticket's user is there. */
export type UserContext = GraphqlContext & { readonly viewer: Viewer };
/** The context of a device field: the device token's device is there. */
export type DeviceContext = GraphqlContext & { readonly device: DeviceView };
/** The context of an RTIO device field: the RTIO device is there. */
export type RtioDeviceContext = GraphqlContext & { readonly rtioDevice: RtioDevicePrincipal };

export function badInput(message: string): GraphQLError {
  return new GraphQLError(message, { extensions: { code: 'BAD_USER_INPUT' } });
}

export const forbidden = (message: string) => new GraphQLError(message, { extensions: { code: 'FORBIDDEN' } });
export const notFound = (message: string) => new GraphQLError(message, { extensions: { code: 'NOT_FOUND' } });

/** An optional text argument: absent, or 1-`maxLength` characters of storable text (BAD_USER_INPUT otherwise). */
export function filterText(field: string, value: string | null | undefined, maxLength: number): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (value.length === 0 || characterCount(value) > maxLength || !isStorableText(value))
    throw badInput(`${field} must be 1-${maxLength} characters of text`);
  return value;
}

/**
 * A user field: refuses a device token and an RTIO device (FORBIDDEN), and a context without a user (UNAUTHENTICATED; the
 * servers let none through, but a field never reads a missing viewer). Checked before the resolver
 * runs, also a subscription's `subscribe`, whose throw graphql turns into the operation's error.
 */
export function asUser<Parent, Args, R>(
  resolver: (parent: Parent, args: Args, context: UserContext) => R,
): (parent: Parent, args: Args, context: GraphqlContext) => R {
  return (parent, args, context) => {
    if (context.viewer) return resolver(parent, args, context as UserContext);
    if (context.device)
      throw new GraphQLError('this field is for users: authenticate with a ticket, not a device token', {
        extensions: { code: 'FORBIDDEN' },
      });
    if (context.rtioDevice)
      throw new GraphQLError('this field is for users: authenticate with a ticket, not an RTIO device key', {
        extensions: { code: 'FORBIDDEN' },
      });
    throw new GraphQLError('send a ticket as Authorization: Bearer <ticket>', {
      extensions: { code: 'UNAUTHENTICATED' },
    });
  };
}

/** A device field: refuses a ticket and an RTIO device (FORBIDDEN); see asUser. */
export function asDevice<Parent, Args, R>(
  resolver: (parent: Parent, args: Args, context: DeviceContext) => R,
): (parent: Parent, args: Args, context: GraphqlContext) => R {
  return (parent, args, context) => {
    if (context.device) return resolver(parent, args, context as DeviceContext);
    if (context.viewer)
      throw new GraphQLError('this field is for devices: authenticate with a device token, not a ticket', {
        extensions: { code: 'FORBIDDEN' },
      });
    if (context.rtioDevice)
      throw new GraphQLError('this field is for ONE-PUSH devices (a device token), not RTIO devices', {
        extensions: { code: 'FORBIDDEN' },
      });
    throw new GraphQLError('send a device token as Authorization: Bearer <deviceToken>', {
      extensions: { code: 'UNAUTHENTICATED' },
    });
  };
}

/** An RTIO device field: refuses a ticket and a ONE-PUSH device token (FORBIDDEN); see asUser. */
export function asRtioDevice<Parent, Args, R>(
  resolver: (parent: Parent, args: Args, context: RtioDeviceContext) => R,
): (parent: Parent, args: Args, context: GraphqlContext) => R {
  return (parent, args, context) => {
    if (context.rtioDevice) return resolver(parent, args, context as RtioDeviceContext);
    if (context.viewer || context.device) {
      throw new GraphQLError(
        'this field is for RTIO devices: authenticate with connectionParams { rtioDeviceId, rtioDeviceKey } (HTTP: Authorization: RtioDevice <device_id>:<device_key>)',
        { extensions: { code: 'FORBIDDEN' } },
      );
    }
    throw new GraphQLError("send the RTIO device's credentials as Authorization: RtioDevice <device_id>:<device_key>", {
      extensions: { code: 'UNAUTHENTICATED' },
    });
  };
}

/** Maps herald's errors to typed GraphQL errors; anything unexpected is left for formatError to mask. */
export function guard<Args extends unknown[], R>(
  resolver: (...args: Args) => Promise<R>,
): (...args: Args) => Promise<R> {
  return async (...args) => {
    try {
      return await resolver(...args);
    } catch (error) {
      throw toGraphqlError(error);
    }
  };
}

/**
 * GraphQL's `extensions.code` for each HeraldError code, and the `reason` a refused ticket adds. A
 * `retryAfterSeconds` the error carries (rate limited, busy) goes with it: nothing was changed, the client
 * sends the request again then.
 */
export const GRAPHQL_CODES: Readonly<Record<HeraldErrorCode, { readonly code: string; readonly reason?: string }>> = {
  invalid: { code: 'BAD_USER_INPUT' },
  not_found: { code: 'NOT_FOUND' },
  forbidden: { code: 'FORBIDDEN' },
  conflict: { code: 'CONFLICT' },
  expired: { code: 'NOT_FOUND' },
  unauthenticated: { code: 'UNAUTHENTICATED' },
  ticket_malformed: { code: 'UNAUTHENTICATED', reason: 'malformed' },
  ticket_expired: { code: 'UNAUTHENTICATED', reason: 'expired' },
  ticket_revoked: { code: 'UNAUTHENTICATED', reason: 'revoked' },
  unknown_app: { code: 'UNAUTHENTICATED' },
  wrong_secret: { code: 'UNAUTHENTICATED' },
  rate_limited: { code: 'RATE_LIMITED' },
  busy: { code: 'BUSY' },
};

/** A HeraldError as a typed GraphQL error (GRAPHQL_CODES); anything else is returned as it is. */
export function toGraphqlError(error: unknown): unknown {
  if (!(error instanceof HeraldError)) return error;
  const { code, reason } = GRAPHQL_CODES[error.code];
  return new GraphQLError(error.message, {
    extensions: {
      code,
      ...(reason !== undefined && { reason }),
      ...(error.retryAfterSeconds !== undefined && { retryAfterSeconds: error.retryAfterSeconds }),
    },
  });
}
