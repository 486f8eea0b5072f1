import { scrypt, scryptSync, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';

/**
 * App secrets are stored as scrypt hashes. The salt is derived from the app id, so hashing the same
 * secret again gives the same hash: registering an app twice with one secret is then a no-op.
 */
export function hashAppSecret(appId: string, secret: string): string {
  return encode(scryptSync(secret, salt(appId), KEY_LENGTH));
}

const scryptAsync = promisify(scrypt) as (password: string, salt: string, keyLength: number) => Promise<Buffer>;

/**
 * Off the event loop (libuv's thread pool): scrypt costs tens of milliseconds by design, and a ticket
 * request, right or wrong, must not stall every other request for that long.
 */
export async function verifyAppSecret(appId: string, secret: string, secretHash: string): Promise<boolean> {
  const expected = Buffer.from(secretHash);
  const actual = Buffer.from(encode(await scryptAsync(secret, salt(appId), KEY_LENGTH)));
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}

const KEY_LENGTH = 32;
const salt = (appId: string) => `herald-app:${appId}`;
const encode = (key: Buffer) => 'scrypt:' + key.toString('base64url');
