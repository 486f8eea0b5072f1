import { GraphQLError } from 'graphql';
import { RTIO_LIMITS } from '../../domain/rtio/rtio';
import { isStorableText } from '../../domain/text';
import type { RtioConnection } from '../../src/rtio/deviceCalls';
import { closable } from './closable';
import { ConnectionStream } from './connectionStream';
import { asRtioDevice, badInput, guard, type RtioDeviceContext } from './guards';
import type { GraphqlDeps } from './resolvers';

/**
 * The RTIO device side of GraphQL (docs/api/graphql.md, "RTIO devices"; docs/api/rtio.md, "Over
 * GraphQL"): a device of RTIO device RPC (shared/seeds/004_e2f5c37d54658cec.txt), authenticated by its
 * device_id and device_key, receives the calls of `/call/send` as the `deviceCalls` subscription,
 * answers them with `replyToCall`, and sends reports with `report`. The same service serves the plain
 * `/rtio.ws` socket: src/rtio/deviceCalls.ts. These fields take only an RTIO device (asRtioDevice); every
 * other field refuses one.
 */

/** Calls buffered for a device that does not read them; past this the subscription is cut off. */
export const MAX_BUFFERED_CALLS = 100;

/** A call as the subscription pushes it (RtioCall in schema.graphql). */
interface RtioCallPayload {
  readonly callId: string;
  readonly message: string;
  readonly timeLive: number;
}

export function rtioResolvers(deps: GraphqlDeps) {
  return {
    Mutation: {
      replyToCall: asRtioDevice(
        guard(
          async (
            _: unknown,
            args: { callId: string; code: number; message: string },
            { rtioDevice }: RtioDeviceContext,
          ) => {
            if (Buffer.byteLength(args.message, 'utf8') > RTIO_LIMITS.messageBytes || !isStorableText(args.message)) {
              throw badInput(`message must be at most ${RTIO_LIMITS.messageBytes} bytes of text`);
            }
            // A reply to no call of this device that is waiting (it timed out, or never was): NOT_FOUND.
            deps.rtio.reply(rtioDevice.deviceId, args.callId, { code: args.code, message: args.message });
            return true;
          },
        ),
      ),
      report: asRtioDevice(
        guard(async (_: unknown, { message }: { message: string }, { rtioDevice }: RtioDeviceContext) => {
          if (Buffer.byteLength(message, 'utf8') > RTIO_LIMITS.reportBytes || !isStorableText(message)) {
            throw badInput(`message must be at most ${RTIO_LIMITS.reportBytes} bytes of text`);
          }
          return deps.rtio.report(rtioDevice, message);
        }),
      ),
    },
    Subscription: {
      deviceCalls: {
        subscribe: asRtioDevice((_: unknown, __: unknown, context: RtioDeviceContext) =>
          closable((signal) => rtioCalls(deps, context, signal)),
        ),
        resolve: (call: RtioCallPayload) => call,
      },
    },
  };
}

/**
 * How the device's connection was closed by Rtio ends the subscription: a newer connection of the
 * device (4409) is REPLACED; herald stopping (1001) completes it (the socket closes too).
 */
function endingOf(ended: { code: number; reason: string }): GraphQLError | undefined {
  if (ended.code === 4409)
    return new GraphQLError(`the device connected again: ${ended.reason}`, { extensions: { code: 'REPLACED' } });
  if (ended.code === 1001) return undefined;
  return new GraphQLError(ended.reason || 'the device was disconnected', {
    extensions: { code: 'DISCONNECTED', closeCode: ended.code },
  });
}

/**
 * The device's calls: this subscription is the device's connection to Rtio (as a /rtio.ws socket is)
 * for as long as it runs — a newer connection, on either, replaces it. A call is taken into the buffer
 * and pushed in order; a device that lets MAX_BUFFERED_CALLS pile up is cut off (SUBSCRIBER_TOO_SLOW)
 * and disconnected at once, so later calls find it offline. Once the subscription has ended, a call is
 * refused (Rtio answers the caller "offline" at once instead of waiting out time_live).
 */
async function* rtioCalls(
  deps: GraphqlDeps,
  { rtioDevice }: RtioDeviceContext,
  signal: AbortSignal,
): AsyncGenerator<RtioCallPayload> {
  let disconnect: (() => void) | undefined;
  const disconnectOnce = () => {
    disconnect?.();
    disconnect = undefined;
  };
  // Overflowing, the device goes offline at once: its further calls fail rather than wait.
  const stream = new ConnectionStream<RtioCallPayload & { readonly deadline: number }>(
    signal,
    MAX_BUFFERED_CALLS,
    disconnectOnce,
  );
  const connection: RtioConnection = {
    // A fresh object per call: sharedSubscription keys its shared results on the payload object.
    call: (call) =>
      stream.offer({
        callId: call.callId,
        message: call.message,
        timeLive: call.timeLiveSeconds,
        deadline: Date.now() + call.timeLiveSeconds * 1000,
      }),
    close: (code, reason) => stream.close(code, reason),
  };
  disconnect = deps.rtio.connect(rtioDevice.deviceId, connection);
  try {
    // Calls taken before the end still go out (their callers wait for them); then the end.
    for await (const { deadline, ...call } of stream.items(
      () =>
        new GraphQLError(`the device let ${MAX_BUFFERED_CALLS} calls pile up unread`, {
          extensions: { code: 'SUBSCRIBER_TOO_SLOW' },
        }),
      endingOf,
    )) {
      // Its caller has been answered (timeout) already: a reply would not be taken.
      if (Date.now() >= deadline) continue;
      yield call;
    }
  } finally {
    disconnectOnce();
  }
}
