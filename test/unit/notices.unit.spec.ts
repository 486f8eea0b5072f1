import { expect } from 'chai';
import { othersListening, type SessionActivity } from '../../src/postgres/notices';

/** src/postgres/notices.ts: which other sessions a commit must NOTIFY, from pg_stat_activity's rows. */
describe('notices: other listeners', () => {
  const TAG = '100.0';
  const read = (...sessions: SessionActivity[]) => othersListening(sessions, TAG, new Set([7]));
  const session = (pid: number, applicationName: string | null, query: string | null): SessionActivity => ({
    pid,
    applicationName,
    query,
  });

  it("knows this process's sessions by name or pid, whatever their query text shows", () => {
    const others = read(
      session(1, 'herald:100.0', ''),
      session(2, 'herald-listen:100.0:herald_events', '<insufficient privilege>'),
      session(7, '', 'LISTEN herald_events'),
    );
    expect([...others.channels]).to.deep.equal([]);
    expect([...others.unknown]).to.deep.equal([]);
  });

  it("knows another herald's listeners by name, and its other sessions as not listening, even with the query hidden", () => {
    const others = read(
      session(3, 'herald-listen:200.0:herald_checkpoints', '<insufficient privilege>'),
      session(4, 'herald:200.0', null),
    );
    expect([...others.channels]).to.deep.equal(['herald_checkpoints']);
    expect([...others.unknown]).to.deep.equal([]);
  });

  it('reads a visible LISTEN however it is written, and ignores other visible statements', () => {
    const others = read(
      session(5, 'herald', 'LISTEN herald_events'),
      session(6, 'psql', '  listen "herald_checkpoints";'),
      session(8, 'psql', 'Listen Herald_Events'),
      session(9, 'psql', 'SELECT 1'),
    );
    expect([...others.channels].sort()).to.deep.equal(['herald_checkpoints', 'herald_events']);
    expect([...others.unknown]).to.deep.equal([]);
  });

  it('counts a session it cannot tell (query hidden by privilege or track_activities off) as maybe listening', () => {
    expect(read(session(10, 'herald', '<insufficient privilege>')).unknown.size).to.equal(1);
    expect(read(session(11, null, null)).unknown.size).to.equal(1);
    expect(read(session(12, 'psql', '')).unknown.size).to.equal(1);
  });
});
