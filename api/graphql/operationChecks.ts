import {
  getOperationAST,
  getVariableValues,
  GraphQLError,
  Kind,
  Lexer,
  parse,
  Source,
  specifiedRules,
  TokenKind,
  validate,
  type DocumentNode,
  type FragmentDefinitionNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from 'graphql';
import { illFormedTextAt, notUnicode } from '../../domain/text';
import {
  fragmentsInOrder,
  MAX_MERGED_SELECTIONS,
  MAX_SAME_RESPONSE_NAME,
  measureOperation,
  mostRepeatedName,
} from './operationCost';

/** Levels of fields below a root field. */
export const MAX_DEPTH = 8;
/** An operation's cost (operationCost.ts): a list costs `first` times its selection, a mutation what it appends. */
export const MAX_COMPLEXITY = 5000;
/** Root fields of a mutation operation: one request is never more than these many commands. */
export const MAX_MUTATION_FIELDS = 10;
/** Tokens of a document (comments aside): a literal list of 1,000 user ids is about 1,000. */
export const MAX_TOKENS = 5000;
/** Brackets (`{`, `[`, `(`) open at once; the parser recurses once per level, and would overflow the stack near 2,000. */
export const MAX_NESTING = 64;
/** Distinct operation texts whose parse and static validation are kept (a client sends the same few). */
const CACHED_OPERATIONS = 1000;
const MAX_CACHED_QUERY_LENGTH = 16 * 1024;

/** What a request brings beside its document (GraphQL over HTTP's parameters, a graphql-ws `subscribe` payload). */
export interface OperationRequest {
  readonly variables?: Readonly<Record<string, unknown>> | null;
  readonly operationName?: string | null;
}

const tooComplex = (message: string) => new GraphQLError(message, { extensions: { code: 'QUERY_TOO_COMPLEX' } });

/**
 * Parsing and validation of operations, shared by GraphQL over HTTP and graphql-ws. Every step is
 * bounded before the next one walks the document: the text is lexed once against MAX_TOKENS and
 * MAX_NESTING, the parser runs on what passed, fragment cycles and over 100 fragments are refused, then
 * one pass measures the operation's depth, cost and mutations (operationCost.ts: linear in the document,
 * whatever its fragments spread), one more what makes the specified rules quadratic (one name selected
 * many times in a selection), and only then do the specified rules run. A frontend sends the same few
 * texts again and again, so a text's parse and its static checks are kept; the measure depends on the
 * variables (`first: $first`) and runs per request.
 */
export class OperationChecks {
  private readonly documents = new Map<string, DocumentNode>();
  private readonly fragments = new WeakMap<DocumentNode, readonly FragmentDefinitionNode[] | GraphQLError>();
  private readonly staticErrors = new WeakMap<DocumentNode, readonly GraphQLError[]>();
  private readonly repeatedNames = new WeakMap<OperationDefinitionNode, ReturnType<typeof mostRepeatedName>>();

  constructor(private readonly schema: GraphQLSchema) {}

  readonly parse = (source: string | { body: string }): DocumentNode => {
    const text = typeof source === 'string' ? source : source.body;
    const cached = this.documents.get(text);
    if (cached) return cached;
    checkSize(text);
    const document = parse(text, { maxTokens: MAX_TOKENS });
    if (text.length <= MAX_CACHED_QUERY_LENGTH) {
      if (this.documents.size >= CACHED_OPERATIONS) this.documents.delete(this.documents.keys().next().value!);
      this.documents.set(text, document);
    }
    return document;
  };

  /**
   * Every check of one request, in order: the document's fragments (fragmentsInOrder), then what
   * depends on the request — depth, cost and mutations within the limits with these variables, the
   * variables coerced, their text Unicode — then graphql's specified rules. Only the last are kept per
   * document; called directly, not as a rule of graphql's `validate`, whose visitor would walk the
   * document once more per request to run them.
   */
  check(document: DocumentNode, request: OperationRequest): readonly GraphQLError[] {
    const fragments = this.fragmentsOf(document);
    if (fragments instanceof GraphQLError) return [fragments];
    const variables = request.variables ?? {};
    const errors = [...this.limitErrors(fragments, document, variables, request.operationName ?? undefined)];
    const illFormed = illFormedTextAt(variables);
    if (illFormed !== undefined)
      errors.push(new GraphQLError(notUnicode(`$${illFormed}`), { extensions: { code: 'BAD_USER_INPUT' } }));
    if (errors.length > 0) return errors;
    let specified = this.staticErrors.get(document);
    if (!specified) {
      specified = validate(this.schema, document, specifiedRules);
      this.staticErrors.set(document, specified);
    }
    return specified;
  }

  /** The document's fragments in the order measureOperation takes them, or what refuses its shape. */
  private fragmentsOf(document: DocumentNode): readonly FragmentDefinitionNode[] | GraphQLError {
    let fragments = this.fragments.get(document);
    if (!fragments) {
      fragments = fragmentsInOrder(document);
      this.fragments.set(document, fragments);
    }
    return fragments;
  }

  /**
   * Every operation of the document is measured, not only the one that runs: graphql's rules validate
   * them all, so an operation that never runs could otherwise carry what makes them slow. The variables
   * are the request's, coerced for each operation as far as they go; only the running one's coercion
   * errors are reported (none to run — none by that name, or several without one — graphql refuses).
   */
  private limitErrors(
    fragments: readonly FragmentDefinitionNode[],
    document: DocumentNode,
    variables: Readonly<Record<string, unknown>>,
    operationName: string | undefined,
  ): readonly GraphQLError[] {
    const running = getOperationAST(document, operationName);
    let coercionErrors: readonly GraphQLError[] = [];
    for (const definition of document.definitions) {
      if (definition.kind !== Kind.OPERATION_DEFINITION) continue;
      const coerced = getVariableValues(this.schema, definition.variableDefinitions ?? [], variables);
      if (definition === running) coercionErrors = coerced.errors ?? [];
      const error = this.limitError(fragments, definition, coerced.coerced ?? {});
      if (error) return [error];
    }
    return coercionErrors;
  }

  private limitError(
    fragments: readonly FragmentDefinitionNode[],
    operation: OperationDefinitionNode,
    variables: Record<string, unknown>,
  ): GraphQLError | undefined {
    const { cost, depth, rootFields } = measureOperation(this.schema, fragments, operation, variables);
    if (depth > MAX_DEPTH) return tooComplex(`the operation is ${depth} levels deep, over the limit of ${MAX_DEPTH}`);
    if (operation.operation === 'mutation' && rootFields > MAX_MUTATION_FIELDS) {
      return tooComplex(
        `the operation has ${rootFields} mutation fields, over the limit of ${MAX_MUTATION_FIELDS} per request`,
      );
    }
    if (cost > MAX_COMPLEXITY) return tooComplex(`query complexity ${cost} is over the limit of ${MAX_COMPLEXITY}`);
    const repeated = this.mostRepeatedName(fragments, operation);
    if (repeated === undefined)
      return tooComplex(`the operation expands to more than ${MAX_MERGED_SELECTIONS} selections`);
    if (repeated.times > MAX_SAME_RESPONSE_NAME)
      return tooComplex(
        `"${repeated.name}" is selected ${repeated.times} times in one selection, over the limit of ${MAX_SAME_RESPONSE_NAME}`,
      );
    return undefined;
  }

  /** mostRepeatedName, kept per operation: it does not depend on the variables. Run only within the cost, as it requires. */
  private mostRepeatedName(fragments: readonly FragmentDefinitionNode[], operation: OperationDefinitionNode) {
    if (!this.repeatedNames.has(operation)) this.repeatedNames.set(operation, mostRepeatedName(fragments, operation));
    return this.repeatedNames.get(operation);
  }
}

/**
 * Lexes `text` once, without recursion, refusing it past MAX_TOKENS or MAX_NESTING: a 5,000-deep
 * selection would overflow the parser's stack. Syntax errors are left to the parser.
 */
function checkSize(text: string): void {
  const lexer = new Lexer(new Source(text));
  let tokens = 0;
  let nesting = 0;
  try {
    for (let token = lexer.advance(); token.kind !== TokenKind.EOF; token = lexer.advance()) {
      if (++tokens > MAX_TOKENS) throw tooComplex(`the document has more than ${MAX_TOKENS} tokens`);
      if (token.kind === TokenKind.BRACE_L || token.kind === TokenKind.BRACKET_L || token.kind === TokenKind.PAREN_L) {
        if (++nesting > MAX_NESTING) throw tooComplex(`the document nests more than ${MAX_NESTING} brackets deep`);
      } else if (
        token.kind === TokenKind.BRACE_R ||
        token.kind === TokenKind.BRACKET_R ||
        token.kind === TokenKind.PAREN_R
      ) {
        nesting--;
      }
    }
  } catch (error) {
    if (error instanceof GraphQLError && error.extensions.code === 'QUERY_TOO_COMPLEX') throw error;
    // A lexical error: the parser reports it, in its words.
  }
}
