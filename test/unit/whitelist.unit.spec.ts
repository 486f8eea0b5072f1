import { expect } from 'chai';
import { DomainError } from '../../domain/decider';
import { itemOwnerDecider, type ItemOwnerEvent, type ItemOwnerState } from '../../domain/whitelist/itemOwner';
import {
  ownerNotification,
  whitelistDecider,
  type WhitelistEvent,
  type WhitelistState,
} from '../../domain/whitelist/whitelistApplication';
import { deciderSpecification } from '../support/deciderSpecification';

// datahub's apply_whitelist (shared/seeds/001_e25b4a10524b93b6.txt), whose own example names no owner:
// the application waits for the item's owner the app registers (issue 22).
describe('whitelist applications and item owners', () => {
  const item = { appId: 'camel', repname: 'repo001', itemname: 'item123' };
  const apply = (namedOwner?: string, registeredOwner?: string) => ({
    type: 'ApplyWhitelist' as const,
    applicationId: 'a1',
    ...item,
    applicant: 'li4@example.com',
    namedOwner,
    registeredOwner,
    now: 't1',
  });
  const applied = (owner?: string): WhitelistEvent => ({
    type: 'WhitelistApplied',
    data: {
      applicationId: 'a1',
      ...item,
      applicant: 'li4@example.com',
      ...(owner !== undefined && { owner }),
      appliedAt: 't1',
    },
  });
  const registered = (owner: string, at = 't0'): ItemOwnerEvent => ({
    type: 'ItemOwnerRegistered',
    data: { ...item, owner, registeredAt: at },
  });
  const removed: ItemOwnerEvent = { type: 'ItemOwnerRemoved', data: { ...item, removedAt: 't2' } };
  const application = (events: WhitelistEvent[]): WhitelistState =>
    events.reduce(whitelistDecider.evolve, whitelistDecider.initialState());
  const owners = (events: ItemOwnerEvent[]): ItemOwnerState =>
    events.reduce(itemOwnerDecider.evolve, itemOwnerDecider.initialState());

  describe('applying', () => {
    const spec = deciderSpecification(whitelistDecider);
    it('records an application whose owner is not known yet, without an owner', () => {
      spec.given([]).when(apply()).then([applied()]);
    });
    it('records the owner when known (named, or registered)', () => {
      spec
        .given([])
        .when(apply('zhang3@example.com'))
        .then([applied('zhang3@example.com')]);
      spec
        .given([])
        .when(apply(undefined, 'zhang3@example.com'))
        .then([applied('zhang3@example.com')]);
      spec
        .given([])
        .when(apply('named@example.com', 'zhang3@example.com'))
        .then([applied('named@example.com')]);
    });
    it('applying again while the application stands records nothing', () => {
      spec.given([applied()]).when(apply()).then([]);
      spec
        .given([applied('zhang3@example.com')])
        .when(apply('zhang3@example.com'))
        .then([]);
    });
    // Issue 22 (review): applying again naming the owner used to record nothing, so nobody was ever notified.
    it('applying again naming an owner while the application waits for one records that owner, once', () => {
      const named: WhitelistEvent = {
        type: 'WhitelistOwnerNamed',
        data: { applicationId: 'a1', appId: 'camel', owner: 'zhang3@example.com', namedAt: 't1' },
      };
      spec.given([applied()]).when(apply('zhang3@example.com')).then([named]);
      expect(application([applied(), named])).to.deep.include({ status: 'applied', owner: 'zhang3@example.com' });
      // Once an owner is known (named before, named at application, or registered for the item): nothing.
      spec.given([applied(), named]).when(apply('zhang3@example.com')).then([]);
      spec.given([applied(), named]).when(apply('wang5@example.com')).then([]);
      spec
        .given([applied('zhang3@example.com')])
        .when(apply('wang5@example.com'))
        .then([]);
      spec.given([applied()]).when(apply('wang5@example.com', 'zhang3@example.com')).then([]);
    });
    it("applying again once the item's owner is registered records nothing: the owner is notified from the item, once", () => {
      spec.given([applied()]).when(apply(undefined, 'zhang3@example.com')).then([]);
    });
    it('refuses bad names and the applicant as owner also while the application stands (one rule for every request)', () => {
      const named: WhitelistEvent = {
        type: 'WhitelistOwnerNamed',
        data: { applicationId: 'a1', appId: 'camel', owner: 'zhang3@example.com', namedAt: 't1' },
      };
      spec
        .given([applied(), named])
        .when({ ...apply(), repname: '' })
        .thenThrows(DomainError, (e) => expect(e.message).to.include('data.repname'));
      spec
        .given([applied('zhang3@example.com')])
        .when(apply(undefined, 'li4@example.com'))
        .thenThrows(DomainError, (e) => expect(e.message).to.equal('the owner of the item cannot apply to it'));
    });
    it('refuses an owner who is not one user (every entry point: REST, GraphQL), before and after applying', () => {
      for (const owner of [
        'zhang3 wang5',
        'a,b',
        'zhang3、wang5',
        'a；b',
        '',
        ' ',
        'x'.repeat(129),
        'nul\u0000',
        '\ud800',
      ]) {
        spec
          .given([])
          .when(apply(owner))
          .thenThrows(DomainError, (e) => expect(e.message).to.include('one user id'));
        spec.given([applied()]).when(apply(owner)).thenThrows(DomainError);
      }
      // Counted in characters (code points), as isUserId counts: 128 emoji are one user id.
      spec
        .given([])
        .when(apply('😀'.repeat(128)))
        .then([applied('😀'.repeat(128))]);
    });
    it('refuses the owner applying, and blank or overlong names', () => {
      spec.given([]).when(apply('li4@example.com')).thenThrows(DomainError);
      spec.given([]).when(apply(undefined, 'li4@example.com')).thenThrows(DomainError);
      spec.given([applied()]).when(apply('li4@example.com')).thenThrows(DomainError);
      spec
        .given([])
        .when({ ...apply(), repname: ' ' })
        .thenThrows(DomainError, (e) => expect(e.message).to.include('data.repname'));
      spec
        .given([])
        .when({ ...apply(), itemname: 'x'.repeat(129) })
        .thenThrows(DomainError, (e) => expect(e.message).to.include('data.itemname'));
      // 1-128 characters, counted in code points: 128 emoji (256 UTF-16 units) are a name, 129 are not.
      spec
        .given([])
        .when({ ...apply(), itemname: '😀'.repeat(128) })
        .then([{ ...applied(), data: { ...applied().data, itemname: '😀'.repeat(128) } } as WhitelistEvent]);
      spec
        .given([])
        .when({ ...apply(), itemname: '😀'.repeat(129) })
        .thenThrows(DomainError);
    });
  });

  describe("an item's owner", () => {
    const spec = deciderSpecification(itemOwnerDecider);
    const register = (owner: string, now = 't1') => ({ type: 'RegisterItemOwner' as const, ...item, owner, now });
    const remove = { type: 'RemoveItemOwner' as const, ...item, now: 't2' };
    it('registers, and registering the same owner again records nothing', () => {
      spec
        .given([])
        .when(register('zhang3@example.com'))
        .then([registered('zhang3@example.com', 't1')]);
      spec
        .given([registered('zhang3@example.com')])
        .when(register('zhang3@example.com'))
        .then([]);
    });
    it('changes to another owner, and removes', () => {
      spec
        .given([registered('zhang3@example.com')])
        .when(register('wang5@example.com'))
        .then([registered('wang5@example.com', 't1')]);
      spec
        .given([registered('zhang3@example.com')])
        .when(remove)
        .then([removed]);
      spec.given([]).when(remove).then([]);
      spec
        .given([registered('zhang3@example.com'), removed])
        .when(register('zhang3@example.com'))
        .then([registered('zhang3@example.com', 't1')]);
    });
    it('refuses an owner that is not one user, and bad names', () => {
      for (const owner of ['', 'a,b', 'a b', 'x'.repeat(129), 'nul\u0000'])
        spec.given([]).when(register(owner)).thenThrows(DomainError);
      spec
        .given([])
        .when({ ...register('zhang3'), itemname: '' })
        .thenThrows(DomainError);
    });
    it('counts names and owners in characters (code points), not UTF-16 units', () => {
      spec
        .given([])
        .when({ ...register('😀'.repeat(128)), repname: '😀'.repeat(128) })
        .then([
          {
            type: 'ItemOwnerRegistered',
            data: { ...item, repname: '😀'.repeat(128), owner: '😀'.repeat(128), registeredAt: 't1' },
          },
        ]);
      spec
        .given([])
        .when(register('😀'.repeat(129)))
        .thenThrows(DomainError);
    });
  });

  describe("the owner's notification", () => {
    const notify = (app: WhitelistState, itemOwner: ItemOwnerState) => ownerNotification(app, itemOwner, 'n1', 't3');
    it('none while no owner is known, or before the application', () => {
      expect(notify(application([applied()]), owners([]))).to.equal(undefined);
      expect(notify(application([applied()]), owners([registered('zhang3@example.com'), removed]))).to.equal(undefined);
      expect(notify(application([]), owners([registered('zhang3@example.com')]))).to.equal(undefined);
    });
    it("to the registered owner once known, as the seed's apply_whitelist: level 50, from the applicant, data {repname, itemname}", () => {
      expect(notify(application([applied()]), owners([registered('zhang3@example.com')]))).to.deep.equal({
        type: 'SendNotification',
        notificationId: 'n1',
        appId: 'camel',
        notificationType: 'apply_whitelist',
        sender: 'li4@example.com',
        senderIsAdmin: false,
        receivers: ['zhang3@example.com'],
        level: 50,
        forBrowser: true,
        forClient: false,
        data: { repname: 'repo001', itemname: 'item123' },
        now: 't3',
      });
    });
    it('the owner named with the application comes first', () => {
      expect(
        notify(application([applied('named@example.com')]), owners([registered('zhang3@example.com')]))?.receivers,
      ).to.deep.equal(['named@example.com']);
      expect(notify(application([applied('named@example.com')]), owners([]))?.receivers).to.deep.equal([
        'named@example.com',
      ]);
    });
    it("another item's or another app's owner is not this item's; the applicant owning the item gets nothing", () => {
      const elsewhere = (change: Partial<typeof item>): ItemOwnerEvent => ({
        type: 'ItemOwnerRegistered',
        data: { ...item, ...change, owner: 'x@example.com', registeredAt: 't0' },
      });
      expect(notify(application([applied()]), owners([elsewhere({ itemname: 'item124' })]))).to.equal(undefined);
      expect(notify(application([applied()]), owners([elsewhere({ appId: 'other' })]))).to.equal(undefined);
      expect(notify(application([applied()]), owners([registered('li4@example.com')]))).to.equal(undefined);
    });
  });
});
