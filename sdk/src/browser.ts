// The script-tag build: esbuild exposes these as the global `message_client` (Koala's name), so a page
// calls `message_client.open({ url, ticket, onMessage })` as it did with Koala's SDK.
import { koalaModule } from './messageClient.js';

export { MessageClientError } from './messageClient.js';
export { subscribeWebPush } from './webPush.js';
export const { open, acknowledge, sendMessage, close } = koalaModule();
