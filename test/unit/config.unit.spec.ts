import { expect } from 'chai';
import { ConfigError, loadConfig } from '../../src/config';
import { defaultPoolSize } from '../../src/postgres/database';

describe('config from the environment', () => {
  it('has embedded defaults when nothing is set', () => {
    const config = loadConfig({});
    expect(config).to.deep.include({
      port: 8080,
      host: '0.0.0.0',
      dataDir: './.herald',
      embeddedPostgresPort: 25432,
      apps: [],
      logLevel: 'info',
    });
    expect(config.databaseUrl).to.equal(undefined);
    expect(config.eventStoreUrl).to.equal(undefined);
  });

  it('reads every variable', () => {
    const config = loadConfig({
      PORT: '9000',
      DATABASE_URL: 'postgres://u@db:5432/herald',
      EVENTSTORE_URL: 'esdb://eventstore:2113?tls=false',
      REDIS_URL: 'redis://redis:6379',
      HERALD_DATA_DIR: '/var/lib/herald',
      HERALD_APPS: 'camel:EERWERRRRE, topvdn:mock-app-key',
      LOG_LEVEL: 'debug',
    });
    expect(config).to.deep.include({
      port: 9000,
      databaseUrl: 'postgres://u@db:5432/herald',
      eventStoreUrl: 'esdb://eventstore:2113?tls=false',
      redisUrl: 'redis://redis:6379',
      dataDir: '/var/lib/herald',
      logLevel: 'debug',
    });
    expect(config.apps).to.deep.equal([
      { appId: 'camel', secret: 'EERWERRRRE' },
      { appId: 'topvdn', secret: 'mock-app-key' },
    ]);
  });

  it('waits up to 2 s for read-your-writes by default; 0 turns the wait off', () => {
    expect(loadConfig({}).readYourWritesTimeoutMs).to.equal(2000);
    expect(loadConfig({ HERALD_READ_YOUR_WRITES_TIMEOUT_MS: '0' }).readYourWritesTimeoutMs).to.equal(0);
  });

  it('counts a projection 10 s behind the store as not ready by default (issue 21, item 11)', () => {
    expect(loadConfig({}).readyMaxLagSeconds).to.equal(10);
    expect(loadConfig({ HERALD_READY_MAX_LAG_SECONDS: '30' }).readyMaxLagSeconds).to.equal(30);
  });

  it('sizes the PostgreSQL pool from HERALD_DATABASE_POOL_SIZE, or from the cores when it is unset (issue 24)', () => {
    expect(loadConfig({}).databasePoolSize).to.equal(undefined);
    expect(loadConfig({ HERALD_DATABASE_POOL_SIZE: '40' }).databasePoolSize).to.equal(40);
    expect(defaultPoolSize(2)).to.equal(16);
    expect(defaultPoolSize(6)).to.equal(32);
    expect(defaultPoolSize(64)).to.equal(32); // capped: a container quota does not show in the core count
  });

  it('treats an empty variable as unset', () => {
    expect(loadConfig({ DATABASE_URL: '', PORT: '' }).port).to.equal(8080);
  });

  const bad: Array<[string, string, RegExp]> = [
    ['PORT', 'abc', /PORT: expected an integer from 1 to 65535/],
    ['PORT', '70000', /PORT: expected an integer from 1 to 65535/],
    ['DATABASE_URL', 'mysql://x', /DATABASE_URL: expected a URL starting with postgres:\/\/ or postgresql:\/\//],
    ['EVENTSTORE_URL', 'http://x', /EVENTSTORE_URL: expected a URL starting with esdb:\/\//],
    ['REDIS_URL', 'not a url', /REDIS_URL: expected a URL starting with redis:\/\//],
    ['HERALD_METRICS_TOKEN', 'too-short', /HERALD_METRICS_TOKEN: expected a secret of at least 32 characters/],
    ['HERALD_APPS', 'camel', /HERALD_APPS: expected a comma-separated list of appId:secret/],
    ['HERALD_APPS', 'a:1,a:2', /HERALD_APPS: expected a comma-separated list/],
    ['LOG_LEVEL', 'loud', /LOG_LEVEL: expected one of fatal, error/],
    [
      'HERALD_READ_YOUR_WRITES_TIMEOUT_MS',
      '-1',
      /HERALD_READ_YOUR_WRITES_TIMEOUT_MS: expected an integer from 0 to 30000/,
    ],
    [
      'HERALD_READ_YOUR_WRITES_TIMEOUT_MS',
      '30001',
      /HERALD_READ_YOUR_WRITES_TIMEOUT_MS: expected an integer from 0 to 30000/,
    ],
    ['HERALD_READY_MAX_LAG_SECONDS', '0', /HERALD_READY_MAX_LAG_SECONDS: expected an integer from 1 to 3600/],
    ['HERALD_DATABASE_POOL_SIZE', '0', /HERALD_DATABASE_POOL_SIZE: expected an integer from 1 to 1000/],
    ['HERALD_DATABASE_POOL_SIZE', '10.5', /HERALD_DATABASE_POOL_SIZE: expected an integer from 1 to 1000/],
    ['SMTP_URL', 'http://mail.example.com', /SMTP_URL: expected a URL starting with smtp:\/\/ or smtps:\/\//],
    ['HERALD_MAIL_FROM', 'not an address', /HERALD_MAIL_FROM: expected an address or Name <address>/],
    [
      'HERALD_CORS_ORIGINS',
      'app.example.com',
      /HERALD_CORS_ORIGINS: "app.example.com" is not an origin; expected \* or a comma-separated list of origins/,
    ],
    [
      'HERALD_CORS_ORIGINS',
      'https://app.example.com/',
      /HERALD_CORS_ORIGINS: "https:\/\/app.example.com\/" is not an origin/,
    ],
    ['HERALD_CORS_ORIGINS', 'https://app.example.com/page', /"https:\/\/app.example.com\/page" is not an origin/],
    ['HERALD_CORS_ORIGINS', 'https://App.Example.com', /"https:\/\/App.Example.com" is not an origin/],
    ['HERALD_CORS_ORIGINS', 'https://app.example.com:443', /"https:\/\/app.example.com:443" is not an origin/],
    ['HERALD_CORS_ORIGINS', 'https://bücher.example', /"https:\/\/bücher.example" is not an origin/],
    ['HERALD_CORS_ORIGINS', 'https://user@app.example.com', /is not an origin/],
    ['HERALD_CORS_ORIGINS', 'https://app.example.com?x=1', /is not an origin/],
    ['HERALD_CORS_ORIGINS', 'ftp://files.example.com', /"ftp:\/\/files.example.com" is not an origin/],
    ['HERALD_CORS_ORIGINS', 'null', /"null" is not an origin/],
    ['HERALD_CORS_ORIGINS', 'https://a.example.com,*', /"\*" is not an origin/],
    ['HERALD_CORS_ORIGINS', 'https://a.example.com,,https://b.example.com', /"" is not an origin/],
    ['HERALD_CORS_ORIGINS', 'https://a.example.com https://b.example.com', /is not an origin/],
    ['HERALD_RETENTION_DELIVERIES', '7', /HERALD_RETENTION_DELIVERIES: expected a duration: <n>s, <n>m, <n>h or <n>d/],
    ['HERALD_RETENTION_MESSAGES', '-1d', /HERALD_RETENTION_MESSAGES: expected a duration/],
    ['HERALD_RETENTION_RTIO_REPORTS', '36501d', /HERALD_RETENTION_RTIO_REPORTS: expected a duration/],
    ['HERALD_RETENTION_EMAILS', 'never', /HERALD_RETENTION_EMAILS: expected a duration/],
    ['HERALD_RETENTION_BATCH_SIZE', '0', /HERALD_RETENTION_BATCH_SIZE: expected an integer from 1 to 100000/],
    ['HERALD_RETENTION_INTERVAL_SECONDS', '1.5', /HERALD_RETENTION_INTERVAL_SECONDS: expected an integer/],
  ];
  for (const [variable, value, message] of bad) {
    it(`stops on ${variable}=${value} with a message naming the variable and the expected form`, () => {
      expect(() => loadConfig({ [variable]: value })).to.throw(ConfigError, message);
    });
  }

  it('allows no browser origin by default (no CORS headers, as before); reads HERALD_CORS_ORIGINS as exact origins or *', () => {
    expect(loadConfig({}).corsOrigins).to.deep.equal([]);
    expect(loadConfig({ HERALD_CORS_ORIGINS: '' }).corsOrigins).to.deep.equal([]);
    expect(
      loadConfig({
        HERALD_CORS_ORIGINS:
          'https://app.example.com, http://localhost:3000 ,https://xn--bcher-kva.example,https://app.example.com',
      }).corsOrigins,
    ).to.deep.equal(['https://app.example.com', 'http://localhost:3000', 'https://xn--bcher-kva.example']);
    expect(loadConfig({ HERALD_CORS_ORIGINS: 'http://[::1]:8080,http://127.0.0.1:5173' }).corsOrigins).to.deep.equal([
      'http://[::1]:8080',
      'http://127.0.0.1:5173',
    ]);
    expect(loadConfig({ HERALD_CORS_ORIGINS: ' * ' }).corsOrigins).to.equal('*');
  });

  it('names every wrong variable once, with what is wrong in it (a wrong origin beside a wrong port)', () => {
    expect(() => loadConfig({ PORT: 'x', HERALD_CORS_ORIGINS: 'https://app.example.com/' }))
      .to.throw(ConfigError)
      .with.property(
        'message',
        'invalid configuration:\n  PORT: expected an integer from 1 to 65535\n  HERALD_CORS_ORIGINS: "https://app.example.com/" is not an origin; expected * or a comma-separated list of origins as browsers send them: http(s)://host[:port], lower case, no path or trailing slash, no default port, an IDN host in punycode (e.g. https://app.example.com,http://localhost:3000)',
      );
  });

  it("reads the mailer's SMTP_URL and HERALD_MAIL_FROM (an address, or Name <address>)", () => {
    expect(
      loadConfig({ SMTP_URL: 'smtps://u:p@mail.example.com:465', HERALD_MAIL_FROM: 'Herald <noreply@herald.example>' }),
    ).to.include({
      smtpUrl: 'smtps://u:p@mail.example.com:465',
      mailFrom: 'Herald <noreply@herald.example>',
    });
    expect(loadConfig({ HERALD_MAIL_FROM: 'noreply@herald.example' }).mailFrom).to.equal('noreply@herald.example');
    expect(loadConfig({})).to.not.have.any.keys('smtpUrl', 'mailFrom');
  });

  it('never echoes a secret in its error', () => {
    expect(() => loadConfig({ SMTP_URL: 'ftp://user:topsecret@x' }))
      .to.throw(ConfigError)
      .that.satisfies((e: Error) => !e.message.includes('topsecret'));
    expect(() => loadConfig({ HERALD_APPS: 'bad id:topsecret' }))
      .to.throw(ConfigError)
      .that.satisfies((e: Error) => !e.message.includes('topsecret'));
  });

  it('keeps what ended for the documented defaults; reads HERALD_RETENTION_* as durations or forever (issue 26)', () => {
    const day = 24 * 3600_000;
    const defaults = loadConfig({});
    expect(defaults.retention).to.deep.equal({
      messages: 7 * day,
      deliveries: 7 * day,
      pushes: 7 * day,
      rtioCalls: day,
      rtioReports: 7 * day,
      emails: 7 * day,
      inboxes: 30 * day,
      tickets: 30 * day,
      // Records that never end: kept unless the app (or these variables) say otherwise (000: 永久有效).
      unexpiringMessages: 'forever',
      datahubNotifications: 'forever',
    });
    expect(defaults).to.deep.include({ retentionBatchSize: 1000, retentionIntervalSeconds: 60 });
    const set = loadConfig({
      HERALD_RETENTION_MESSAGES: 'forever',
      HERALD_RETENTION_DELIVERIES: '90s',
      HERALD_RETENTION_PUSHES: '0',
      HERALD_RETENTION_RTIO_CALLS: '15m',
      HERALD_RETENTION_RTIO_REPORTS: '2h',
      HERALD_RETENTION_BATCH_SIZE: '500',
      HERALD_RETENTION_INTERVAL_SECONDS: '5',
      HERALD_RETENTION_UNEXPIRING_MESSAGES: '30d',
      HERALD_RETENTION_DATAHUB_NOTIFICATIONS: '5m',
    });
    expect(set.retention).to.deep.include({
      messages: 'forever',
      deliveries: 90_000,
      pushes: 0,
      rtioCalls: 900_000,
      rtioReports: 7_200_000,
      emails: 7 * day,
      unexpiringMessages: 30 * day,
      datahubNotifications: 300_000,
    });
    expect(set).to.deep.include({ retentionBatchSize: 500, retentionIntervalSeconds: 5 });
  });
});
