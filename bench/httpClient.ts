/**
 * A keep-alive HTTP client of one herald, and Koala's tickets and sends through it.
 *
 *   BENCH_REQUEST_TIMEOUT_MS     one HTTP request's timeout (default 30,000)
 */
import http from 'node:http';
import { APP_ID, APP_SECRET, type HeraldChild, type HeraldOptions, startHerald } from './heraldProcess';
import { type Cleanup, envNumber } from './run';

export interface HttpResponse {
  readonly status: number;
  readonly body: string;
}

/** A keep-alive HTTP/1.1 client of one herald (node:http; the `undici` package is not installed). */
export class HttpClient {
  private readonly agent: http.Agent;
  private readonly host: string;
  private readonly port: number;
  private readonly timeoutMs: number;

  constructor(baseUrl: string, options: { maxSockets: number; timeoutMs?: number }) {
    const url = new URL(baseUrl);
    if (url.hostname !== '127.0.0.1') throw new Error(`benchmarks only talk to 127.0.0.1, not ${url.hostname}`);
    this.host = url.hostname;
    this.port = Number(url.port);
    this.agent = new http.Agent({
      keepAlive: true,
      maxSockets: options.maxSockets,
      maxFreeSockets: options.maxSockets,
    });
    this.timeoutMs = options.timeoutMs ?? envNumber('BENCH_REQUEST_TIMEOUT_MS', 30_000, 1);
  }

  request(
    method: string,
    requestPath: string,
    body?: string,
    headers: Record<string, string> = {},
  ): Promise<HttpResponse> {
    return new Promise((resolve, reject) => {
      const request = http.request(
        {
          host: this.host,
          port: this.port,
          method,
          path: requestPath,
          agent: this.agent,
          headers: body === undefined ? headers : { ...headers, 'content-length': Buffer.byteLength(body) },
        },
        (response) => {
          const chunks: Buffer[] = [];
          response.on('data', (chunk: Buffer) => chunks.push(chunk));
          response.on('end', () =>
            resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).toString() }),
          );
          response.on('error', reject);
        },
      );
      request.setTimeout(this.timeoutMs, () =>
        request.destroy(new Error(`${method} ${requestPath}: no answer within ${this.timeoutMs} ms`)),
      );
      request.on('error', reject);
      request.end(body);
    });
  }

  get(requestPath: string): Promise<HttpResponse> {
    return this.request('GET', requestPath);
  }

  postForm(requestPath: string, fields: Record<string, string>): Promise<HttpResponse> {
    return this.request('POST', requestPath, new URLSearchParams(fields).toString(), {
      'content-type': 'application/x-www-form-urlencoded',
    });
  }

  postJson(requestPath: string, value: unknown, headers: Record<string, string> = {}): Promise<HttpResponse> {
    return this.request('POST', requestPath, JSON.stringify(value), { ...headers, 'content-type': 'application/json' });
  }

  /** The agent's sockets: busy, idle (kept alive) and requests queued for one (maxSockets reached). */
  sockets(): { busy: number; idle: number; queued: number } {
    const count = (group: NodeJS.ReadOnlyDict<unknown[]>) =>
      Object.values(group).reduce((n, list) => n + (list?.length ?? 0), 0);
    return {
      busy: count(this.agent.sockets),
      idle: count(this.agent.freeSockets),
      queued: count(this.agent.requests as NodeJS.ReadOnlyDict<unknown[]>),
    };
  }

  close(): void {
    this.agent.destroy();
  }
}

/** herald started on `databaseUrl` and a keep-alive client of it; `cleanup` closes the client and stops herald. */
export async function startHeraldWithClient(
  cleanup: Cleanup,
  databaseUrl: string,
  client: { maxSockets: number; timeoutMs?: number },
  options?: HeraldOptions,
): Promise<{ herald: HeraldChild; http: HttpClient }> {
  const herald = await startHerald(databaseUrl, options);
  cleanup.add('stop herald', () => herald.stop());
  const http = new HttpClient(herald.url, client);
  cleanup.add('close the HTTP agent', async () => http.close());
  return { herald, http };
}

/** Koala's answer envelope. */
export interface KoalaAnswer {
  readonly status: number;
  readonly errcode: number;
  readonly errmsg: string;
  readonly result: unknown;
}

export function parseKoala(response: HttpResponse): KoalaAnswer {
  try {
    return JSON.parse(response.body) as KoalaAnswer;
  } catch {
    return { status: -1, errcode: -response.status, errmsg: `HTTP ${response.status}: not JSON`, result: null };
  }
}

/** POST /koala/api/mas/tickets for `userId` of camel. */
export async function issueTicket(client: HttpClient, userId: string): Promise<string> {
  const answer = parseKoala(
    await client.postForm('/koala/api/mas/tickets', { app_key: APP_ID, secret_key: APP_SECRET, user_id: userId }),
  );
  if (answer.status !== 0 || typeof answer.result !== 'string')
    throw new Error(`ticket for ${userId}: ${JSON.stringify(answer)}`);
  return answer.result;
}

/** POST /koala/api/mas/messages. */
export async function koalaSend(
  client: HttpClient,
  fields: { ticket: string; users: string; title: string; content: string },
): Promise<KoalaAnswer> {
  return parseKoala(await client.postForm('/koala/api/mas/messages', fields));
}
