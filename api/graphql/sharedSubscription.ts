import {
  createSourceEventStream,
  execute,
  type DocumentNode,
  type ExecutionArgs,
  type ExecutionResult,
  type GraphQLError,
} from 'graphql';
import type { WebSocket } from 'ws';
import { sendText } from './graphqlWsTransport';

/** Who receives an operation's results: a socket, and the operation's id on it. */
export interface Subscriber {
  readonly socket: WebSocket;
  readonly id: string;
}

/**
 * graphql-ws's `subscribe`, for a payload pushed to many subscribers: it is executed once per distinct
 * operation and serialized once, and each subscriber's socket gets the same bytes behind its own
 * operation id. graphql-ws alone would execute and serialize it once per subscriber. A broadcast to
 * 10,000 terminals that run the same subscription is one execution and one JSON text.
 *
 * Sound because herald's subscription fields resolve from the pushed payload alone, never from the
 * subscriber's context (the viewer decides only *which* payloads reach a subscriber, in the source
 * stream, which stays per subscriber): a payload is executed with the context of the first subscriber
 * it reaches, so a field resolver that read the context would answer everyone as that one. Frames are kept per payload object in a WeakMap: they go when
 * the payload does. That relies on the bus handing every subscriber of a publication the same object
 * (its identity contract, Bus.subscribe in src/bus/bus.ts, tested for both buses).
 *
 * An operation is its document object (OperationChecks parses each text once, so subscribers of the same
 * text share it), its name and its variables. The document is keyed by a small number, not its printed
 * text: 10,000 idle subscribers would otherwise keep 10,000 copies of the query (≈1 KB each).
 *
 * The results bypass graphql-ws's own `next` (it would stringify each one for each subscriber): the
 * iterator graphql-ws gets yields nothing; it ends when the source does, and graphql-ws then sends
 * `complete` after the last result, or fails with the source, and graphql-ws sends `error`.
 */
export class SharedSubscriptions {
  private readonly frames = new WeakMap<object, Map<string, Promise<Buffer>>>();
  private readonly subscribers = new WeakMap<ExecutionArgs, Subscriber>();
  private readonly documentIds = new WeakMap<DocumentNode, number>();
  private documents = 0;

  /** `formatError` masks an error in a result, as the same error in a query's result would be. */
  constructor(private readonly formatError: (error: GraphQLError) => GraphQLError) {}

  /** For graphql-ws's `onSubscribe`: `args`, which it returns, execute `subscriber`'s operation. */
  attach(args: ExecutionArgs, subscriber: Subscriber): ExecutionArgs {
    this.subscribers.set(args, subscriber);
    return args;
  }

  readonly subscribe = async (args: ExecutionArgs): Promise<AsyncIterableIterator<never> | ExecutionResult> => {
    const stream = await createSourceEventStream(args);
    if (!(Symbol.asyncIterator in stream)) return stream;
    const source = stream[Symbol.asyncIterator]();
    const subscriber = this.subscribers.get(args);
    this.subscribers.delete(args); // the Delivery keeps `args`, so the entry would last as long
    if (!subscriber) {
      await source.return?.();
      throw new Error('a subscription was not attached to its socket (SharedSubscriptions.attach in onSubscribe)');
    }
    const operation = `${this.idOf(args.document)}\u0000${args.operationName ?? ''}\u0000${JSON.stringify(args.variableValues ?? {})}`;
    return new Delivery(source, this, args, operation, subscriber.socket, subscriber.id);
  };

  private idOf(document: DocumentNode): number {
    let id = this.documentIds.get(document);
    if (id === undefined) this.documentIds.set(document, (id = ++this.documents));
    return id;
  }

  /** The `next` message for `payload`, from after its id to its end: `,"type":"next","payload":{…}}`. */
  frameOf(args: ExecutionArgs, operation: string, payload: unknown): Promise<Buffer> {
    if (typeof payload !== 'object' || payload === null) return this.render(args, payload);
    let byOperation = this.frames.get(payload);
    if (!byOperation) this.frames.set(payload, (byOperation = new Map()));
    let frame = byOperation.get(operation);
    if (!frame) byOperation.set(operation, (frame = this.render(args, payload)));
    return frame;
  }

  /** As graphql-ws writes a result: `data` (and `extensions`) first, `errors` after, each formatted. */
  private async render(args: ExecutionArgs, payload: unknown): Promise<Buffer> {
    const { errors, ...result } = await execute({ ...args, rootValue: payload });
    const formatted = errors ? { ...result, errors: errors.map((error) => this.formatError(error).toJSON()) } : result;
    return Buffer.from(`,"type":"next","payload":${JSON.stringify(formatted)}}`);
  }
}

const DONE: IteratorReturnResult<undefined> = { done: true, value: undefined };

/**
 * One subscriber's operation: each payload of its source written to its socket as a graphql-ws `next`
 * message, `{"id":<its id>` then the frame's shared rest. It is what graphql-ws iterates: nothing, until
 * the source ends. Its `return()` (the client completed the operation, or the socket closed) reaches the
 * source at once. Writing starts at graphql-ws's first `next()`, so a source failing at once fails that
 * call. A class, not closures: 10,000 idle subscribers share its methods.
 */
class Delivery implements AsyncIterableIterator<never> {
  private stopped = false;
  private writing: Promise<void> | undefined;
  private readonly head: string;

  constructor(
    private readonly source: AsyncIterator<unknown>,
    private readonly frames: SharedSubscriptions,
    private readonly args: ExecutionArgs,
    private readonly operation: string,
    private readonly socket: WebSocket,
    id: string,
  ) {
    this.head = `{"id":${JSON.stringify(id)}`;
  }

  [Symbol.asyncIterator](): this {
    return this;
  }

  next(): Promise<IteratorReturnResult<undefined>> {
    return (this.writing ??= this.write()).then(() => DONE);
  }

  async return(): Promise<IteratorReturnResult<undefined>> {
    this.stopped = true;
    await this.source.return?.();
    return DONE;
  }

  async throw(error: unknown): Promise<never> {
    await this.return();
    throw error;
  }

  private async write(): Promise<void> {
    try {
      while (await this.writeNext());
    } catch (error) {
      await this.source.return?.().catch(() => undefined);
      // The client completed the operation, or its socket closed: graphql-ws must send it nothing more.
      if (this.stopped) return;
      throw error;
    }
  }

  /**
   * Waits for the source's next payload and writes it; false once the source ended. A call of its own,
   * so an idle subscriber's waiting frame holds nothing of the last payload or frame it wrote.
   */
  private async writeNext(): Promise<boolean> {
    const next = await this.source.next();
    if (next.done || this.stopped) return false;
    const tail = await this.frames.frameOf(this.args, this.operation, next.value);
    if (this.stopped) return false;
    const backedUp = sendText(this.socket, withHead(this.head, tail));
    if (backedUp) await backedUp;
    return true;
  }
}

/** `head` (UTF-8) followed by `tail`, one buffer: one frame, the tail's bytes copied, not serialized again. */
function withHead(head: string, tail: Buffer): Buffer {
  const headBytes = Buffer.byteLength(head);
  const frame = Buffer.allocUnsafe(headBytes + tail.length);
  frame.write(head, 0);
  tail.copy(frame, headBytes);
  return frame;
}
