import { scryptSync, timingSafeEqual } from 'node:crypto';

/**
 * App secrets are stored as scrypt hashes. The salt is derived from the app id, so hashing the same
 * secret again gives the same hash: registering an app twice with one secret is then a no-op.
 */
export function hashAppSecret(appId: string, secret: string): string {
  return 'scrypt:' + scryptSync(secret, `herald-app:${appId}`, 32).toString('base64url');
}

export function verifyAppSecret(appId: string, secret: string, secretHash: string): boolean {
  const expected = Buffer.from(secretHash);
  const actual = Buffer.from(hashAppSecret(appId, secret));
  return expected.length === actual.length && timingSafeEqual(expected, actual);
}
