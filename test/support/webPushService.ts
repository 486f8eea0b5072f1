import http from 'node:http';
import { createRequire } from 'node:module';
import type { AddressInfo } from 'node:net';
import type { Request, Response, NextFunction, Express } from 'express';

/**
 * A Web Push service for the tests: `web-push-testing` (a local RFC 8030 push service that checks the
 * VAPID JWT against the key the subscription was made with, and decrypts each message, RFC 8291) run in
 * this process, with a recorder in front of its `/notify/<clientHash>` route that keeps every request's
 * Web Push headers (`TTL`, `Urgency`, `Topic`) and its answer, and can make a subscription answer a
 * given status (429, 503, …). Plain http on 127.0.0.1: herald reaches it through
 * HERALD_WEBPUSH_ALLOWED_ORIGINS.
 */

interface PushApiModel {
  notifyUrl: string;
  subscribe(options: { applicationServerKey: string; userVisibleOnly?: string }): Promise<BrowserSubscription>;
  getNotifications(body: { clientHash: string }): { messages: string[] };
  expireSubscription(clientHash: string): void;
}

/** What web-push-testing's /subscribe answers: PushSubscriptionJSON and its client hash. */
export interface BrowserSubscription {
  readonly endpoint: string;
  readonly keys: { readonly p256dh: string; readonly auth: string };
  readonly clientHash: string;
}

export interface WebPushRequest {
  readonly clientHash: string;
  readonly ttl: string | undefined;
  readonly urgency: string | undefined;
  readonly topic: string | undefined;
  readonly contentEncoding: string | undefined;
  status: number;
}

export interface WebPushService {
  readonly origin: string;
  readonly requests: WebPushRequest[];
  /** A browser subscribing with the app's public key. */
  subscribe(applicationServerKey: string): Promise<BrowserSubscription>;
  /** What the browser received, decrypted: the payloads' JSON. */
  messages(clientHash: string): Array<Record<string, unknown>>;
  /** The browser unsubscribed: the service answers 410 from now on. */
  expire(clientHash: string): void;
  /** Answers `status` (with `retryAfter` seconds) to the next `times` requests for the subscription. */
  answer(clientHash: string, status: number, times: number, retryAfter?: number): void;
  close(): Promise<void>;
}

const requireModule = createRequire(__filename);

export async function startWebPushService(): Promise<WebPushService> {
  const { PushApiModel } = requireModule('web-push-testing/src/PushApiModel') as {
    PushApiModel: new () => PushApiModel;
  };
  const WebPushTestingServer = requireModule('web-push-testing/src/server') as new (
    model: PushApiModel,
    port: number,
  ) => { _app: Express; setRequestHandlers(): void };
  const model = new PushApiModel();
  const testing = new WebPushTestingServer(model, 0);
  const requests: WebPushRequest[] = [];
  const answers = new Map<string, { status: number; times: number; retryAfter?: number }>();
  testing._app.use((req: Request, res: Response, next: NextFunction) => {
    const match = /^\/notify\/([0-9a-f]+)$/.exec(req.path);
    if (!match) return next();
    const clientHash = match[1]!;
    const request: WebPushRequest = {
      clientHash,
      ttl: req.get('TTL'),
      urgency: req.get('Urgency'),
      topic: req.get('Topic'),
      contentEncoding: req.get('X-Content-Encoding') ?? req.get('Content-Encoding'),
      status: 0,
    };
    requests.push(request);
    res.on('finish', () => (request.status = res.statusCode));
    const answer = answers.get(clientHash);
    if (answer && answer.times > 0) {
      answer.times -= 1;
      if (answer.retryAfter !== undefined) res.set('Retry-After', String(answer.retryAfter));
      return void res.status(answer.status).send({ reason: 'told to' });
    }
    next();
  });
  testing.setRequestHandlers();
  const server = http.createServer(testing._app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  model.notifyUrl = `${origin}/notify/`;
  return {
    origin,
    requests,
    subscribe: (applicationServerKey) => model.subscribe({ applicationServerKey, userVisibleOnly: 'true' }),
    messages: (clientHash) =>
      model.getNotifications({ clientHash }).messages.map((m) => JSON.parse(m) as Record<string, unknown>),
    expire: (clientHash) => model.expireSubscription(clientHash),
    answer: (clientHash, status, times, retryAfter) =>
      answers.set(clientHash, { status, times, ...(retryAfter !== undefined && { retryAfter }) }),
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
