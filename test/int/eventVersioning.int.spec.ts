import { randomUUID } from 'node:crypto';
import { expect } from 'chai';
import { datahubProjection, datahubQueries } from '../../projections/datahubNotifications';
import type { RecordedEvent } from '../../src/eventStore/eventStore';
import { UpcastingEventStore } from '../../src/eventStore/upcastingEventStore';
import { withTransaction } from '../../src/postgres/transaction';
import { UndecodableEventError } from '../../src/projection/eventDecoder';
import { openTestInfrastructure } from '../support/infrastructure';
import { notificationSentV1 } from '../support/oldEvents';

/**
 * Event versioning end to end on the read side: NotificationSent events stored in their first shape (no
 * schemaVersion, no forBrowser) project, read through the store's upcasting decorator, exactly as their
 * version 2 twins do; read raw, the projection refuses them.
 */
describe('event versioning: an old NotificationSent projects as its current twin', () => {
  let infrastructure: Awaited<ReturnType<typeof openTestInfrastructure>>;
  before(async () => {
    infrastructure = await openTestInfrastructure([datahubProjection]);
  });
  after(() => infrastructure?.close());

  const sent = (receiver: string, forClient: boolean, version: 1 | 2) => ({
    id: randomUUID(),
    type: 'NotificationSent',
    data: {
      ...notificationSentV1,
      notificationId: randomUUID(),
      receivers: [receiver],
      forClient,
      ...(version === 2 && { forBrowser: !forClient }),
      data: { forClient },
    },
    metadata: version === 2 ? { schemaVersion: 2 } : {},
  });

  async function project(events: readonly RecordedEvent[]) {
    const { pool } = infrastructure.database;
    await pool.query(`TRUNCATE ${datahubProjection.tables.join(', ')}`);
    await withTransaction(pool, (tx) => datahubProjection.handle(events, tx));
  }

  async function lists(userId: string) {
    const queries = datahubQueries(infrastructure.database.pool);
    const list = async (forClient: boolean) =>
      (await queries.list({ appId: 'camel', userId }, { forClient, status: 'either', page: 1, size: 10 })).results.map(
        (n) => n.data['forClient'],
      );
    return { browser: await list(false), client: await list(true) };
  }

  it('in the browser list or the client list, as version 1 had it', async () => {
    const { store } = infrastructure;
    await store.append(`notification-old-${randomUUID()}`, [sent('bob', false, 1)], 'no_stream');
    await store.append(`notification-old-${randomUUID()}`, [sent('bob', true, 1)], 'no_stream');
    await store.append(`notification-new-${randomUUID()}`, [sent('carol', false, 2)], 'no_stream');
    await store.append(`notification-new-${randomUUID()}`, [sent('carol', true, 2)], 'no_stream');

    const raw = await store.readAll();
    const error = await project(raw).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error, 'read raw, the old shape is refused').to.be.instanceOf(UndecodableEventError);

    await project(await new UpcastingEventStore(store).readAll());
    const bob = await lists('bob');
    expect(bob).to.deep.equal({ browser: [false], client: [true] });
    expect(bob).to.deep.equal(await lists('carol'));
  });
});
