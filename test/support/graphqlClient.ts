import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { Changes } from './changes';

export interface GraphqlResponse<T = Record<string, unknown>> {
  readonly status: number;
  readonly data?: T | null;
  readonly errors?: Array<{ message: string; extensions?: { code?: string } & Record<string, unknown> }>;
}

/** A GraphQL request over HTTP, as a frontend sends it. */
export async function graphql<T = Record<string, unknown>>(
  baseUrl: string,
  ticket: string | undefined,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GraphqlResponse<T>> {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      ...(ticket && { authorization: `Bearer ${ticket}` }),
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as Omit<GraphqlResponse<T>, 'status'>;
  return { status: response.status, ...body };
}

/** A GraphQL request over HTTP with any Authorization header (an RTIO device: `RtioDevice <device_id>:<device_key>`). */
export async function graphqlWithAuthorization<T = Record<string, unknown>>(
  baseUrl: string,
  authorization: string,
  query: string,
  variables?: Record<string, unknown>,
): Promise<GraphqlResponse<T>> {
  const response = await fetch(`${baseUrl}/graphql`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      accept: 'application/graphql-response+json, application/json',
      authorization,
    },
    body: JSON.stringify({ query, variables }),
  });
  const body = (await response.json()) as Omit<GraphqlResponse<T>, 'status'>;
  return { status: response.status, ...body };
}

export const MESSAGE_FIELDS = 'id seq title content sender sentAt expiresAt props meta { realm seq sender stime }';

export interface PushedMessage {
  id: string;
  seq: string;
  title: string;
  content: string;
  sender: string;
  sentAt: string;
  expiresAt: string | null;
  props: Record<string, string> | null;
  meta: { realm: string; seq: string; sender: string; stime: string };
}

/** A terminal subscribed to `messages` over graphql-ws; it records what it receives and when. */
export class Terminal {
  readonly received: Array<PushedMessage & { receivedAt: number }> = [];
  readonly errors: unknown[] = [];
  private readonly changes = new Changes();
  private closeCode: number | undefined;

  private constructor(private readonly client: Client) {}

  static connect(baseUrl: string, connectionParams: Record<string, unknown>): Terminal {
    let terminal: Terminal | undefined;
    const client = createClient({
      url: `${baseUrl.replace(/^http/, 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams,
      retryAttempts: 0,
      lazy: false,
      onNonLazyError: () => undefined, // recorded through `closed` instead of printed
      on: {
        closed: (event) => {
          terminal!.closeCode = (event as { code?: number }).code;
          terminal!.notify();
        },
      },
    });
    terminal = new Terminal(client);
    client.subscribe<{ messages: PushedMessage }>(
      { query: `subscription { messages { ${MESSAGE_FIELDS} } }` },
      {
        next: (result) => {
          if (result.data?.messages) terminal!.received.push({ ...result.data.messages, receivedAt: Date.now() });
          if (result.errors) terminal!.errors.push(...result.errors);
          terminal!.notify();
        },
        error: (error) => {
          terminal!.errors.push(error);
          terminal!.notify();
        },
        complete: () => terminal!.notify(),
      },
    );
    return terminal;
  }

  get closedWith(): number | undefined {
    return this.closeCode;
  }

  /** Waits until `condition` holds, or fails after the deadline. */
  async until(condition: (terminal: Terminal) => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    await this.changes.until(
      () => condition(this),
      () =>
        `terminal: timed out waiting for ${what}; received ${this.received.length}, errors ${JSON.stringify(this.errors)}`,
      timeoutMs,
    );
  }

  /**
   * Waits until the subscription is live: a feed without `since` gets only what is pushed after the
   * server has it, so one probe sent right after connecting can go before it. Sends probes until one
   * arrives; answers how many were sent (each may yet arrive).
   */
  async subscribed(sendProbe: () => Promise<unknown>, timeoutMs = 15_000): Promise<number> {
    const deadline = Date.now() + timeoutMs;
    const count = this.received.length;
    for (let sent = 1; ; sent++) {
      await sendProbe();
      try {
        await this.until((t) => t.received.length > count, 'a probe', Math.min(1000, deadline - Date.now()));
        return sent;
      } catch (error) {
        if (Date.now() >= deadline) throw error;
      }
    }
  }

  async close(): Promise<void> {
    await this.client.dispose();
  }

  private notify(): void {
    this.changes.notify();
  }
}

/** One subscription of a GraphqlSocket: what it received, in order, its errors, and whether it ended. */
export interface LiveOperation<T> {
  readonly results: T[];
  readonly errors: Array<{ message: string; extensions?: { code?: string } & Record<string, unknown> }>;
  readonly completed: boolean;
  /** Stops it (graphql-ws `complete`). */
  stop(): void;
}

/**
 * A graphql-ws connection for any operation, with any connectionParams (a user's `{ticket}`, a device's
 * `{deviceToken}`): subscriptions record their results; queries and mutations answer their one result.
 */
export class GraphqlSocket {
  private readonly changes = new Changes();
  private closeCode: number | undefined;
  private connected = false;
  private readonly client: Client;

  private constructor(baseUrl: string, connectionParams: Record<string, unknown>) {
    this.client = createClient({
      url: `${baseUrl.replace(/^http/, 'ws')}/graphql`,
      webSocketImpl: WebSocket,
      connectionParams,
      retryAttempts: 0,
      lazy: false,
      onNonLazyError: () => undefined, // recorded through `closedWith` instead of printed
      on: {
        connected: () => {
          this.connected = true;
          this.notify();
        },
        closed: (event) => {
          this.closeCode = (event as { code?: number }).code;
          this.notify();
        },
      },
    });
  }

  static connect(baseUrl: string, connectionParams: Record<string, unknown>): GraphqlSocket {
    return new GraphqlSocket(baseUrl, connectionParams);
  }

  get closedWith(): number | undefined {
    return this.closeCode;
  }

  get isConnected(): boolean {
    return this.connected && this.closeCode === undefined;
  }

  subscribe<T = Record<string, unknown>>(query: string, variables?: Record<string, unknown>): LiveOperation<T> {
    const operation = {
      results: [] as T[],
      errors: [] as LiveOperation<T>['errors'],
      completed: false,
      stop: () => undefined as void,
    };
    const unsubscribe = this.client.subscribe<T>(
      { query, ...(variables && { variables }) },
      {
        next: (result) => {
          if (result.data) operation.results.push(result.data as T);
          if (result.errors) operation.errors.push(...(result.errors as LiveOperation<T>['errors']));
          this.notify();
        },
        error: (error) => {
          operation.errors.push(
            ...(Array.isArray(error)
              ? error
              : [
                  {
                    message: String((error as { message?: unknown })?.message ?? error),
                    extensions: { code: 'SOCKET_CLOSED' },
                  },
                ]),
          );
          operation.completed = true;
          this.notify();
        },
        complete: () => {
          operation.completed = true;
          this.notify();
        },
      },
    );
    operation.stop = () => unsubscribe();
    return operation;
  }

  /** A query or mutation over the socket: its one result. */
  async request<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
  ): Promise<Omit<GraphqlResponse<T>, 'status'>> {
    const operation = this.subscribe<T>(query, variables);
    await this.until(() => operation.completed, `the answer to ${query}`);
    return {
      ...(operation.results[0] !== undefined && { data: operation.results[0] }),
      ...(operation.errors.length > 0 && { errors: operation.errors }),
    };
  }

  /** Waits until `condition` holds, or fails after the deadline. */
  async until(condition: () => boolean, what: string, timeoutMs = 15_000): Promise<void> {
    await this.changes.until(
      condition,
      () => `graphql socket: timed out waiting for ${what} (closed with ${this.closeCode})`,
      timeoutMs,
    );
  }

  async close(): Promise<void> {
    await this.client.dispose();
  }

  private notify(): void {
    this.changes.notify();
  }
}
