import { GraphQLError, type ValidationRule } from 'graphql';
import { illFormedTextAt, notUnicode } from '../../domain/text';

/**
 * A per-request validation rule: an operation whose variables hold text that is not Unicode (a lone
 * surrogate from a JSON `\ud800` escape) is BAD_USER_INPUT, before it runs (issue 21 item 5). The
 * document needs no such rule: GraphQL's own lexer refuses a lone surrogate in it as a syntax error.
 */
export function unicodeVariablesRule(variables: Readonly<Record<string, unknown>> | null | undefined): ValidationRule {
  const path = illFormedTextAt(variables ?? {});
  return (context) => ({
    Document() {
      if (path !== undefined)
        context.reportError(new GraphQLError(notUnicode(`$${path}`), { extensions: { code: 'BAD_USER_INPUT' } }));
    },
  });
}
