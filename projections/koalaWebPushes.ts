import type { Pool } from 'pg';
import { KOALA_WEB_PUSH_BROWSERS_PER_USER, type KoalaWebPushCandidate } from '../domain/message/koalaWebPush';
import type { KoalaWebPushQueries } from '../src/platformPush/koalaWebPushes';

/**
 * What the leader reads for Koala's messages to users' browsers (src/platformPush/koalaWebPushes.ts),
 * read only, from the inbox read model (projections/koalaInbox.ts: `notification_messages`,
 * `notifications`), the devices one (`devices`: a browser is a WEB device whose alias is the user) and the
 * platform-push one (`web_push_subscriptions`, `revoked_native_tokens`, `platform_pushes`). No table of
 * its own: the requests are platform pushes (`platform_pushes` rows, pruned with them), and where the looks
 * stand is one `herald_settings` value.
 */

const LOOKED_THROUGH = 'koala_web_push_looked_through';

interface WindowRow {
  message_id: string;
  seq: string;
  recipients: number;
}

interface CandidateRow {
  message_id: string;
  app_id: string;
  user_id: string;
  sent_at: Date;
  expires_at: Date | null;
  device_id: string;
  registration: number;
  subscription: string;
  subscription_expires_at: Date | null;
}

export function koalaWebPushQueries(pool: Pool): KoalaWebPushQueries {
  return {
    async window(apps, after, upTo, now, pairs) {
      // The next messages of each app by its (app_id, seq) index, merged in seq order: at most `pairs` per
      // app, as no message has none recipient. Unnamed: planned on the tables as they are.
      const { rows } = await pool.query<WindowRow>({
        text: `
          SELECT m.message_id, m.seq::text AS seq, cardinality(m.recipients) AS recipients
            FROM unnest($1::text[]) a(app_id)
            CROSS JOIN LATERAL (SELECT message_id, seq, recipients FROM notification_messages
                                 WHERE app_id = a.app_id AND status = 'delivered' AND seq > $2 AND seq <= $3
                                 ORDER BY seq LIMIT $4) m
           ORDER BY m.seq LIMIT $4`,
        values: [apps, after.toString(), upTo.toString(), pairs],
      });
      // As many messages as fill `pairs` recipients, at least one (a message has at most 1,000).
      const taken: WindowRow[] = [];
      let counted = 0;
      for (const row of rows) {
        if (taken.length > 0 && counted + row.recipients > pairs) break;
        taken.push(row);
        counted += row.recipients;
      }
      const full = taken.length < rows.length || rows.length === pairs;
      const last = taken[taken.length - 1];
      if (!last) return { candidates: [], fullThrough: undefined };
      const { rows: candidates } = await pool.query<CandidateRow>({
        text: `
          SELECT m.message_id, m.app_id, r.user_id, m.sent_at, m.expires_at,
                 s.device_id, s.registration, s.subscription, s.expires_at AS subscription_expires_at
            FROM notification_messages m
            CROSS JOIN LATERAL unnest(m.recipients) r(user_id)
            CROSS JOIN LATERAL (
              -- The user's browsers: WEB devices of the message's app whose alias is the user and whose
              -- subscription that user gave with their own ticket (user_id: an alias alone is anyone's claim),
              -- subscribed before the message was delivered, their token not revoked, the newest first.
              SELECT d.device_id, w.registration, w.subscription, w.expires_at
                FROM devices d
                JOIN web_push_subscriptions w ON w.device_id = d.device_id AND w.registration = d.registration
               WHERE d.app_id = m.app_id AND d.alias = r.user_id AND w.user_id = r.user_id AND d.active
                 AND d.platform = 'WEB' AND w.position < m.seq AND (w.expires_at IS NULL OR w.expires_at > $2)
                 AND NOT EXISTS (SELECT 1 FROM revoked_native_tokens x
                                  WHERE x.device_id = d.device_id AND x.registration = d.registration)
               ORDER BY w.position DESC LIMIT ${KOALA_WEB_PUSH_BROWSERS_PER_USER}) s
           -- Not requested yet, among those newest ones (a re-look does not reach older ones beyond the bound).
           WHERE NOT EXISTS (SELECT 1 FROM platform_pushes pp
                              WHERE pp.push_id = m.message_id AND pp.device_id = s.device_id)
             AND m.message_id = ANY($1::uuid[]) AND m.status = 'delivered'
             AND (m.expires_at IS NULL OR m.expires_at > $2)
           ORDER BY m.seq, r.user_id, s.device_id`,
        values: [taken.map((r) => r.message_id), now],
      });
      return {
        candidates: candidates.map((r): KoalaWebPushCandidate => ({
          messageId: r.message_id,
          appId: r.app_id,
          userId: r.user_id,
          sentAt: r.sent_at.toISOString(),
          expiresAt: r.expires_at?.toISOString() ?? null,
          deviceId: r.device_id,
          registration: r.registration,
          subscription: r.subscription,
          subscriptionExpiresAt: r.subscription_expires_at?.toISOString() ?? null,
        })),
        fullThrough: full ? BigInt(last.seq) : undefined,
      };
    },
    async lookedThrough() {
      const { rows } = await pool.query<{ value: string }>(`SELECT value FROM herald_settings WHERE name = $1`, [
        LOOKED_THROUGH,
      ]);
      return rows[0] && BigInt(rows[0].value);
    },
    async recordLookedThrough(seq) {
      await pool.query(
        // Only forward: a leader whose lease lapsed mid-look does not take the cursor back.
        `INSERT INTO herald_settings (name, value) VALUES ($1, $2) ON CONFLICT (name)
           DO UPDATE SET value = greatest(herald_settings.value::numeric, excluded.value::numeric)::text`,
        [LOOKED_THROUGH, seq.toString()],
      );
    },
    async messageOf(messageId, appId, userId) {
      const { rows } = await pool.query<{
        message_id: string;
        app_id: string;
        seq: string;
        sender: string;
        title: string;
        content: string;
        props: Record<string, string> | null;
        sent_at: Date;
        expires_at: Date | null;
        acknowledged: boolean;
      }>({
        name: 'koala-web-push-message',
        text: `SELECT m.message_id, m.app_id, m.seq::text AS seq, m.sender, m.title, m.content, m.props, m.sent_at,
                      m.expires_at, n.acknowledged_at IS NOT NULL AS acknowledged
                 FROM notification_messages m
                 LEFT JOIN notifications n ON n.message_id = m.message_id AND n.user_id = $3
                WHERE m.message_id = $1 AND m.app_id = $2 AND m.status = 'delivered'`,
        values: [messageId, appId, userId],
      });
      const row = rows[0];
      return (
        row && {
          message: {
            id: row.message_id,
            meta: { realm: row.app_id, seq: row.seq, sender: row.sender, stime: row.sent_at.toISOString() },
            title: row.title,
            content: row.content,
            props: row.props ?? {},
            expiresAt: row.expires_at?.toISOString() ?? null,
          },
          acknowledged: row.acknowledged,
        }
      );
    },
  };
}
