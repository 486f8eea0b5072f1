import { isOpen, type DeliveryStatus } from './device/delivery';
import { streamNameOf } from './streamName';

/**
 * How long herald keeps what has ended, per stream category (issue 26; docs/operations.md, "Retention").
 * One policy for every store: the read models prune by it, and the event store removes (archived first)
 * the streams of the rows they prune — PostgreSQL by deleting them, EventStoreDB through `$tb` and its
 * scavenge (src/storage/eventRetention.ts).
 *
 * A duration counts from the moment a record *ended* — a message's expiry, a delivery's confirmation,
 * drop or expiry, an email's sending, a report's forwarding — never from its creation, so nothing a seed
 * still promises is removable whatever the setting:
 *  - a Koala message with `expire` 0 is 永久有效 (000_…: "0:永久有效"): it never ends, so it is kept while
 *    its app wants it — forever unless the app (or the deployment, for apps that set nothing) says how
 *    long, counted from its sending (APP_RETENTION_CATEGORIES below); so are datahub notifications;
 *  - a ONE-PUSH needConfirm message is re-sent until its `duration` (003_…): its delivery is open until
 *    confirmed or expired, and an open delivery is never removable;
 *  - a topvdn flag 2 message is tried 5 times, then dropped (002_…): removable only once dropped;
 *  - an RTIO report not yet forwarded, an email not yet sent: pending, never removable;
 *  - an RTIO call ends at its `time_live` (at most 30 s, 004_…), a ticket at its expiry: both are bounded
 *    when they begin, so their end is known from their first event (projections/streamEnds.ts).
 */

export const RETENTION_CATEGORIES = [
  'messages',
  'deliveries',
  'pushes',
  'rtioCalls',
  'rtioReports',
  'emails',
  'inboxes',
  'tickets',
  'unexpiringMessages',
  'datahubNotifications',
] as const;
export type RetentionCategory = (typeof RETENTION_CATEGORIES)[number];

/** Milliseconds a record is kept after it ended; `'forever'`: never removed. */
export type Keep = number | 'forever';
export type RetentionPolicy = Readonly<Record<RetentionCategory, Keep>>;

const DAY_MS = 24 * 3600_000;

/**
 * The defaults: a week after the end for what analysts and support look at (a push's outcome, an
 * email's, a report's), a day for RTIO calls (their caller waited at most 30 s: 004_…), a month for
 * tickets (a ticket lives at most 30 days: HERALD_TICKET_TTL_SECONDS). `inboxes` is decoded and shown
 * but not applied: an inbox's clears stay (RETIRED_STREAM_PREFIXES).
 */
export const DEFAULT_RETENTION: RetentionPolicy = {
  messages: 7 * DAY_MS,
  deliveries: 7 * DAY_MS,
  pushes: 7 * DAY_MS,
  rtioCalls: DAY_MS,
  rtioReports: 7 * DAY_MS,
  emails: 7 * DAY_MS,
  inboxes: 30 * DAY_MS,
  tickets: 30 * DAY_MS,
  unexpiringMessages: 'forever',
  datahubNotifications: 'forever',
};

/**
 * The records that never end (a Koala message with `expire` 0, 永久有效; a datahub notification: 001_… gives
 * it no end) are kept "while the app wants it" (issue 26): each app may set how long, counted from the
 * record's creation (its sending), and an app that sets nothing follows the deployment's
 * `HERALD_RETENTION_UNEXPIRING_MESSAGES` / `HERALD_RETENTION_DATAHUB_NOTIFICATIONS` — `forever` unless
 * the operator says otherwise, so the seed's promise holds by default.
 */
export const APP_RETENTION_CATEGORIES = ['unexpiringMessages', 'datahubNotifications'] as const;
export type AppRetentionCategory = (typeof APP_RETENTION_CATEGORIES)[number];

/** An app's own settings: a category absent follows the deployment's default. */
export type AppRetention = Readonly<Partial<Record<AppRetentionCategory, Keep>>>;

/** What ended before this instant is past retention at `now`; undefined when nothing of the category ever is. */
export function retentionCutoff(now: Date, keep: Keep): Date | undefined {
  return keep === 'forever' ? undefined : new Date(now.getTime() - keep);
}

/**
 * `<n>s|m|h|d` (or `0`) as milliseconds, or `forever`; undefined for anything else. At most 100 years.
 */
export function parseKeep(text: string): Keep | undefined {
  if (text === 'forever') return 'forever';
  if (text === '0') return 0;
  const match = /^(\d{1,6})(s|m|h|d)$/.exec(text);
  if (!match) return undefined;
  const unit = { s: 1000, m: 60_000, h: 3600_000, d: DAY_MS }[match[2] as 's' | 'm' | 'h' | 'd'];
  const ms = Number(match[1]) * unit;
  return ms <= 36_500 * DAY_MS ? ms : undefined;
}

/** The rules, one per kind of record a read model keeps; the projections' SQL says the same (tested against these). */

/**
 * A delivery has ended when nothing more can happen to it (not `isOpen`): confirmed, dropped, expired, or
 * written to a device that was not asked to confirm. A delivered `needConfirm` one is still open (re-sent
 * until its duration), whatever the setting.
 */
export const deliveryRemovable = (
  d: { readonly status: DeliveryStatus; readonly needsConfirm: boolean; readonly updatedAt: Date },
  cutoff: Date,
): boolean => !isOpen(d.status, d.needsConfirm) && d.updatedAt < cutoff;

/** A Koala message ends at its expiry; one without (`expire` 0) never ends, one still scheduled has not begun. */
export const messageRemovable = (
  m: { readonly status: 'scheduled' | 'delivered' | 'expired'; readonly expiresAt: Date | null },
  cutoff: Date,
): boolean => m.status !== 'scheduled' && m.expiresAt !== null && m.expiresAt < cutoff;

/**
 * A Koala message without expiry goes when its app's setting (`cutoff`: its own, else the deployment's)
 * says, counted from its sending — acknowledged or not (the app decided). One still scheduled has not
 * been sent: never.
 */
export const unexpiringMessageRemovable = (
  m: {
    readonly status: 'scheduled' | 'delivered' | 'expired';
    readonly expiresAt: Date | null;
    readonly sentAt: Date | null;
  },
  cutoff: Date,
): boolean => m.status === 'delivered' && m.expiresAt === null && m.sentAt !== null && m.sentAt < cutoff;

/**
 * A push has ended once none of its deliveries is kept (each was removed past its own end): it goes with
 * its last, if it was requested before the cutoff (a push that reached no device, after the same time).
 */
export const pushRemovable = (
  p: { readonly requestedAt: Date; readonly deliveriesKept: number },
  cutoff: Date,
): boolean => p.deliveriesKept === 0 && p.requestedAt < cutoff;

/**
 * A platform push (APNs/FCM, issue 25) goes with its delivery: once its attempts are over (sent, or failed
 * for good) and its message has expired — the delivery is open no longer (its candidacy ends at the
 * expiry), so the leader cannot find it again and ask for a push its stream already refuses. The expiry
 * is the row's own (a rebuild prunes a table alone). A Koala message's push to a browser (no delivery) ends
 * the same way: its expiry is at most 28 days after the message (domain/message/koalaWebPush.ts), and
 * nothing asks for it again after it.
 */
export const platformPushRemovable = (
  p: { readonly status: 'pending' | 'sent' | 'failed'; readonly expiresAt: Date },
  cutoff: Date,
): boolean => p.status !== 'pending' && p.expiresAt < cutoff;

/** An email ends when it is sent (a failed one is kept for the operator), a report when it is forwarded. */
export const emailRemovable = (e: { readonly status: string; readonly updatedAt: Date }, cutoff: Date): boolean =>
  e.status === 'sent' && e.updatedAt < cutoff;

export const reportRemovable = (r: { readonly status: string; readonly updatedAt: Date }, cutoff: Date): boolean =>
  r.status === 'forwarded' && r.updatedAt < cutoff;

/**
 * A stream whose end is fixed when it begins (projections/streamEnds.ts): an RTIO call at its expiry (its
 * caller waited at most `time_live`), a call's nonce at its use plus the longest `time_live`, a ticket at
 * its expiry (verifying one never reads its stream).
 */
export const streamEndRemovable = (s: { readonly endsAt: Date }, cutoff: Date): boolean => s.endsAt < cutoff;

/** `keep` as HERALD_RETENTION_* takes it (the largest whole unit). */
export function formatKeep(keep: Keep): string {
  if (keep === 'forever' || keep === 0) return String(keep);
  const unit = (['d', 'h', 'm', 's'] as const).find(
    (u) => keep % { d: DAY_MS, h: 3600_000, m: 60_000, s: 1000 }[u] === 0,
  );
  if (unit === undefined) return `${keep / 1000}s`;
  return `${keep / { d: DAY_MS, h: 3600_000, m: 60_000, s: 1000 }[unit]}${unit}`;
}

/**
 * The retention category of a stream, by its name's prefix (`message-…`, `rtio-report-…`; herald storage
 * status); undefined for streams that do not end (apps, devices, whitelist applications, item
 * owners), for inboxes (their clears are kept: RETIRED_STREAM_PREFIXES) and for a
 * user's reads of site broadcasts (`broadcast-read-…`, kept as long as the broadcast, which
 * has no end: dropped earlier, a rebuild would show it unread again): they are kept.
 */
export const STREAM_CATEGORIES: Readonly<Record<string, RetentionCategory>> = {
  message: 'messages',
  delivery: 'deliveries',
  push: 'pushes',
  'rtio-call': 'rtioCalls',
  // A call's nonce goes with the call; a `create_device`'s stays with its device.
  'rtio-nonce': 'rtioCalls',
  'rtio-report': 'rtioReports',
  email: 'emails',
  // Not `inbox`: its clears are kept (RETIRED_STREAM_PREFIXES), so it shows as kept, not as `inboxes`' duration.
  // `platformpush-<pushId>.<deviceId>`: a delivery's way through APNs/FCM/Web Push (issue 25), with its delivery.
  platformpush: 'deliveries',
  ticket: 'tickets',
  notification: 'datahubNotifications',
};

/**
 * The cutoff for an app's record of `category` at `now`: the app's own setting, else the deployment's
 * (`policy`); undefined when it is kept forever.
 */
export function appCutoff(
  now: Date,
  category: AppRetentionCategory,
  app: AppRetention | undefined,
  policy: RetentionPolicy,
): Date | undefined {
  return retentionCutoff(now, app?.[category] ?? policy[category]);
}

/**
 * The streams the event store removes (archived first) once a read model's pruning has retired them: the
 * pruned row's own stream — `message-…`, `delivery-…`, `push-…`, `platformpush-…` (with its push: see
 * projections/platformPushes.ts), `rtio-report-…`, `email-…`, a datahub `notification-…` (with its last
 * receiver's row, when its app's retention says), and from `stream_ends` `rtio-call-…`,
 * `rtio-nonce-…` and `ticket-…`. The pruning decides the end (the rules above), so the event store
 * re-derives nothing. Kept: what never ends (apps, devices, RTIO devices, a user's reads of site
 * broadcasts, whitelist applications, item owners) and `inbox-…` (one event per stats clear, its last one
 * its state: docs/operations.md, "Retention").
 */
export const RETIRED_STREAM_PREFIXES = [
  'message-',
  'delivery-',
  'push-',
  'platformpush-',
  'rtio-report-',
  'rtio-call-',
  'rtio-nonce-',
  'email-',
  'ticket-',
  'notification-',
] as const;

export const isRetirable = (streamName: string): boolean =>
  RETIRED_STREAM_PREFIXES.some((prefix) => streamName.startsWith(prefix));

/**
 * A batch's streams in the order they leave the store: every `push-…` before any `delivery-…`. A push's
 * delivery streams retire with it (projections/devices.ts), and a replay of a push kept without one of
 * its deliveries would bring that delivery back open — and send it again; a push removed first, its
 * deliveries kept a while, replays as nothing (no push, no rows for their events to update). A pass
 * stopped between batches or inside one (EventStoreDB removes stream by stream) so never splits them
 * the dangerous way round.
 */
export const inRemovalOrder = (streams: readonly string[]): string[] =>
  [...streams].sort(
    (a, b) => Number(a.startsWith('delivery-')) - Number(b.startsWith('delivery-')) || (a < b ? -1 : a > b ? 1 : 0),
  );

/**
 * `held` and, of `streams`, the deliveries of every push in `held`: a push that must stay (events past the
 * bound) keeps its deliveries too, for the reason `inRemovalOrder` gives.
 */
export function withDeliveriesOf(held: ReadonlySet<string>, streams: readonly string[]): Set<string> {
  // A delivery's stream is `delivery-<pushId>.<deviceId>` with the push id encoded (domain/streamName.ts),
  // so the held pushes' ids are compared encoded the same way.
  const pushes = new Set(
    [...held].filter((s) => s.startsWith('push-')).map((s) => streamNameOf('delivery', s.slice('push-'.length), '')),
  );
  if (pushes.size === 0) return new Set(held);
  const prefixOf = (delivery: string) => delivery.slice(0, delivery.indexOf('.') + 1);
  return new Set([...held, ...streams.filter((s) => s.startsWith('delivery-') && pushes.has(prefixOf(s)))]);
}

/**
 * How far the event store may remove a retired stream's events: up to the store's head when the pass
 * began, and never past a projection's checkpoint — an event a projection has not applied yet stays
 * (one lagging or being replayed would otherwise miss it). -1n: nothing may go.
 */
export function removableUpTo(head: bigint, checkpoints: readonly bigint[]): bigint {
  return checkpoints.reduce((lowest, c) => (c < lowest ? c : lowest), head);
}
