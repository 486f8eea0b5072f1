import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { apnsTestKey, startApnsStandIn, type ApnsStandIn, type ApnsTestKey } from '../support/apnsStandIn';
import { eventually } from '../support/eventually';
import { fcmTestAccount, serviceAccountJson, startFcmStandIn, type FcmStandIn } from '../support/fcmStandIn';
import { HeraldProcess } from '../support/heraldProcess';
import { heraldProcessSetup, type HeraldProcessSetup } from '../support/heraldProcessSetup';

/**
 * A one-app deployment as an operator runs it: `herald serve` with HERALD_APNS_* (the key from a .p8 file)
 * and HERALD_APNS_HOST / HERALD_APNS_CA_FILE naming the APNs stand-in (a TEST DOUBLE), and HERALD_FCM_*
 * (the service account's JSON file) with HERALD_FCM_BASE_URL naming the FCM stand-in (a TEST DOUBLE; the
 * account's token_uri is the stand-in's). Offline iOS and Android devices get the seed's send; /metrics
 * counts them by platform and outcome; a bad variable stops start-up naming it.
 */
describe('platform push: herald configured by HERALD_APNS_* (a process)', function () {
  this.timeout(180_000);
  let setup: HeraldProcessSetup | undefined;
  let standIn: ApnsStandIn;
  let fcmStandIn: FcmStandIn;
  let accountFile: string;
  let key: ApnsTestKey;
  let keyFile: string;
  let herald: HeraldProcess | undefined;
  const metricsToken = randomBytes(24).toString('hex');

  before(async () => {
    setup = await heraldProcessSetup('herald-apns-');
    key = apnsTestKey('P');
    standIn = await startApnsStandIn([key]);
    keyFile = path.join(setup.dataDir, 'AuthKey.p8');
    writeFileSync(keyFile, key.keyPem, { mode: 0o600 });
    const account = fcmTestAccount('p');
    fcmStandIn = await startFcmStandIn([account]);
    accountFile = path.join(setup.dataDir, 'service-account.json');
    writeFileSync(accountFile, serviceAccountJson(account, fcmStandIn.tokenUri), { mode: 0o600 });
  });
  after(async () => {
    herald?.kill('SIGTERM');
    await herald?.exitCode();
    await standIn?.close();
    await fcmStandIn?.close();
    await setup?.remove();
  });

  const apnsEnv = () => ({
    HERALD_APNS_APP: 'camel',
    HERALD_APNS_KEY_FILE: keyFile,
    HERALD_APNS_KEY_ID: key.keyId,
    HERALD_APNS_TEAM_ID: key.teamId,
    HERALD_APNS_TOPIC: key.topic,
    HERALD_APNS_ENVIRONMENT: 'sandbox',
    HERALD_APNS_HOST: standIn.url,
    HERALD_APNS_CA_FILE: standIn.caFile,
    HERALD_FCM_APP: 'camel',
    HERALD_FCM_SERVICE_ACCOUNT_FILE: accountFile,
    HERALD_FCM_BASE_URL: fcmStandIn.url,
    HERALD_FCM_TOKEN_URI: fcmStandIn.tokenUri,
  });

  it('a bad HERALD_APNS_ variable stops start-up (exit 2) naming it, never printing the key', async () => {
    const bad = HeraldProcess.start({ ...setup!.env, ...apnsEnv(), HERALD_APNS_TEAM_ID: 'not-a-team' });
    expect(await bad.exitCode()).to.equal(2);
    expect(bad.logs).to.include('HERALD_APNS_TEAM_ID: expected');
    expect(bad.logs).to.not.include('PRIVATE KEY');
    const noJson = HeraldProcess.start({ ...setup!.env, ...apnsEnv(), HERALD_FCM_SERVICE_ACCOUNT_FILE: keyFile });
    expect(await noJson.exitCode()).to.equal(2);
    expect(noJson.logs).to.include('HERALD_FCM_SERVICE_ACCOUNT_FILE: not JSON');
    expect(noJson.logs).to.not.include('PRIVATE KEY');
  });

  it("sends offline iOS and Android devices the seed's message through APNs and FCM and counts them in /metrics", async () => {
    herald = HeraldProcess.start({ ...setup!.env, ...apnsEnv(), HERALD_METRICS_TOKEN: metricsToken });
    const base = setup!.base;
    await herald.waitForHttp(`${base}/readyz`);
    const post = async (route: string, body: unknown) =>
      (await (
        await fetch(`${base}${route}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify(body),
        })
      ).json()) as Record<string, string>;
    const token = randomBytes(32).toString('hex');
    await post('/msgpush/register', { alias: 'testuserid1', appId: 'camel', platform: 'IOS', nativeToken: token });
    const androidToken = `fcm:${randomBytes(40).toString('base64url')}`;
    await post('/msgpush/register', {
      alias: 'testuserid1',
      appId: 'camel',
      platform: 'ANDROID',
      nativeToken: androidToken,
    });
    const { requestId } = await post('/msgpush/send', {
      appId: 'camel',
      appKey: 'EERWERRRRE',
      platform: 'ALL',
      audiences: ['testuserid1'],
      alert: ' this is a alert',
      sound: 'default',
      badge: 1,
    });
    await eventually(() => expect(standIn.delivered().filter((r) => r.token === token)).to.have.length(1), {
      timeoutMs: 20_000,
    });
    const [seen] = standIn.delivered();
    expect(seen!.headers).to.include({ 'apns-id': requestId, 'apns-topic': key.topic });
    expect(seen!.payload).to.deep.include({ aps: { alert: ' this is a alert', sound: 'default', badge: 1 } });
    await eventually(async () => {
      const metrics = await (
        await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${metricsToken}` } })
      ).text();
      expect(metrics).to.include('herald_platform_pushes_total{platform="IOS",outcome="sent"} 1');
      expect(metrics).to.include('herald_platform_pushes_total{platform="ANDROID",outcome="sent"} 1');
    });
    const [android] = fcmStandIn.requests.filter((r) => r.token === androidToken);
    expect(android).to.include({ status: 200 });
    expect(android!.message).to.deep.include({ notification: { body: ' this is a alert' } });
    expect((android!.message.data as { messageId: string }).messageId).to.equal(requestId);
    expect(herald.logs).to.not.include('PRIVATE KEY');
  });
});
