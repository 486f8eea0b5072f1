import { koalaModule } from './messageClient.js';
import { subscribeWebPush } from './webPush.js';

export { open, toWebSocketUrl, MessageClientError } from './messageClient.js';
export { subscribeWebPush } from './webPush.js';
export type { WebPushOptions, WebPushSubscribed } from './webPush.js';
export type {
  ConnectionState,
  Disconnection,
  MessageClient,
  MessageClientEvents,
  OpenOptions,
  RecoveryImpossible,
  TicketSource,
} from './messageClient.js';
export type { ITerminal, Message_t, MessageContext, MessageMeta_t, Properties_t } from './message.js';
export type { Backoff } from './backoff.js';

/**
 * Koala's module, by its name: `message_client.open({ url, ticket, onMessage })` (or Koala's own
 * `{ mas_url, token, ping, onMessage, onError }`), then `acknowledge(seqs)`, `sendMessage(target, title,
 * content)`, `close()`; and `subscribeWebPush({ url, ticket, serviceWorker })` for Web Push.
 */
export const message_client = { ...koalaModule(), subscribeWebPush };
