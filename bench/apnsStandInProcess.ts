import { createPublicKey } from 'node:crypto';
import { startApnsStandIn } from '../test/support/apnsStandIn';

/**
 * The APNs stand-in (test/support/apnsStandIn.ts, a TEST DOUBLE) in a process of its own for
 * bench/platformPush.ts, so its CPU is neither herald's nor the bench's. Takes the provider key from
 * BENCH_APNS_KEY (JSON {keyPem, keyId, teamId, topic}); sends {url, caFile} once listening; answers
 * {type: 'stats'} with what it received: requests, 200s, distinct tokens and apns-ids answered 200, the
 * tokens answered 200 more than once, the first and last request (epoch ms), sessions and peak streams.
 */
async function main() {
  const key = JSON.parse(process.env.BENCH_APNS_KEY ?? '{}') as {
    keyPem: string;
    keyId: string;
    teamId: string;
    topic: string;
  };
  const standIn = await startApnsStandIn([{ ...key, publicKey: createPublicKey(key.keyPem) }]);
  process.on('message', (message: { type: string; since?: number }) => {
    if (message.type !== 'stats') return;
    const seen = standIn.requests.filter((r) => r.at >= (message.since ?? 0));
    const ok = seen.filter((r) => r.status === 200);
    const perToken = new Map<string, number>();
    for (const r of ok) perToken.set(r.token, (perToken.get(r.token) ?? 0) + 1);
    const statuses: Record<string, number> = {};
    for (const r of seen) statuses[r.status] = (statuses[r.status] ?? 0) + 1;
    process.send!({
      requests: seen.length,
      ok: ok.length,
      tokens: perToken.size,
      ids: new Set(ok.map((r) => r.headers['apns-id'])).size,
      repeatedTokens: [...perToken.values()].filter((n) => n > 1).length,
      statuses,
      firstAt: seen[0]?.at ?? null,
      lastAt: seen.at(-1)?.at ?? null,
      sessions: standIn.sessions,
      peakStreams: standIn.peakStreams,
    });
  });
  process.send!({ url: standIn.url, caFile: standIn.caFile, ca: standIn.ca });
  process.on('disconnect', () => void standIn.close().finally(() => process.exit(0)));
}

void main();
