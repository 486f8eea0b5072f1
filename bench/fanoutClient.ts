/**
 * One subscriber process of bench/fanout.ts: it holds its share of the subscribers' sockets (graphql-ws
 * to herald, or MQTT to Mosquitto) and notes when each of them receives the broadcast it is told to
 * expect. Driven by its parent over the IPC channel (FanoutCommand in, FanoutReply out); it prints
 * nothing on stdout, and errors on stderr.
 *
 * Arrival times are process.hrtime (CLOCK_MONOTONIC, milliseconds): the same clock in every process of
 * the machine, so the parent can subtract its own send time from them.
 *
 * graphql-ws is spoken on a bare `ws` socket (graphql-transport-ws: connection_init with the ticket,
 * subscribe, next), not through graphql-ws's createClient: per socket that keeps the client's memory and
 * CPU small, and these processes share the machine's cores with the server being measured. MQTT goes
 * through the `mqtt` package (MQTT 3.1.1, QoS 0, clean session). Both sides parse each payload's JSON to
 * read its title, which names the broadcast.
 */
import mqtt, { type MqttClient } from 'mqtt';
import WebSocket from 'ws';
import { boundConnect } from './sockets';
import { count, errorText } from './stats';

export const SUBSCRIPTION =
  'subscription { messages { id seq title content sender sentAt meta { realm seq sender stime } } }';

export type FanoutCommand =
  | {
      readonly kind: 'connectGraphql';
      readonly url: string;
      readonly ticket: string;
      readonly count: number;
      readonly batch: number;
      readonly timeoutMs: number;
    }
  | {
      readonly kind: 'connectMqtt';
      readonly url: string;
      readonly topic: string;
      readonly count: number;
      readonly batch: number;
      readonly timeoutMs: number;
    }
  /** From now on, a payload titled `title` is the broadcast being timed; earlier arrivals are forgotten. */
  | { readonly kind: 'expect'; readonly title: string }
  /** Answer a report now, complete or not (the parent's deadline passed). */
  | { readonly kind: 'report' }
  | { readonly kind: 'disconnect'; readonly graceMs: number };

export interface ArrivalReport {
  readonly kind: 'report';
  readonly title: string;
  readonly sockets: number;
  /** Sockets that received the expected broadcast (at least once). */
  readonly received: number;
  /** First arrival of the broadcast per socket that received it, monotonic ms. */
  readonly arrivals: number[];
  /** Receipts of the expected broadcast beyond the first, per socket. */
  readonly duplicates: number;
  /** Payloads with another title (an earlier broadcast arriving late), or unreadable ones. */
  readonly otherPayloads: number;
  /** Size of the last frame (graphql-ws) or MQTT payload received with the expected title. */
  readonly payloadBytes: number | null;
}

export type FanoutReply =
  | { readonly kind: 'ready' }
  | {
      readonly kind: 'connected';
      readonly connected: number;
      readonly failures: Record<string, number>;
      readonly ms: number;
    }
  | { readonly kind: 'expecting'; readonly title: string }
  | ArrivalReport
  | { readonly kind: 'disconnected'; readonly unexpectedEnds: Record<string, number> };

const monotonicMs = () => Number(process.hrtime.bigint()) / 1e6;

/** What a connected subscriber can be told: close, gracefully or not. */
interface Subscriber {
  close(): void;
  terminate(): void;
  closed(): boolean;
}

let subscribers: Subscriber[] = [];
let unexpectedEnds: Record<string, number> = {};
let disconnecting = false;

// The broadcast being timed.
let expected = '';
let firstArrival = new Float64Array(0);
let received = 0;
let duplicates = 0;
let otherPayloads = 0;
let payloadBytes: number | null = null;
let reported = false;

function send(reply: FanoutReply): void {
  process.send!(reply);
}

function report(): void {
  reported = true;
  const arrivals: number[] = [];
  for (const at of firstArrival) if (!Number.isNaN(at)) arrivals.push(at);
  send({
    kind: 'report',
    title: expected,
    sockets: subscribers.length,
    received,
    arrivals,
    duplicates,
    otherPayloads,
    payloadBytes,
  });
}

function onPayload(index: number, title: string | undefined, bytes: number): void {
  const at = monotonicMs();
  if (title !== expected || expected === '') {
    otherPayloads++;
    return;
  }
  payloadBytes = bytes;
  if (!Number.isNaN(firstArrival[index]!)) {
    duplicates++;
    return;
  }
  firstArrival[index] = at;
  received++;
  if (received === subscribers.length && !reported) report();
}

/** A graphql-transport-ws subscriber of `messages`, authenticated by the ticket; resolves once subscribed. */
function graphqlSubscriber(index: number, url: string, ticket: string, timeoutMs: number): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const socket = new WebSocket(url, 'graphql-transport-ws', { perMessageDeflate: false });
    const connected = boundConnect(socket, timeoutMs, reject, (code) => {
      if (!disconnecting) count(unexpectedEnds, `close ${code}`);
    });
    const subscriber: Subscriber = {
      close: () => socket.close(1000),
      terminate: () => socket.terminate(),
      closed: () => socket.readyState === WebSocket.CLOSED,
    };
    socket.on('open', () => socket.send(JSON.stringify({ type: 'connection_init', payload: { ticket } })));
    socket.on('message', (data: Buffer) => {
      let frame: { type?: string; payload?: { data?: { messages?: { title?: string } } } };
      try {
        frame = JSON.parse(data.toString()) as typeof frame;
      } catch {
        otherPayloads++;
        return;
      }
      switch (frame.type) {
        case 'next':
          onPayload(index, frame.payload?.data?.messages?.title, data.length);
          return;
        case 'connection_ack':
          // The server registers the subscription asynchronously: the parent's warm-up broadcast is
          // what proves every subscriber is live.
          socket.send(JSON.stringify({ id: '1', type: 'subscribe', payload: { query: SUBSCRIPTION } }));
          connected();
          resolve(subscriber);
          return;
        case 'ping':
          socket.send('{"type":"pong"}');
          return;
        case 'pong':
          return;
        default:
          if (!disconnecting)
            count(unexpectedEnds, `${frame.type} ${JSON.stringify(frame.payload ?? null)}`.slice(0, 200));
      }
    });
  });
}

/** An MQTT subscriber of `topic` at QoS 0; resolves once the broker has acknowledged the subscription. */
function mqttSubscriber(index: number, url: string, topic: string, timeoutMs: number): Promise<Subscriber> {
  return new Promise((resolve, reject) => {
    const client: MqttClient = mqtt.connect(url, {
      clientId: `fanout-${process.pid}-${index}`,
      protocolVersion: 4,
      clean: true,
      reconnectPeriod: 0,
      connectTimeout: timeoutMs,
    });
    const timer = setTimeout(() => {
      client.end(true);
      reject(new Error('connect timeout'));
    }, timeoutMs);
    const subscriber: Subscriber = {
      close: () => client.end(),
      terminate: () => client.end(true),
      closed: () => client.disconnected || !client.connected,
    };
    client.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
      if (!disconnecting) count(unexpectedEnds, `error ${errorText(error)}`.slice(0, 200));
    });
    client.on('close', () => {
      clearTimeout(timer);
      reject(new Error('closed'));
      if (!disconnecting) count(unexpectedEnds, 'close');
    });
    client.on('message', (_topic, payload) => {
      let title: string | undefined;
      try {
        title = (JSON.parse(payload.toString()) as { title?: string }).title;
      } catch {
        otherPayloads++;
        return;
      }
      onPayload(index, title, payload.length);
    });
    client.once('connect', () => {
      client.subscribe(topic, { qos: 0 }, (error) => {
        clearTimeout(timer);
        if (error) reject(error);
        else resolve(subscriber);
      });
    });
  });
}

/** Opens `count` subscribers, `batch` at a time (each batch waits for the last), and keeps those that connected. */
async function connect(
  count: number,
  batch: number,
  open: (index: number) => Promise<Subscriber>,
): Promise<FanoutReply> {
  const started = monotonicMs();
  const failures: Record<string, number> = {};
  const opened: Subscriber[] = [];
  for (let from = 0; from < count; from += batch) {
    const results = await Promise.allSettled(
      Array.from({ length: Math.min(batch, count - from) }, (_, k) => open(from + k)),
    );
    for (const result of results) {
      if (result.status === 'fulfilled') opened.push(result.value);
      else failures[errorText(result.reason)] = (failures[errorText(result.reason)] ?? 0) + 1;
    }
  }
  // Indexes were given in opening order; a failed one leaves a hole in arrivals, which is only ever NaN.
  subscribers = opened;
  firstArrival = new Float64Array(count).fill(NaN);
  return { kind: 'connected', connected: opened.length, failures, ms: Math.round(monotonicMs() - started) };
}

async function disconnect(graceMs: number): Promise<FanoutReply> {
  disconnecting = true;
  for (const subscriber of subscribers) subscriber.close();
  const until = monotonicMs() + graceMs;
  while (subscribers.some((s) => !s.closed()) && monotonicMs() < until)
    await new Promise((resolve) => setTimeout(resolve, 20));
  for (const subscriber of subscribers) subscriber.terminate();
  const ends = unexpectedEnds;
  subscribers = [];
  unexpectedEnds = {};
  expected = '';
  disconnecting = false;
  return { kind: 'disconnected', unexpectedEnds: ends };
}

async function handle(command: FanoutCommand): Promise<void> {
  switch (command.kind) {
    case 'connectGraphql':
      send(
        await connect(command.count, command.batch, (i) =>
          graphqlSubscriber(i, command.url, command.ticket, command.timeoutMs),
        ),
      );
      return;
    case 'connectMqtt':
      send(
        await connect(command.count, command.batch, (i) =>
          mqttSubscriber(i, command.url, command.topic, command.timeoutMs),
        ),
      );
      return;
    case 'expect':
      expected = command.title;
      firstArrival.fill(NaN);
      received = 0;
      duplicates = 0;
      otherPayloads = 0;
      payloadBytes = null;
      reported = false;
      send({ kind: 'expecting', title: command.title });
      return;
    case 'report':
      report();
      return;
    case 'disconnect':
      send(await disconnect(command.graceMs));
      return;
    default: {
      const unknown: never = command;
      throw new Error(`unknown command ${JSON.stringify(unknown)}`);
    }
  }
}

if (!process.send) {
  process.stderr.write('bench/fanoutClient.ts is started by bench/fanout.ts, with an IPC channel\n');
  process.exit(2);
}
process.on('message', (command: FanoutCommand) => {
  handle(command).catch((error: unknown) => {
    process.stderr.write(`fanout client ${process.pid}: ${(error as Error).stack ?? String(error)}\n`);
    process.exit(1);
  });
});
// The parent gone (its IPC channel closed): nothing left to do.
process.on('disconnect', () => process.exit(0));
// Told once the listener is there: a command sent before it would be lost.
send({ kind: 'ready' });
