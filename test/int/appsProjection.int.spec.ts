import { expect } from 'chai';
import type { Pool } from 'pg';
import { AppEvent } from '../../domain/app/app';
import { appSecrets, appsProjection, pushCallbackUrls } from '../../projections/apps';
import { projectionSpecification } from '../support/projectionSpecification';

/**
 * The apps read model: what tickets authenticate an app's credentials against (its secret's hash), and
 * where topvdn callbacks of its pushes go. Given app events, what its two query interfaces answer.
 */
describe('apps projection: secrets and push callback URLs', () => {
  const spec = projectionSpecification(appsProjection, AppEvent, (event) => `app-${event.data.appId}`);
  const at = (minute: number) => new Date(Date.UTC(2026, 0, 1, 0, minute)).toISOString();
  const registered = (appId: string, secretHash: string, minute = 0): AppEvent => ({
    type: 'AppRegistered',
    data: { appId, secretHash, registeredAt: at(minute) },
  });
  const secretChanged = (appId: string, secretHash: string, minute = 1): AppEvent => ({
    type: 'AppSecretChanged',
    data: { appId, secretHash, changedAt: at(minute) },
  });
  const callbackSet = (appId: string, url: string | null, minute = 2): AppEvent => ({
    type: 'AppPushCallbackSet',
    data: { appId, url, setAt: at(minute) },
  });
  const secretOf = (appId: string) => (pool: Pool) => appSecrets(pool).secretHash(appId);
  const callbackOf = (appId: string) => (pool: Pool) => pushCallbackUrls(pool).urlOf(appId);

  it("answers a registered app's secret hash, and nothing for an app never registered", async () => {
    const given = spec.given([registered('camel', 'hash-1'), registered('koala', 'hash-k')]);
    await given.expectAnswer(secretOf('camel'), 'hash-1');
    await given.expectAnswer(secretOf('koala'), 'hash-k');
    await given.expectAnswer(secretOf('nobody'), undefined);
    await given.expectAnswer(callbackOf('camel'), undefined);
  });

  it('a changed secret replaces the old one; registering again replaces it too, keeping when the app was registered', async () => {
    const changed = spec.given([registered('camel', 'hash-1'), secretChanged('camel', 'hash-2')]);
    await changed.expectAnswer(secretOf('camel'), 'hash-2');
    await changed.expectRows('SELECT app_id, registered_at, updated_at FROM apps', [
      { app_id: 'camel', registered_at: new Date(at(0)), updated_at: new Date(at(1)) },
    ]);
    const again = spec.given([registered('camel', 'hash-1'), registered('camel', 'hash-3', 5)]);
    await again.expectRows('SELECT app_id, secret_hash, registered_at, updated_at FROM apps', [
      { app_id: 'camel', secret_hash: 'hash-3', registered_at: new Date(at(0)), updated_at: new Date(at(5)) },
    ]);
  });

  it('sets, changes and clears the push callback URL', async () => {
    const url = 'https://camel.example.com/topvdn';
    await spec.given([registered('camel', 'h'), callbackSet('camel', url)]).expectAnswer(callbackOf('camel'), url);
    await spec
      .given([registered('camel', 'h'), callbackSet('camel', url), callbackSet('camel', `${url}/v2`, 3)])
      .expectAnswer(callbackOf('camel'), `${url}/v2`);
    const cleared = spec.given([registered('camel', 'h'), callbackSet('camel', url), callbackSet('camel', null, 3)]);
    await cleared.expectAnswer(callbackOf('camel'), undefined);
    // Setting the callback is not a change of secret.
    await cleared.expectAnswer(secretOf('camel'), 'h');
  });

  it("an app's changes before it is registered leave no app behind", async () => {
    await spec
      .given([secretChanged('camel', 'hash-2'), callbackSet('camel', 'https://x.example.com')])
      .expectRows('SELECT app_id FROM apps', []);
  });

  it('leaves the same answers however the events are batched (one batch of all = a rebuild)', async () => {
    const history = [
      registered('camel', 'hash-1'),
      registered('koala', 'hash-k'),
      secretChanged('camel', 'hash-2'),
      callbackSet('koala', 'https://koala.example.com'),
      secretChanged('koala', 'hash-k2', 3),
      callbackSet('camel', 'https://camel.example.com', 4),
      callbackSet('camel', null, 5),
    ];
    const table = 'SELECT app_id, secret_hash, push_callback_url, registered_at, updated_at FROM apps ORDER BY app_id';
    const oneByOne = await spec.given(history, { batchSizes: [1] }).rows(table);
    expect(oneByOne).to.deep.equal([
      {
        app_id: 'camel',
        secret_hash: 'hash-2',
        push_callback_url: null,
        registered_at: new Date(at(0)),
        updated_at: new Date(at(5)),
      },
      {
        app_id: 'koala',
        secret_hash: 'hash-k2',
        push_callback_url: 'https://koala.example.com',
        registered_at: new Date(at(0)),
        updated_at: new Date(at(3)),
      },
    ]);
    for (const batchSizes of [[history.length], [2, 3], [3]])
      await spec.given(history, { batchSizes }).expectRows(table, oneByOne);
  });

  it('refuses a given event its codec does not read, and a given replaced by a later one (the helper cannot mislead)', async () => {
    const malformed = { type: 'AppRegistered', data: { appId: 'camel' } } as unknown as AppEvent;
    expect(() => spec.given([malformed])).to.throw('given event 0 is not one apps reads');
    const earlier = spec.given([registered('camel', 'hash-1')]);
    await spec.given([registered('koala', 'hash-k')]).expectAnswer(secretOf('koala'), 'hash-k');
    const error = await earlier.answer(secretOf('camel')).catch((e: unknown) => e);
    expect(error).to.be.instanceOf(Error).with.property('message').that.includes('a later given replaced');
  });
});
