import { createSourceEventStream, execute, type DocumentNode, type ExecutionArgs, type ExecutionResult } from 'graphql';

/**
 * graphql-ws's `subscribe`: graphql's own, except that a payload pushed to many subscribers is executed
 * once per distinct operation (its text, operation name and variables) and the one result is handed to
 * all of them, instead of one execution per subscriber per message. A broadcast to 1,000 terminals that
 * run the same subscription is one execution.
 *
 * Sound because herald's subscription fields resolve from the pushed payload alone, never from the
 * subscriber's context (the viewer decides only *which* payloads reach a subscriber, in the source
 * stream, which stays per subscriber). Results are kept per payload object in a WeakMap: they go when
 * the payload does.
 *
 * An operation is its document object (OperationChecks parses each text once, so subscribers of the same
 * text share it), its name and its variables. The document is keyed by a small number, not its printed
 * text: 10,000 idle subscribers would otherwise keep 10,000 copies of the query (≈1 KB each).
 */
export function sharedSubscribe(): (args: ExecutionArgs) => Promise<AsyncIterableIterator<ExecutionResult> | ExecutionResult> {
  const results = new WeakMap<object, Map<string, Promise<ExecutionResult>>>();
  const documentIds = new WeakMap<DocumentNode, number>();
  let documents = 0;
  const idOf = (document: DocumentNode) => {
    let id = documentIds.get(document);
    if (id === undefined) documentIds.set(document, (id = ++documents));
    return id;
  };
  const executeOnce = (args: ExecutionArgs, operation: string, payload: unknown): Promise<ExecutionResult> => {
    const run = async () => execute({ ...args, rootValue: payload });
    if (typeof payload !== 'object' || payload === null) return run();
    let byOperation = results.get(payload);
    if (!byOperation) results.set(payload, (byOperation = new Map()));
    let result = byOperation.get(operation);
    if (!result) byOperation.set(operation, (result = run()));
    return result;
  };
  return async (args) => {
    const stream = await createSourceEventStream(args);
    if (!(Symbol.asyncIterator in stream)) return stream;
    const operation = `${idOf(args.document)}\u0000${args.operationName ?? ''}\u0000${JSON.stringify(args.variableValues ?? {})}`;
    return mapResults(stream[Symbol.asyncIterator](), (payload) => executeOnce(args, operation, payload));
  };
}

/**
 * Maps a source stream to execution results, as graphql's own subscribe does. Not an async generator:
 * `return()` (the client unsubscribed) must reach the source at once, not queue behind a pending `next()`.
 */
function mapResults(source: AsyncIterator<unknown>, map: (payload: unknown) => Promise<ExecutionResult>): AsyncIterableIterator<ExecutionResult> {
  const mapped = async (result: IteratorResult<unknown>): Promise<IteratorResult<ExecutionResult>> => {
    if (result.done) return { done: true, value: undefined };
    try {
      return { done: false, value: await map(result.value) };
    } catch (error) {
      await source.return?.().catch(() => undefined);
      throw error;
    }
  };
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    next: async () => mapped(await source.next()),
    return: async () => (source.return ? mapped(await source.return()) : { done: true, value: undefined }),
    throw: async (error: unknown) => {
      if (source.throw) return mapped(await source.throw(error));
      throw error;
    },
  };
}
