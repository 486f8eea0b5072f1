import {
  getArgumentValues,
  getNamedType,
  GraphQLError,
  isObjectType,
  isInterfaceType,
  Kind,
  SchemaMetaFieldDef,
  TypeMetaFieldDef,
  TypeNameMetaFieldDef,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLNamedType,
  type GraphQLSchema,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from 'graphql';

/**
 * What an operation costs, measured in one pass over the document: every selection is visited once, and
 * a fragment spread takes its fragment's measure, computed once (fragments are measured dependencies
 * first). A fragment spread twice costs twice — cost multiplies through spreads — but is walked once,
 * so a document of fragments that each spread the next twice costs 2^n and takes n steps to measure
 * (graphql-depth-limit and graphql-query-complexity walked every spread: 2^n steps).
 */
export interface OperationCost {
  /** Estimated fields resolved: a field costs 1 plus its selection, `first` times over for a page; a mutation field adds WRITE_COST per event it appends. */
  readonly cost: number;
  /** Levels of fields below the operation's root fields (introspection fields `__…` and what they select do not count). */
  readonly depth: number;
  /** The operation's root fields, through its fragments: how many mutations a mutation operation runs. */
  readonly rootFields: number;
  /** Selections visited: at most the selections in the document. */
  readonly visited: number;
}

/** What one event appended by a mutation adds to the operation's cost. */
export const WRITE_COST = 10;

/**
 * The events a root mutation field appends at most (docs/api/graphql.md): one, but one per id
 * acknowledged, and two for a whitelist application (the application, then the owner's notification).
 */
function eventsWritten(field: string, args: Record<string, unknown>): number {
  if (field === 'acknowledge') return Array.isArray(args.ids) ? Math.max(1, args.ids.length) : 1;
  if (field === 'applyWhitelist') return 2;
  return 1;
}

interface Measure {
  readonly cost: number;
  readonly depth: number;
  readonly rootFields: number;
}

const NOTHING: Measure = { cost: 0, depth: 0, rootFields: 0 };

/**
 * Fragments one document may define. graphql's OverlappingFieldsCanBeMerged rule compares every two
 * fragments spread in a selection set (and the fragments they spread): 300 fragments took it a quarter
 * of a second.
 */
export const MAX_FRAGMENTS = 100;
/** Selections mostRepeatedName may visit, fragments expanded where they are spread; past it, it answers undefined. */
export const MAX_MERGED_SELECTIONS = 50_000;
/**
 * Fields answering under one name in one merged selection (mostRepeatedName). The same rule compares
 * every two of them, with their selections: 1,240 aliases `me { appId }`, 25 fragments of 10 each, or
 * 6 `n: notifications` of 6 `nodes` of 6 `meta` each took it a quarter of a second within every other
 * limit. Two are legal (and answered once); ten is the most herald takes.
 */
export const MAX_SAME_RESPONSE_NAME = 10;

/**
 * The document's fragments, each after the fragments it spreads — or the error of a fragment that
 * spreads itself, directly or through others (a cycle would make every measure infinite), or of more
 * than MAX_FRAGMENTS. A fragment named twice is taken once (validation refuses the document anyway); a
 * spread of an unknown fragment measures nothing.
 */
export function fragmentsInOrder(document: DocumentNode): readonly FragmentDefinitionNode[] | GraphQLError {
  const fragments = new Map<string, FragmentDefinitionNode>();
  for (const definition of document.definitions) {
    if (definition.kind !== Kind.FRAGMENT_DEFINITION) continue;
    if (fragments.size === MAX_FRAGMENTS)
      return new GraphQLError(`the document defines more than ${MAX_FRAGMENTS} fragments`, {
        extensions: { code: 'QUERY_TOO_COMPLEX' },
      });
    if (!fragments.has(definition.name.value)) fragments.set(definition.name.value, definition);
  }
  // A spread of a fragment the document does not define would measure nothing, so a chain of spreads
  // ending in one would pass every limit at cost 0 and then be expanded 2^n times: refused here, in
  // graphql's own words (its rule refuses it too, but only after every walk).
  for (const definition of document.definitions) {
    const unknown =
      definition.kind === Kind.OPERATION_DEFINITION || definition.kind === Kind.FRAGMENT_DEFINITION
        ? spreadsOf(definition.selectionSet).find((name) => !fragments.has(name))
        : undefined;
    if (unknown !== undefined)
      return new GraphQLError(`Unknown fragment "${unknown}".`, { extensions: { code: 'BAD_REQUEST' } });
  }
  const spreads = new Map<string, string[]>();
  for (const [name, fragment] of fragments) spreads.set(name, spreadsOf(fragment.selectionSet));
  // Depth-first, with a stack of its own: a path through the fragments is as long as their chain.
  const order: FragmentDefinitionNode[] = [];
  const state = new Map<string, 'open' | 'done'>();
  for (const start of fragments.keys()) {
    if (state.has(start)) continue;
    const path: Array<{ name: string; next: number }> = [{ name: start, next: 0 }];
    state.set(start, 'open');
    while (path.length > 0) {
      const top = path[path.length - 1]!;
      const children = spreads.get(top.name)!;
      if (top.next === children.length) {
        path.pop();
        state.set(top.name, 'done');
        order.push(fragments.get(top.name)!);
        continue;
      }
      const child = children[top.next++]!;
      const seen = state.get(child);
      if (seen === 'open') {
        const via = path.slice(path.findIndex((step) => step.name === child) + 1).map((step) => `"${step.name}"`);
        const nodes = path.map((step) => fragments.get(step.name)!);
        return new GraphQLError(
          `Cannot spread fragment "${child}" within itself${via.length > 0 ? ` via ${via.join(', ')}` : ''}.`,
          { nodes, extensions: { code: 'BAD_REQUEST' } },
        );
      }
      if (seen === undefined) {
        state.set(child, 'open');
        path.push({ name: child, next: 0 });
      }
    }
  }
  return order;
}

/** The fragment names spread in a selection set, at any level of it (its nesting is bounded by the parser's limits). */
function spreadsOf(selectionSet: SelectionSetNode, into: string[] = []): string[] {
  for (const selection of selectionSet.selections) {
    if (selection.kind === Kind.FRAGMENT_SPREAD) into.push(selection.name.value);
    else if (selection.selectionSet) spreadsOf(selection.selectionSet, into);
  }
  return into;
}

/**
 * Measures `operation` (see OperationCost) with its coerced variable values. `fragments` comes from
 * fragmentsInOrder. The document need not be valid: an unknown field or type counts its selections
 * at 1 each, arguments that do not coerce count as absent; validation refuses such a document after.
 * Every type branch of a selection is summed (herald's schema has no abstract types; with some, this
 * over-estimates).
 */
export function measureOperation(
  schema: GraphQLSchema,
  fragments: readonly FragmentDefinitionNode[],
  operation: OperationDefinitionNode,
  variableValues: Record<string, unknown>,
): OperationCost {
  const mutationType = schema.getMutationType();
  const queryType = schema.getQueryType();
  const measured = new Map<string, Measure>();
  let visited = 0;

  const fieldOf = (parent: GraphQLNamedType | undefined, name: string): GraphQLField<unknown, unknown> | undefined => {
    if (name === TypeNameMetaFieldDef.name) return TypeNameMetaFieldDef;
    if (parent && parent === queryType && name === SchemaMetaFieldDef.name) return SchemaMetaFieldDef;
    if (parent && parent === queryType && name === TypeMetaFieldDef.name) return TypeMetaFieldDef;
    return parent && (isObjectType(parent) || isInterfaceType(parent)) ? parent.getFields()[name] : undefined;
  };

  const argumentsOf = (field: GraphQLField<unknown, unknown>, node: FieldNode): Record<string, unknown> => {
    try {
      return getArgumentValues(field, node, variableValues);
    } catch {
      return {};
    }
  };

  const measureField = (node: FieldNode, parent: GraphQLNamedType | undefined): Measure => {
    const field = fieldOf(parent, node.name.value);
    const selection = node.selectionSet
      ? measureSelectionSet(node.selectionSet, field && getNamedType(field.type))
      : NOTHING;
    const args = field && (node.arguments?.length || field.args.length) ? argumentsOf(field, node) : {};
    // A page costs `first` times its selection (a `first` under 1 is refused when resolved; counted as 1).
    const cost = typeof args.first === 'number' ? 1 + Math.max(1, args.first) * selection.cost : 1 + selection.cost;
    const writes =
      parent !== undefined && parent === mutationType ? eventsWritten(node.name.value, args) * WRITE_COST : 0;
    const introspection = node.name.value.startsWith('__');
    return { cost: cost + writes, depth: introspection || !node.selectionSet ? 0 : 1 + selection.depth, rootFields: 1 };
  };

  function measureSelectionSet(selectionSet: SelectionSetNode, parent: GraphQLNamedType | undefined): Measure {
    let cost = 0;
    let depth = 0;
    let rootFields = 0;
    for (const selection of selectionSet.selections) {
      visited++;
      const part =
        selection.kind === Kind.FIELD
          ? measureField(selection, parent)
          : selection.kind === Kind.FRAGMENT_SPREAD
            ? (measured.get(selection.name.value) ?? NOTHING)
            : measureSelectionSet(
                selection.selectionSet,
                selection.typeCondition ? schema.getType(selection.typeCondition.name.value) : parent,
              );
      cost += part.cost;
      depth = Math.max(depth, part.depth);
      rootFields += part.rootFields;
    }
    return { cost, depth, rootFields };
  }

  for (const fragment of fragments) {
    measured.set(
      fragment.name.value,
      measureSelectionSet(fragment.selectionSet, schema.getType(fragment.typeCondition.name.value)),
    );
  }
  const root = measureSelectionSet(operation.selectionSet, schema.getRootType(operation.operation) ?? undefined);
  return { ...root, visited };
}

/**
 * The response name selected most often in one merged selection of `operation`, and how often: graphql
 * merges the fields answering under one name (through inline fragments and fragment spreads, and the
 * selections of same-named fields under one another), and OverlappingFieldsCanBeMerged compares every
 * two of each merge. Fragments are expanded every time they are spread, so run it on an operation
 * within MAX_COMPLEXITY (each field it visits is one the cost counted); past MAX_MERGED_SELECTIONS
 * visits it stops and answers undefined.
 */
export function mostRepeatedName(
  fragments: readonly FragmentDefinitionNode[],
  operation: OperationDefinitionNode,
): { readonly name: string; readonly times: number } | undefined {
  const byName = new Map(fragments.map((fragment) => [fragment.name.value, fragment]));
  type Merged = Map<string, { times: number; readonly selections: Merged }>;
  let most = { name: '', times: 0 };
  // A second bound beside the cost: chains of spreads and inline fragments are selections the cost does not count.
  let visits = 0;
  // Recursion: as deep as the document nests (MAX_NESTING) plus a chain of fragments (MAX_FRAGMENTS, no cycles).
  const merge = (selectionSet: SelectionSetNode, into: Merged): void => {
    for (const selection of selectionSet.selections) {
      if (++visits > MAX_MERGED_SELECTIONS) return;
      if (selection.kind === Kind.FIELD) {
        const name = selection.alias?.value ?? selection.name.value;
        let merged = into.get(name);
        if (!merged) into.set(name, (merged = { times: 0, selections: new Map() }));
        if (++merged.times > most.times) most = { name, times: merged.times };
        if (selection.selectionSet) merge(selection.selectionSet, merged.selections);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        merge(selection.selectionSet, into);
      } else {
        const fragment = byName.get(selection.name.value);
        if (fragment) merge(fragment.selectionSet, into);
      }
    }
  };
  merge(operation.selectionSet, new Map());
  return visits > MAX_MERGED_SELECTIONS ? undefined : most;
}
