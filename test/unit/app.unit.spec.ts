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
});
