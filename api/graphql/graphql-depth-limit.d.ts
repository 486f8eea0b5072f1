// graphql-depth-limit ships no types (and @types/graphql-depth-limit pins graphql 14): the one export used.
declare module 'graphql-depth-limit' {
  import type { ValidationRule } from 'graphql';
  export default function depthLimit(maxDepth: number): ValidationRule;
}
