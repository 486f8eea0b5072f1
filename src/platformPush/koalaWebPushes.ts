import { DomainError } from '../../domain/decider';
import { platformPushStreamName } from '../../domain/device/platformPush';
import {
  koalaWebPushPayload,
  koalaWebPushRequests,
  terminalKey,
  type KoalaPushedMessage,
  type KoalaWebPushCandidate,
} from '../../domain/message/koalaWebPush';
import { platformPushAggregate } from '../command/aggregates';
import { handleCommand, newStream } from '../command/commandHandler';
import type { TerminalPresence } from '../devices/presence';
import type { EventStore } from '../eventStore/eventStore';
import { BackgroundLoop } from '../runtime/backgroundLoop';
import type { Clock } from '../runtime/clock';
import type { Logger } from '../runtime/logger';
import type { Service } from '../runtime/services';
import type { PlatformNotification } from './platformPush';
import { WEB_PUSH_LIMITS } from './webPush';

/**
 * Koala's messages to users whose web terminals are closed (docs/platform-push.md, "Koala's web
 * terminals"), on the leader: a look after the last one over the messages the inbox read model delivered
 * (in `seq` order, a window of at most PAIRS_PER_LOOK message-and-recipient pairs), the recipients'
 * browser subscriptions (WEB devices whose alias is the user, of apps with a VAPID key pair), presence
 * asked once per app and look (TerminalPresence: a live GraphQL `messages` subscription on any node), and
 * a PlatformPushRequested appended per message and subscription of a user with none
 * (domain/message/koalaWebPush.ts decides). From there it is a platform push like any (the shared outbox
 * of src/platformPush/platformPusher.ts: its attempts, retries, outcomes, metrics and revocations), whose
 * attempt asks `notificationOf` here for the message instead of a ONE-PUSH push.
 *
 * Where the looks stand is kept in the database (herald_settings) once a look's requests are appended and
 * shown, so a restart or another leader neither skips a message nor requests one twice (the stream takes
 * one request whatever happens); the first look ever begins at the store's head (its history is not pushed).
 */

/** Messages' recipients looked at per look: a message to 1,000 users is one look, a broadcast costs its recipients, not more. */
export const PAIRS_PER_LOOK = 1000;
/** How often to look when nothing wakes it (a look that was full looks again at once). */
const LOOK_EVERY_MS = 500;
/** Requests appended at once (the store commits up to 256 streams a statement). */
const REQUESTS_AT_ONCE = 256;

/** What the trigger and the attempts read (projections/koalaWebPushes.ts). */
export interface KoalaWebPushQueries {
  /**
   * The delivered messages of `apps` with `seq` after `after` and at most `upTo`, in seq order, as many
   * as fill `pairs` recipients (at least one message): their recipients' current browser subscriptions
   * not requested yet (subscribed before the message, at most KOALA_WEB_PUSH_BROWSERS_PER_USER a user),
   * and the last seq of the window when it was full (undefined: it reached `upTo`).
   */
  window(
    apps: readonly string[],
    after: bigint,
    upTo: bigint,
    now: Date,
    pairs: number,
  ): Promise<{ readonly candidates: readonly KoalaWebPushCandidate[]; readonly fullThrough: bigint | undefined }>;
  /** Where the looks stand (undefined: no node ever looked), and recording it. */
  lookedThrough(): Promise<bigint | undefined>;
  recordLookedThrough(seq: bigint): Promise<void>;
  /** The message of the app as the socket gives it, and whether the user acknowledged it; undefined once pruned. */
  messageOf(
    messageId: string,
    appId: string,
    userId: string,
  ): Promise<{ readonly message: KoalaPushedMessage; readonly acknowledged: boolean } | undefined>;
}

/** What an attempt sends, or why it sends nothing (`retry`: it may change; else final). */
export type KoalaNotification =
  | { readonly ok: true; readonly notification: PlatformNotification }
  | { readonly ok: false; readonly error: string; readonly retry: boolean };

export class KoalaWebPushes implements Service {
  readonly name = 'Koala web pushes';
  private readonly loop = new BackgroundLoop(() => this.run());
  /** Where the last look's work ended; read from the database when leading begins. */
  private through: bigint | undefined;

  constructor(
    private readonly deps: {
      readonly store: EventStore;
      readonly queries: KoalaWebPushQueries;
      readonly terminals: Pick<TerminalPresence, 'onlineAmong'>;
      /** The apps with a VAPID key pair: only their messages are looked at. */
      readonly appsWithVapid: () => Promise<readonly string[]>;
      /**
       * The position every read model the look reads has passed (the inbox's, the devices' and the
       * platform pushes' — a browser subscribed just before a message is shown by the latter two): every
       * message with a seq up to it, and every subscription before it, is shown.
       */
      readonly shownThrough: () => bigint;
      /** Resolves once the platform-push read model shows this position (the next look does not find them again). */
      readonly readYourWrites: (position: bigint | undefined) => Promise<void>;
      /** The platform pushes' outbox: take what was just requested. */
      readonly requested: () => void;
      readonly clock: Clock;
      readonly log: Logger;
    },
  ) {}

  start(): void {
    // Leading anew: where the looks stand is read again (another node may have led meanwhile).
    this.through = undefined;
    this.loop.start();
  }

  async stop(): Promise<void> {
    await this.loop.stop();
  }

  /** Look now (a test moved the clock, a message was sent). */
  wake(): void {
    this.loop.wake();
  }

  private async run(): Promise<void> {
    while (this.loop.running) {
      let full = false;
      try {
        full = await this.look();
      } catch (error) {
        this.deps.log.error({ err: error }, "looking for Koala messages to users' browsers failed; retrying");
      }
      if (!full) await this.loop.wait(LOOK_EVERY_MS);
    }
  }

  /** One look; answers whether its window was full (look again at once). */
  private async look(): Promise<boolean> {
    const { store, queries, terminals, clock } = this.deps;
    // Read first: every message and subscription up to it is in the read models when the window is read.
    const upTo = this.deps.shownThrough();
    // Never looked (a new deployment, or one from before): what the store holds already is history, not pushed.
    const after = this.through ?? (await queries.lookedThrough()) ?? (await store.headPosition());
    if (after >= upTo) return this.moved(after, after);
    const apps = await this.deps.appsWithVapid();
    const now = clock();
    const window =
      apps.length === 0
        ? { candidates: [], fullThrough: undefined }
        : await queries.window(apps, after, upTo, now, PAIRS_PER_LOOK);
    // Presence once per app and look, for the users who have a subscribed browser only.
    const usersByApp = new Map<string, Set<string>>();
    for (const c of window.candidates) {
      const users = usersByApp.get(c.appId) ?? new Set<string>();
      usersByApp.set(c.appId, users.add(c.userId));
    }
    const online = new Set<string>();
    for (const [appId, users] of usersByApp)
      for (const userId of await terminals.onlineAmong(appId, [...users])) online.add(terminalKey(appId, userId));
    const requests = koalaWebPushRequests(window.candidates, online, now.toISOString());
    let last: bigint | undefined;
    // A transient append error fails the look: the cursor stays, the next look asks again (what was appended
    // is not requested twice: the stream takes one request). A request the decider refuses is refused
    // again every time: logged and skipped, so it never holds the cursor (nor every later message) back.
    for (let i = 0; i < requests.length; i += REQUESTS_AT_ONCE)
      for (const position of await Promise.all(
        requests.slice(i, i + REQUESTS_AT_ONCE).map(async (request) => {
          try {
            const result = await handleCommand(
              store,
              platformPushAggregate,
              platformPushStreamName(request.pushId, request.deviceId),
              request,
              { appId: request.appId, actor: 'herald:platform-push' },
              // Not requested yet as far as the read model knows: appended without a read (a conflict reads it).
              newStream(platformPushAggregate),
            );
            return result.position;
          } catch (error) {
            if (!(error instanceof DomainError)) throw error;
            this.deps.log.error(
              { err: error, messageId: request.pushId, deviceId: request.deviceId },
              "a Koala message's Web Push request was refused; skipped",
            );
            return undefined;
          }
        }),
      ))
        if (position !== undefined && (last === undefined || position > last)) last = position;
    if (last !== undefined) {
      await this.deps.readYourWrites(last);
      this.deps.requested();
    }
    return this.moved(after, window.fullThrough ?? upTo, window.fullThrough !== undefined);
  }

  /** The look's work is done: the cursor moves past its window, kept for the next leader. */
  private async moved(before: bigint, through: bigint, full = false): Promise<boolean> {
    if (through !== before || this.through === undefined) await this.deps.queries.recordLookedThrough(through);
    this.through = through;
    return full;
  }

  /**
   * The notification for a requested item (PlatformPushes' attempt, for an item with a `userId`): the
   * message as the terminal's socket gives it; nothing once the user acknowledged it (read on another
   * terminal) or opened a terminal (it gets it there: the SDK's pending replay), once the message expired,
   * or once retention removed it; while the inbox read model does not show it (rebuilding), a retry.
   */
  async notificationOf(item: {
    readonly pushId: string;
    readonly appId: string;
    readonly userId: string;
    readonly nativeToken: string;
    readonly expiresAt: string;
  }): Promise<KoalaNotification> {
    const final = (error: string): KoalaNotification => ({ ok: false, error, retry: false });
    const [found, online] = await Promise.all([
      this.deps.queries.messageOf(item.pushId, item.appId, item.userId),
      this.deps.terminals.onlineAmong(item.appId, [item.userId]),
    ]);
    // Not in the inbox read model: it is being rebuilt (a version's replay) or lags, so asked again later;
    // past the item's expiry (retention removes only ended messages), gone for good.
    if (!found)
      return Date.parse(item.expiresAt) <= this.deps.clock().getTime()
        ? final('AlreadyEnded: the message expired or was removed by retention')
        : { ok: false, error: 'NotShownYet: the message is not in the inbox read model (rebuilding?)', retry: true };
    if (found.acknowledged) return final('AlreadyDelivered: the user acknowledged it');
    if (online.size > 0) return final('AlreadyDelivered: the user has a live terminal');
    const { message } = found;
    if (message.expiresAt !== null && Date.parse(message.expiresAt) <= this.deps.clock().getTime())
      return final('AlreadyEnded: the message expired');
    return {
      ok: true,
      notification: {
        messageId: item.pushId,
        appId: item.appId,
        token: item.nativeToken,
        // Shown to the user: `Urgency: high`, as ONE-PUSH's MSG (webPush.ts urgencyOf).
        pushMsgType: 'MSG',
        alert: message.title,
        sound: null,
        badge: null,
        extra: null,
        tenantCode: '',
        needConfirm: false,
        expiresAt: new Date(item.expiresAt),
        payload: koalaWebPushPayload(message, WEB_PUSH_LIMITS.payloadBytes),
      },
    };
  }
}
