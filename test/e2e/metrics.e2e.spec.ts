import { expect } from 'chai';
import { eventually } from '../support/eventually';
import { GraphqlSocket } from '../support/graphqlClient';
import { issueTicket, postForm, startTestHerald, TestClock } from '../support/herald';

// Prometheus /metrics (docs/operations.md, "Metrics"): behind HERALD_METRICS_TOKEN, in the text format.
describe('GET /metrics', function () {
  this.timeout(60_000);
  const token = 'metrics-token-of-at-least-32-characters';
  let test: Awaited<ReturnType<typeof startTestHerald>>;

  before(async () => {
    test = await startTestHerald({ metricsToken: token });
  });
  after(() => test?.stop());

  const scrape = async (authorization?: string) => {
    const response = await fetch(`${test.url}/metrics`, { headers: authorization ? { authorization } : {} });
    return { status: response.status, type: response.headers.get('content-type'), text: await response.text() };
  };
  /** The value of one sample line, e.g. `herald_events_appended_total{type="MessageSent"}`. */
  const sample = (text: string, series: string): number | undefined => {
    const line = text.split('\n').find((l) => l.startsWith(`${series} `));
    return line === undefined ? undefined : Number(line.slice(series.length + 1));
  };

  it('refuses a scrape without the token, or with another one (401), and leaks nothing', async () => {
    for (const authorization of [undefined, 'Bearer wrong', `Bearer ${token}x`, token, `Basic ${token}`]) {
      const refused = await scrape(authorization);
      expect(refused.status, String(authorization)).to.equal(401);
      expect(refused.text).not.to.contain('herald_');
    }
  });

  it('counts appended events, HTTP requests by route, open sockets and projection lag', async () => {
    const sender = await issueTicket(test.url, 'metrics-sender');
    const sent = await postForm(`${test.url}/koala/api/mas/messages`, {
      ticket: sender,
      users: 'metrics-reader',
      title: 't',
      content: 'c',
    });
    expect(sent.body.status).to.equal(0);
    const socket = GraphqlSocket.connect(test.url, { ticket: await issueTicket(test.url, 'metrics-reader') });
    try {
      await socket.until(() => socket.isConnected, 'a graphql-ws connection');
      const scraped = await eventually(async () => {
        const result = await scrape(`Bearer ${token}`);
        expect(sample(result.text, 'herald_connected_sockets{kind="graphql"}')).to.equal(1);
        expect(sample(result.text, 'herald_projection_lag_positions{projection="notifications"}')).to.equal(0);
        return result;
      });
      expect(scraped.status).to.equal(200);
      expect(scraped.type).to.match(/^text\/plain/);
      expect(sample(scraped.text, 'herald_events_appended_total{type="MessageSent"}')).to.equal(1);
      expect(sample(scraped.text, 'herald_events_appended_total{type="TicketIssued"}')).to.be.at.least(2);
      expect(
        sample(
          scraped.text,
          'herald_http_request_duration_seconds_count{method="POST",route="/koala/api/mas/messages",status="2xx"}',
        ),
      ).to.equal(1);
      expect(sample(scraped.text, 'herald_projection_lag_seconds{projection="notifications"}')).to.equal(0);
      expect(sample(scraped.text, 'herald_connected_sockets{kind="msgpush"}')).to.equal(0);
      // Unmatched URLs share one label: a scanner cannot blow up the series count.
      await fetch(`${test.url}/no/such/${Date.now()}`);
      await fetch(`${test.url}/no/such/${Date.now() + 1}`);
      const after = await scrape(`Bearer ${token}`);
      expect(
        sample(after.text, 'herald_http_request_duration_seconds_count{method="GET",route="unmatched",status="4xx"}'),
      ).to.equal(2);
    } finally {
      await socket.close();
    }
  });

  it('reports rows and bytes per read model table, and the rows retention pruned (issue 26)', async () => {
    const clock = new TestClock();
    const own = await startTestHerald({ metricsToken: token, retentionIntervalSeconds: 86_400 }, clock.now);
    try {
      const sent = await postForm(`${own.url}/koala/api/mas/messages`, {
        ticket: await issueTicket(own.url, 'metrics-sender'),
        users: 'metrics-reader',
        title: 't',
        content: 'c',
        expire: '60',
      });
      expect(sent.body.status).to.equal(0);
      // A week and a day on, the message is past its expiry and the default retention (7 days).
      clock.advance(8 * 24 * 3600_000);
      const passed = await own.herald.retention.runOnce();
      expect(passed.find((r) => r.table === 'notification_messages')?.removed).to.equal(1);
      const scraped = await fetch(`${own.url}/metrics`, { headers: { authorization: `Bearer ${token}` } });
      const text = await scraped.text();
      expect(sample(text, 'herald_retention_pruned_rows_total{table="notification_messages"}')).to.equal(1);
      expect(sample(text, 'herald_read_model_bytes{table="notifications"}')).to.be.greaterThan(0);
      expect(sample(text, 'herald_read_model_rows{table="device_deliveries"}')).to.equal(0);
    } finally {
      await own.stop();
    }
  });

  it('does not exist when no token is configured', async () => {
    const plain = await startTestHerald();
    try {
      const response = await fetch(`${plain.url}/metrics`);
      expect(response.status).to.equal(404);
    } finally {
      await plain.stop();
    }
  });
});
