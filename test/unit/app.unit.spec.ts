import { expect } from 'chai';
import { appDecider, type AppEvent } from '../../domain/app/app';
import { DomainError } from '../../domain/decider';
import { deciderSpecification } from '../support/deciderSpecification';

describe('app decider', () => {
  const spec = deciderSpecification(appDecider);
  const now = '2026-11-22T10:00:00.000Z';
  const registered: AppEvent = {
    type: 'AppRegistered',
    data: { appId: 'camel', secretHash: 'scrypt:one', registeredAt: now },
  };

  it('registers a new app', () => {
    spec.given([]).when({ type: 'RegisterApp', appId: 'camel', secretHash: 'scrypt:one', now }).then([registered]);
  });

  it('registering again with the same secret changes nothing (idempotent start-up)', () => {
    spec
      .given([registered])
      .when({ type: 'RegisterApp', appId: 'camel', secretHash: 'scrypt:one', now: '2026-11-23T00:00:00.000Z' })
      .then([]);
  });

  it('a different secret changes it', () => {
    spec
      .given([registered])
      .when({ type: 'RegisterApp', appId: 'camel', secretHash: 'scrypt:two', now })
      .then([{ type: 'AppSecretChanged', data: { appId: 'camel', secretHash: 'scrypt:two', changedAt: now } }]);
  });

  it('refuses an app id outside 1-64 of letters, digits, _ . -', () => {
    for (const appId of ['', 'has space', 'x'.repeat(65), '-leading-dash', 'emoji😀']) {
      spec
        .given([])
        .when({ type: 'RegisterApp', appId, secretHash: 'scrypt:one', now })
        .thenThrows(DomainError, (error) => expect(error.code).to.equal('invalid'));
    }
  });

  it('sets its push callback URL (topvdn callback: 1) as the URL parser writes it, once; refuses what is not http(s)', () => {
    const set = { type: 'SetPushCallback' as const, appId: 'camel', now };
    const callbackSet = {
      type: 'AppPushCallbackSet' as const,
      data: { appId: 'camel', url: 'https://app.example.com/topvdn', setAt: now },
    };
    spec
      .given([registered])
      .when({ ...set, url: 'HTTPS://app.example.com/topvdn' })
      .then([callbackSet]);
    spec
      .given([registered, callbackSet])
      .when({ ...set, url: 'https://app.example.com/topvdn' })
      .then([]);
    spec
      .given([registered, callbackSet])
      .when({ ...set, url: null })
      .then([{ type: 'AppPushCallbackSet', data: { appId: 'camel', url: null, setAt: now } }]);
    for (const url of [
      'ftp://x.example.com/',
      'not a url',
      'https://user:pw@x.example.com/',
      `https://x.example.com/${'a'.repeat(2048)}`,
    ]) {
      spec
        .given([registered])
        .when({ ...set, url })
        .thenThrows(DomainError, (error) => expect(error.message).to.match(/^url: /));
    }
    spec
      .given([])
      .when({ ...set, url: 'https://x.example.com/' })
      .thenThrows(DomainError, (error) => expect(error.code).to.equal('not_found'));
  });

  describe('retention of the records that never end (issue 26)', () => {
    const set = (changes: Record<string, string>) => ({ type: 'SetRetention' as const, appId: 'camel', changes, now });
    const retentionSet = (unexpiringMessages: string | null, datahubNotifications: string | null): AppEvent => ({
      type: 'AppRetentionSet',
      data: { appId: 'camel', unexpiringMessages, datahubNotifications, setAt: now },
    });

    it('records the whole setting after a change, each value as HERALD_RETENTION_* writes it', () => {
      spec
        .given([registered])
        .when(set({ unexpiringMessages: '720h' }))
        .then([retentionSet('30d', null)]);
      spec
        .given([registered, retentionSet('30d', null)])
        .when(set({ datahubNotifications: 'forever' }))
        .then([retentionSet('30d', 'forever')]);
    });

    it('changes nothing when the setting stays the same; `default` returns a category to the deployment’s', () => {
      spec
        .given([registered, retentionSet('30d', null)])
        .when(set({ unexpiringMessages: '30d' }))
        .then([]);
      spec.given([registered]).when(set({})).then([]);
      spec
        .given([registered])
        .when(set({ unexpiringMessages: 'default' }))
        .then([]);
      spec
        .given([registered, retentionSet('30d', 'forever')])
        .when(set({ unexpiringMessages: 'default' }))
        .then([retentionSet(null, 'forever')]);
    });

    it('refuses a value that is not a duration, forever or default, naming the field and never the value', () => {
      const belowAnHour = ['0', '0d', '0s', '59m', '3599s'];
      for (const bad of [
        '',
        '7',
        '1w',
        '-1d',
        '36501d',
        'Forever',
        'DEFAULT',
        ' 7d',
        '7d ',
        'null',
        '1e3s',
        ...belowAnHour,
      ]) {
        spec
          .given([registered])
          .when(set({ datahubNotifications: bad }))
          .thenThrows(DomainError, (error) => {
            expect(error.code).to.equal('invalid');
            expect(error.message).to.match(/^datahubNotifications: /);
          });
      }
    });

    it('takes an hour, the least an app may keep them', () => {
      spec
        .given([registered])
        .when(set({ unexpiringMessages: '60m' }))
        .then([retentionSet('1h', null)]);
    });

    it('refuses an app that is not registered', () => {
      spec
        .given([])
        .when(set({ unexpiringMessages: '1d' }))
        .thenThrows(DomainError, (error) => expect(error.code).to.equal('not_found'));
    });
  });
});
