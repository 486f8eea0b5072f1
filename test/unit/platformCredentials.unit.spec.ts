import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../src/config';
import {
  checkApnsCredentials,
  checkFcmCredentials,
  credentialsKey,
  CredentialsError,
  PlatformCredentials,
  seal,
  unseal,
  type StoredApnsCredentials,
  type StoredFcmCredentials,
  type StoredVapidCredentials,
} from '../../src/platformPush/credentials';
import { apnsTestKey } from '../support/apnsStandIn';
import { fcmTestAccount, serviceAccountJson } from '../support/fcmStandIn';

/** Why loadConfig refuses `vars` (never quoting a key), or 'no error'. */
const problem = (vars: Record<string, string>) => {
  try {
    loadConfig(vars);
  } catch (error) {
    expect(error).to.be.instanceOf(ConfigError);
    expect((error as Error).message).to.not.include('PRIVATE');
    return (error as Error).message;
  }
  return 'no error';
};

describe('platform-push credentials', () => {
  const key = apnsTestKey('A');
  const input = {
    keyPem: key.keyPem,
    keyId: key.keyId,
    teamId: key.teamId,
    topic: key.topic,
    environment: 'sandbox',
  };

  describe('sealed at rest (AES-256-GCM)', () => {
    const sealing = randomBytes(32);

    it('opens what it sealed, for the same app only', () => {
      const sealed = seal(sealing, key.keyPem, 'camel');
      expect(sealed).to.not.include('PRIVATE');
      expect(unseal(sealing, sealed, 'camel')).to.equal(key.keyPem);
      // Copied to another app's row, or opened with another key: refused.
      expect(() => unseal(sealing, sealed, 'other')).to.throw();
      expect(() => unseal(randomBytes(32), sealed, 'camel')).to.throw();
      // Two seals of the same key differ (a fresh IV each).
      expect(seal(sealing, key.keyPem, 'camel')).to.not.equal(sealed);
    });

    it('refuses a sealed text that was changed', () => {
      const sealed = seal(sealing, 'secret', 'camel');
      const tampered = sealed.slice(0, -2) + (sealed.endsWith('AA') ? 'BB' : 'AA');
      expect(() => unseal(sealing, tampered, 'camel')).to.throw();
    });

    it('makes its key in the data dir once, mode 0600, or takes HERALD_CREDENTIALS_KEY', () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'herald-credentials-'));
      try {
        const first = credentialsKey(undefined, dir);
        expect(first).to.have.length(32);
        expect(credentialsKey(undefined, dir).equals(first)).to.equal(true);
        expect(statSync(path.join(dir, 'credentials.key')).mode & 0o777).to.equal(0o600);
        const configured = 'ab'.repeat(32);
        expect(credentialsKey(configured, dir).toString('hex')).to.equal(configured);
        writeFileSync(path.join(dir, 'credentials.key'), 'not hex');
        expect(() => credentialsKey(undefined, dir)).to.throw('not 64 hex digits');
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });
  });

  describe('input (io-ts, bounded)', () => {
    it('takes a .p8 key with its ids', () => {
      expect(checkApnsCredentials(input)).to.deep.include({ keyId: key.keyId, environment: 'sandbox' });
    });

    for (const [field, value, label] of [
      ['keyPem', 'x'],
      ['keyPem', `${key.keyPem}${' '.repeat(4096)}`, 'a key over 4,096 characters'],
      [
        'keyPem',
        '-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIFCf2A6K3Ybvo7H5ppWm1gzbnJE0o1bJEkZLhBPLQi3O\n-----END PRIVATE KEY-----',
        'an Ed25519 key (not EC P-256)',
      ],
      ['keyId', 'ABC'],
      ['keyId', 'abcdefghij'],
      ['teamId', 'TEAM 12345'],
      ['topic', ''],
      ['topic', 'a'.repeat(256)],
      ['topic', 'com.example/evil'],
      ['environment', 'staging'],
      ['keyId', 42],
      ['keyPem', null],
    ] as const) {
      it(`refuses ${field} = ${label ?? JSON.stringify(value)}, naming the field, never quoting the key`, () => {
        let error: unknown;
        try {
          checkApnsCredentials({ ...input, [field]: value });
        } catch (e) {
          error = e;
        }
        expect(error).to.be.instanceOf(CredentialsError);
        expect((error as Error).message).to.match(new RegExp(`^${field}: `));
        expect((error as Error).message).to.not.include('PRIVATE');
      });
    }

    it('refuses input that is not an object', () => {
      expect(() => checkApnsCredentials('key')).to.throw(CredentialsError);
      expect(() => checkApnsCredentials(null)).to.throw(CredentialsError);
    });
  });

  describe('per app', () => {
    const memory = <T = StoredApnsCredentials>() => {
      const rows = new Map<string, T>();
      return {
        rows,
        store: {
          put: async (appId: string, c: T) => void rows.set(appId, c),
          get: async (appId: string) => rows.get(appId),
          apps: async () => [...rows.keys()],
        },
      };
    };

    it('stores the key sealed, shows only what it is, gives each app its own', async () => {
      const { rows, store } = memory();
      const credentials = new PlatformCredentials({
        store,
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => randomBytes(32),
      });
      expect(await credentials.describeApns('camel')).to.deep.include({ configured: false });
      const shown = await credentials.setApns('camel', input, new Date());
      expect(shown).to.deep.equal({
        configured: true,
        keyId: key.keyId,
        teamId: key.teamId,
        topic: key.topic,
        environment: 'sandbox',
      });
      expect(JSON.stringify([...rows.values()])).to.not.include('PRIVATE');
      expect((await credentials.apns.of('camel'))?.keyPem).to.equal(key.keyPem.trim());
      expect(await credentials.apns.of('other')).to.equal(undefined);
      expect(await credentials.apns.apps()).to.deep.equal(['camel']);
    });

    it('a key sealed under another credentials key is no credentials (and is reported), not a crash', async () => {
      const { store } = memory();
      await new PlatformCredentials({
        store,
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => randomBytes(32),
      }).setApns('camel', input, new Date());
      const unreadable: string[] = [];
      const other = new PlatformCredentials({
        store,
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => randomBytes(32),
        onUnreadable: (appId) => unreadable.push(appId),
      });
      expect(await other.apns.of('camel')).to.equal(undefined);
      expect(unreadable).to.deep.equal(['camel']);
    });

    it('an app whose key does not open is left out of the look for devices and its sends throw (retried), until it opens', async () => {
      const { store } = memory();
      await new PlatformCredentials({
        store,
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => randomBytes(32),
      }).setApns('camel', input, new Date());
      const unreadable: string[] = [];
      const node = new PlatformCredentials({
        store,
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => randomBytes(32),
        onUnreadable: (appId) => unreadable.push(appId),
      });
      // No PlatformPushRequested is made for it, so nothing fails for good (NoCredentials).
      expect(await node.apns.apps()).to.deep.equal([]);
      const error = await node.apns.forSending('camel').catch((e: Error) => e);
      expect(error).to.be.instanceOf(Error);
      expect((error as Error).message).to.not.include('PRIVATE');
      expect(unreadable).to.include('camel');
      // An app with no credentials at all is no throw: it has none.
      expect(await node.apns.forSending('other')).to.equal(undefined);
      // Set again on this node: it opens, and the app is looked at again.
      await node.setApns('camel', input, new Date());
      expect(await node.apns.apps()).to.deep.equal(['camel']);
      expect((await node.apns.forSending('camel'))?.keyId).to.equal(key.keyId);
    });

    it('sends that joined a lookup the app set new credentials during (forget) are still retried when the key does not open here', async () => {
      const { store } = memory();
      await new PlatformCredentials({
        store,
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => randomBytes(32),
      }).setApns('camel', input, new Date());
      let release = () => undefined as void;
      const held = new Promise<void>((resolve) => (release = resolve));
      const node = new PlatformCredentials({
        store: { ...store, get: async (appId: string) => (await held, store.get(appId)) },
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => randomBytes(32),
      });
      // Many sends of a send to ALL wait on one lookup; the app's key is set again meanwhile (on another
      // node: this one still cannot open it), so that lookup is not cached.
      const sends = Array.from({ length: 5 }, () =>
        node.apns.forSending('camel').then(
          () => 'no credentials (NoCredentials, final)',
          () => 'thrown (retried)',
        ),
      );
      node.apns.forget('camel');
      release();
      expect(await Promise.all(sends)).to.deep.equal(Array(5).fill('thrown (retried)'));
    });

    it('no credentials key to be had (an unwritable data dir) is reported as that, not as a changed key', async () => {
      const { store } = memory();
      await new PlatformCredentials({
        store,
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => randomBytes(32),
      }).setApns('camel', input, new Date());
      const unreadable: string[] = [];
      const noKey: Error[] = [];
      // A data dir under a plain file: it cannot be made.
      const file = path.join(mkdtempSync(path.join(tmpdir(), 'herald-no-key-')), 'a-file');
      writeFileSync(file, '');
      const node = new PlatformCredentials({
        store,
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => credentialsKey(undefined, path.join(file, 'data')),
        onUnreadable: (appId) => unreadable.push(appId),
        onNoKey: (error) => noKey.push(error),
      });
      expect(await node.apns.apps()).to.deep.equal([]);
      expect(noKey).to.have.length(1);
      expect(unreadable).to.deep.equal([]);
      rmSync(path.dirname(file), { recursive: true, force: true });
    });

    it('bad input stores nothing', async () => {
      const { rows, store } = memory();
      const credentials = new PlatformCredentials({
        store,
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => randomBytes(32),
      });
      await credentials.setApns('camel', { ...input, keyId: 'bad' }, new Date()).catch(() => undefined);
      expect(rows.size).to.equal(0);
    });

    it('HERALD_APNS_… serve their one app when it set none over GraphQL', async () => {
      const { store } = memory();
      const credentials = new PlatformCredentials({
        store,
        fcmStore: memory<StoredFcmCredentials>().store,
        vapidStore: memory<StoredVapidCredentials>().store,
        key: () => randomBytes(32),
        fromEnvironment: { appId: 'solo', credentials: checkApnsCredentials(input) },
      });
      expect(await credentials.apns.of('solo')).to.deep.include({ keyId: key.keyId });
      expect(await credentials.apns.of('camel')).to.equal(undefined);
      expect(await credentials.apns.apps()).to.deep.equal(['solo']);
    });
  });

  describe('FCM service accounts per app', () => {
    const account = fcmTestAccount('s');
    const json = serviceAccountJson(account, 'https://oauth2.googleapis.com/token');
    const stores = () => {
      const fcmRows = new Map<string, StoredFcmCredentials>();
      const apnsRows = new Map<string, StoredApnsCredentials>();
      const store = <T>(rows: Map<string, T>) => ({
        put: async (appId: string, c: T) => void rows.set(appId, c),
        get: async (appId: string) => rows.get(appId),
        apps: async () => [...rows.keys()],
      });
      return {
        fcmRows,
        store: store(apnsRows),
        fcmStore: store(fcmRows),
        vapidStore: store(new Map<string, StoredVapidCredentials>()),
      };
    };

    it('stores the private key sealed to the app and FCM, shows only what it is', async () => {
      const { fcmRows, store, fcmStore, vapidStore } = stores();
      const sealing = randomBytes(32);
      const credentials = new PlatformCredentials({ store, fcmStore, vapidStore, key: () => sealing });
      expect(await credentials.describeFcm('camel')).to.deep.equal({
        configured: false,
        projectId: null,
        clientEmail: null,
        tokenUri: null,
      });
      const shown = await credentials.setFcm('camel', json, new Date());
      expect(shown).to.deep.equal({
        configured: true,
        projectId: account.projectId,
        clientEmail: account.clientEmail,
        tokenUri: 'https://oauth2.googleapis.com/token',
      });
      expect(JSON.stringify(fcmRows.get('camel'))).to.not.include('PRIVATE KEY');
      expect((await credentials.fcm.of('camel'))?.privateKey).to.equal(account.privateKey.trim());
      expect(await credentials.fcm.of('other')).to.equal(undefined);
      expect(await credentials.fcm.apps()).to.deep.equal(['camel']);
      // Not the APNs context: the sealed text does not open as the app's APNs key.
      expect(() => unseal(sealing, fcmRows.get('camel')!.sealedKey, 'camel')).to.throw();
    });

    it('bad input stores nothing; HERALD_FCM_… serve their one app', async () => {
      const { fcmRows, store, fcmStore, vapidStore } = stores();
      const credentials = new PlatformCredentials({
        store,
        fcmStore,
        vapidStore,
        key: () => randomBytes(32),
        fcmFromEnvironment: { appId: 'solo', credentials: checkFcmCredentials(json) },
      });
      await credentials.setFcm('camel', '{"type":"service_account"}', new Date()).catch(() => undefined);
      expect(fcmRows.size).to.equal(0);
      expect(await credentials.fcm.of('solo')).to.deep.include({ projectId: account.projectId });
      expect(await credentials.fcm.apps()).to.deep.equal(['solo']);
    });
  });

  describe('HERALD_FCM_… variables', () => {
    const account = fcmTestAccount('e');
    let dir: string;
    let file: string;
    before(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'herald-fcm-'));
      file = path.join(dir, 'service-account.json');
      writeFileSync(file, serviceAccountJson(account, 'https://oauth2.googleapis.com/token'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('are read together, the account from its file; the URLs may be replaced (tests, a proxy)', () => {
      const config = loadConfig({
        HERALD_FCM_APP: 'solo',
        HERALD_FCM_SERVICE_ACCOUNT_FILE: file,
        HERALD_FCM_BASE_URL: 'http://127.0.0.1:9000',
        HERALD_FCM_TOKEN_URI: 'http://127.0.0.1:9000/token',
      });
      expect(config.fcm?.appId).to.equal('solo');
      expect(config.fcm?.credentials).to.deep.include({ projectId: account.projectId });
      expect(config.fcmEndpoint).to.deep.equal({
        baseUrl: 'http://127.0.0.1:9000',
        tokenUri: 'http://127.0.0.1:9000/token',
      });
      expect(loadConfig({}).fcmEndpoint).to.deep.equal({});
    });

    it('stop start-up naming the variable that is wrong', () => {
      expect(problem({ HERALD_FCM_APP: 'solo' })).to.include('HERALD_FCM_SERVICE_ACCOUNT_FILE: required');
      expect(problem({ HERALD_FCM_SERVICE_ACCOUNT_FILE: file })).to.include('HERALD_FCM_APP: required');
      expect(
        problem({ HERALD_FCM_APP: 'solo', HERALD_FCM_SERVICE_ACCOUNT_FILE: path.join(dir, 'missing.json') }),
      ).to.include('HERALD_FCM_SERVICE_ACCOUNT_FILE: expected a readable');
      const bad = path.join(dir, 'bad.json');
      writeFileSync(bad, serviceAccountJson(account, 'https://oauth2.googleapis.com/token', { type: 'user' }));
      expect(problem({ HERALD_FCM_APP: 'solo', HERALD_FCM_SERVICE_ACCOUNT_FILE: bad })).to.include(
        'HERALD_FCM_SERVICE_ACCOUNT_FILE.type: expected',
      );
      expect(problem({ HERALD_FCM_BASE_URL: 'ftp://x' })).to.include('HERALD_FCM_BASE_URL');
      expect(problem({ HERALD_FCM_TOKEN_URI: 'nope' })).to.include('HERALD_FCM_TOKEN_URI');
    });
  });

  describe('HERALD_APNS_… variables', () => {
    let dir: string;
    let keyFile: string;
    before(() => {
      dir = mkdtempSync(path.join(tmpdir(), 'herald-apns-'));
      keyFile = path.join(dir, 'AuthKey.p8');
      writeFileSync(keyFile, key.keyPem);
    });
    after(() => rmSync(dir, { recursive: true, force: true }));
    const env = {
      HERALD_APNS_APP: 'solo',
      HERALD_APNS_KEY_ID: key.keyId,
      HERALD_APNS_TEAM_ID: key.teamId,
      HERALD_APNS_TOPIC: key.topic,
    };

    it('are read together, the key from its file; production by default', () => {
      const config = loadConfig({ ...env, HERALD_APNS_KEY_FILE: keyFile });
      expect(config.apns?.appId).to.equal('solo');
      expect(config.apns?.credentials).to.deep.include({ keyId: key.keyId, environment: 'production' });
      expect(config.apnsEndpoint).to.deep.equal({});
    });

    it('take a host and a CA file (tests, a proxy)', () => {
      const ca = path.join(dir, 'ca.pem');
      writeFileSync(ca, '-----BEGIN CERTIFICATE-----\n…\n-----END CERTIFICATE-----\n');
      const config = loadConfig({ HERALD_APNS_HOST: 'https://127.0.0.1:8443', HERALD_APNS_CA_FILE: ca });
      expect(config.apnsEndpoint.host).to.equal('https://127.0.0.1:8443');
      expect(config.apnsEndpoint.ca).to.include('BEGIN CERTIFICATE');
    });

    it('stop start-up naming the variable that is wrong', () => {
      expect(problem({ ...env })).to.include('HERALD_APNS_KEY_FILE: required with HERALD_APNS_APP');
      expect(problem({ HERALD_APNS_KEY_ID: key.keyId })).to.include('HERALD_APNS_APP: required');
      expect(problem({ ...env, HERALD_APNS_KEY_FILE: path.join(dir, 'missing.p8') })).to.include(
        'HERALD_APNS_KEY_FILE: expected a readable',
      );
      expect(problem({ ...env, HERALD_APNS_KEY_FILE: keyFile, HERALD_APNS_TEAM_ID: 'team' })).to.include(
        'HERALD_APNS_TEAM_ID: expected',
      );
      expect(problem({ ...env, HERALD_APNS_KEY_FILE: keyFile, HERALD_APNS_ENVIRONMENT: 'staging' })).to.include(
        'HERALD_APNS_ENVIRONMENT',
      );
      const notAKey = path.join(dir, 'not.p8');
      writeFileSync(notAKey, 'hello');
      expect(problem({ ...env, HERALD_APNS_KEY_FILE: notAKey })).to.include('HERALD_APNS_KEY_FILE: expected');
      expect(problem({ HERALD_APNS_HOST: 'http://insecure' })).to.include('HERALD_APNS_HOST');
      // A CA file replaces the default CAs: only for a host of one's own, never for Apple's.
      expect(problem({ HERALD_APNS_CA_FILE: keyFile })).to.include('HERALD_APNS_CA_FILE: only with HERALD_APNS_HOST');
      expect(problem({ HERALD_APNS_ENVIRONMENT: 'sandbox' })).to.include('HERALD_APNS_APP: required');
      expect(problem({ HERALD_CREDENTIALS_KEY: 'short' })).to.include('HERALD_CREDENTIALS_KEY: expected 64 hex digits');
      expect(readFileSync(keyFile, 'utf8')).to.equal(key.keyPem);
    });
  });
});
