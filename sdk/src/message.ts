/**
 * Koala's message types (shared/seeds/000_83e3b79cc88886e5.txt, "2.2 通知消息规格"), as herald pushes
 * them: `MessageMeta_t` and `Message_t`, plus the message's `id` (what acknowledging takes) and its
 * expiry.
 */

export interface MessageMeta_t {
  /** The app id. */
  readonly realm: string;
  /** The message's position in this user's deliveries: a decimal integer, increasing. */
  readonly seq: string;
  /** The sending user's id. */
  readonly sender: string;
  /** When it was sent (ISO 8601, UTC). */
  readonly stime: string;
}

/** Koala's Properties_t: string values, carried as the sender gave them. */
export type Properties_t = Readonly<Record<string, string>>;

export interface Message_t {
  /** What `ctx.ack()` and `client.ack(ids)` acknowledge. */
  readonly id: string;
  readonly meta: MessageMeta_t;
  readonly title: string;
  readonly content: string;
  /** `{}` when the sender gave none. */
  readonly props: Properties_t;
  /** When the message stops being valid (ISO 8601); null: never. */
  readonly expiresAt: string | null;
}

/** What `onMessage` can do with the message it is given. */
export interface MessageContext {
  /**
   * Acknowledges the message (GraphQL `acknowledge`); resolves with how many were newly acknowledged:
   * 1, or 0 when it was acknowledged already. Sent over the open socket; if the socket drops before the
   * answer it is sent again once reconnected (a repeat is harmless).
   */
  ack(): Promise<number>;
}

/** Koala's ITerminal: the application's receiver of pushed messages. */
export interface ITerminal {
  onMessage(message: Message_t, ctx: MessageContext): void | Promise<void>;
}

/** Compares two seqs (decimal integers without leading zeros, of any length): <0, 0, >0. */
export function compareSeq(a: string, b: string): number {
  if (a.length !== b.length) return a.length - b.length;
  return a < b ? -1 : a > b ? 1 : 0;
}
