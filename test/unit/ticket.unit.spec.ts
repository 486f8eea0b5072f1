import { expect } from 'chai';
import { ticketDecider, type IssueTicket, type TicketEvent } from '../../domain/ticket/ticket';
import { deciderSpecification } from '../support/deciderSpecification';

// Koala's POST /koala/api/mas/tickets: the token is verified by its signature; the event records the issue.
describe('ticket decider', () => {
  const spec = deciderSpecification(ticketDecider);
  // What the request says is what the event records.
  const ticket = {
    ticketId: 't-1',
    appId: 'camel',
    userId: 'zhangbin',
    roles: ['admin'],
    issuedAt: '2026-11-22T10:00:00.000Z',
    expiresAt: '2026-11-22T12:00:00.000Z',
  };
  const issue: IssueTicket = { type: 'IssueTicket', ...ticket };
  const issued: TicketEvent = { type: 'TicketIssued', data: ticket };

  it('records the issue: who, in which app, with which roles, until when', () => {
    spec.given([]).when(issue).then([issued]);
    spec
      .given([])
      .when({ ...issue, roles: [] })
      .then([{ ...issued, data: { ...issued.data, roles: [] } }]);
  });

  it('issued already (a retried request with the same ticket id) records nothing', () => {
    spec.given([issued]).when(issue).then([]);
    spec
      .given([issued])
      .when({ ...issue, userId: 'someone-else', expiresAt: '2026-11-23T00:00:00.000Z' })
      .then([]);
  });

  it('copies the roles: a later change to the request does not reach the event', () => {
    const roles = ['admin'];
    const [event] = ticketDecider.decide({ ...issue, roles }, ticketDecider.initialState());
    roles.push('root');
    expect(event!.data.roles).to.deep.equal(['admin']);
  });
});
