import { GraphQLError, parse, specifiedRules, validate, type DocumentNode, type GraphQLSchema, type ValidationRule } from 'graphql';
import depthLimit from 'graphql-depth-limit';
import { createComplexityRule, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity';

export const MAX_DEPTH = 8;
export const MAX_COMPLEXITY = 5000;
/** Distinct operation texts whose parse and static validation are kept (a client sends the same few). */
const CACHED_OPERATIONS = 1000;
const MAX_CACHED_QUERY_LENGTH = 16 * 1024;

/** A list field costs its `first` times its children: a full page of 100 notifications is about 2,500. */
const pageEstimator: ComplexityEstimator = ({ args, childComplexity }) => (typeof args.first === 'number' ? 1 + args.first * childComplexity : undefined);

const tooComplex = (message: string) => new GraphQLError(message, { extensions: { code: 'QUERY_TOO_COMPLEX' } });

/**
 * Parsing and validation of operations, shared by GraphQL over HTTP and graphql-ws. A frontend sends the
 * same few operation texts again and again, so each text is parsed once and its static validation (the
 * specified rules, then the depth limit) runs once; only the complexity limit, which depends on the
 * variables (`first`), runs per request.
 *
 * The depth limit runs only on documents the specified rules accept: they refuse fragment cycles, which
 * would send the depth limiter into endless recursion.
 */
export class OperationChecks {
  private readonly documents = new Map<string, DocumentNode>();
  private readonly staticErrors = new WeakMap<DocumentNode, readonly GraphQLError[]>();

  constructor(private readonly schema: GraphQLSchema) {}

  readonly parse = (source: string | { body: string }): DocumentNode => {
    const text = typeof source === 'string' ? source : source.body;
    const cached = this.documents.get(text);
    if (cached) return cached;
    const document = parse(text);
    if (text.length <= MAX_CACHED_QUERY_LENGTH) {
      if (this.documents.size >= CACHED_OPERATIONS) this.documents.delete(this.documents.keys().next().value!);
      this.documents.set(text, document);
    }
    return document;
  };

  /** The per-request rules of an operation with these variables: the complexity limit. */
  complexityRule(variables: Record<string, unknown> | null | undefined): ValidationRule {
    return createComplexityRule({
      maximumComplexity: MAX_COMPLEXITY,
      variables: variables ?? {},
      estimators: [pageEstimator, simpleEstimator({ defaultComplexity: 1 })],
      createError: (max, actual) => tooComplex(`query complexity ${actual} is over the limit of ${max}`),
    });
  }

  /** Static validation (cached per document), then `perRequestRules`. */
  validate(document: DocumentNode, perRequestRules: readonly ValidationRule[]): readonly GraphQLError[] {
    let errors = this.staticErrors.get(document);
    if (!errors) {
      errors = validate(this.schema, document, specifiedRules);
      if (errors.length === 0) errors = validate(this.schema, document, [depthLimit(MAX_DEPTH)]);
      this.staticErrors.set(document, errors);
    }
    if (errors.length > 0 || perRequestRules.length === 0) return errors;
    try {
      return validate(this.schema, document, perRequestRules);
    } catch (error) {
      // graphql-query-complexity throws (rather than reports) past its own node limit.
      if (error instanceof GraphQLError) return [tooComplex(error.message)];
      throw error;
    }
  }
}
