import { buildBundles } from '../../sdk/build';

let built: Promise<void> | undefined;

/**
 * The SDK's bundles, built from the sources under test once per run, where herald serves them from
 * (sdk/dist/message_client.js); `npm test` on a fresh clone needs no build before it.
 */
export function ensureSdkBuilt(): Promise<void> {
  built ??= buildBundles().then(() => undefined);
  return built;
}
