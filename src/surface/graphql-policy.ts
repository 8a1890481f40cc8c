/**
 * Whether a GraphQL document sent through a session capability (by `gh`, `gh api graphql`,
 * any client) may be forwarded to GitHub. Pure: no I/O. The rules are in
 * docs/graphql-policy.md; in short:
 *
 * - the document must parse and validate against GitHub's schema, and its variables coerce;
 * - query roots: `repository(owner:, name:)` naming the bound repository, `viewer`,
 *   `rateLimit`, introspection; `node`/`nodes` with ids the caller proves, `search`
 *   qualified by `repo:<bound>`;
 * - inside the bound repository everything may be read; whatever the selection reaches
 *   outside it yields identity fields only (graphql-reach.ts);
 * - mutations from an allow-list (graphql-mutations.ts), none for a `pull` capability.
 *
 * What cannot be decided from the document alone comes back in the verdict for the caller
 * to check before forwarding: `proveIds` (each id must resolve into the bound repository)
 * and the branch checks attached to them.
 */
import {
  getNamedType,
  getVariableValues,
  isCompositeType,
  isLeafType,
  Kind,
  parse,
  valueFromAST,
  validate,
  GraphQLError,
  OverlappingFieldsCanBeMergedRule,
  specifiedRules,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLCompositeType,
  type GraphQLField,
  type GraphQLObjectType,
  type OperationDefinitionNode,
  type SelectionSetNode,
} from "graphql";
import { githubSchema, type GitHubSchema } from "./github-graphql-schema";
import { CONTAINMENT_EDGES, IDENTITY_FIELDS, OUTSIDE_EDGES, OUTSIDE_EXTRA_FIELDS } from "./graphql-reach";
import { judgeMutationInput, MUTATIONS } from "./graphql-mutations";
import type { Binding, ProofRequest } from "./graphql-binding";
import { searchConfined } from "./search-scope";

export type { Binding, ProofRequest } from "./graphql-binding";

export type GraphQLRule = "repository_mismatch" | "insufficient_permission" | "branch_not_allowed" | "operation_not_allowed" | "invalid_query";

export type GraphQLDecision =
  | {
      ok: true;
      kind: "query" | "mutation" | "introspection";
      /** Ids to prove before forwarding (deduplicated). */
      proveIds: ProofRequest[];
      /** Full ref names the mutation writes, already checked against `branchAllowed`. */
      refWrites: string[];
    }
  | { ok: false; rule: Exclude<GraphQLRule, "invalid_query">; message: string }
  | { ok: false; rule: "invalid_query"; message: string; errors: GraphQLError[] };

/** The body of `POST /api/graphql`. */
export interface GraphQLBody {
  query: string;
  variables?: Record<string, unknown> | null;
  operationName?: string | null;
}

/** Documents larger than this are refused unparsed; selections visited beyond the second bound too. */
const MAX_QUERY_LENGTH = 100_000;
const MAX_VISITS = 20_000;

/**
 * graphql-js's rules but one: GitHub does not enforce "overlapping fields can be merged"
 * (`gh issue view` selects `... on Issue { state } ... on PullRequest { state }`, two enum
 * types), and the policy judges every selection on its own, so merging changes nothing here.
 */
const VALIDATION_RULES = specifiedRules.filter((rule) => rule !== OverlappingFieldsCanBeMergedRule);

class Refusal {
  constructor(
    readonly rule: Exclude<GraphQLRule, "invalid_query">,
    readonly message: string,
  ) {}
}

/** Judges one GraphQL request body for one session. Never throws. */
export function judgeGraphQL(body: GraphQLBody, binding: Binding): GraphQLDecision {
  if (typeof body?.query !== "string") return invalid("the body needs a query string");
  if (body.query.length > MAX_QUERY_LENGTH) return invalid(`query is longer than ${MAX_QUERY_LENGTH} characters`);
  // Anything but an object (a JSON string of variables, say) would be judged as "no variables",
  // with the declared defaults, while the server may decode it and run other values.
  const variables = body.variables ?? {};
  if (typeof variables !== "object" || Array.isArray(variables)) return invalid("variables must be a JSON object");
  if (body.operationName != null && typeof body.operationName !== "string") return invalid("operationName must be a string");
  const gh = githubSchema();
  let document: DocumentNode;
  try {
    document = parse(body.query);
  } catch (e) {
    return e instanceof GraphQLError ? { ok: false, rule: "invalid_query", message: e.message, errors: [e] } : invalid("query does not parse");
  }
  const errors = validate(gh.schema, document, VALIDATION_RULES, { maxErrors: 10 });
  if (errors.length > 0) return { ok: false, rule: "invalid_query", message: errors[0]!.message, errors: [...errors] };
  const operation = pickOperation(document, body.operationName ?? undefined);
  if (typeof operation === "string") return invalid(operation);
  const coerced = getVariableValues(gh.schema, operation.variableDefinitions ?? [], variables as Record<string, unknown>, { maxErrors: 10 });
  if (coerced.errors) return { ok: false, rule: "invalid_query", message: coerced.errors[0]!.message, errors: [...coerced.errors] };
  const judge = new Judge(gh, binding, document, coerced.coerced);
  try {
    const kind = judge.operation(operation);
    return { ok: true, kind, proveIds: judge.proofs(), refWrites: [...judge.refWrites] };
  } catch (e) {
    if (e instanceof Refusal) return { ok: false, rule: e.rule, message: e.message };
    throw e;
  }
}

function invalid(message: string): GraphQLDecision {
  return { ok: false, rule: "invalid_query", message, errors: [new GraphQLError(message)] };
}

/** The operation to run, by the GraphQL spec's rules, or why there is none. */
function pickOperation(document: DocumentNode, operationName: string | undefined): OperationDefinitionNode | string {
  const operations = document.definitions.filter((d): d is OperationDefinitionNode => d.kind === Kind.OPERATION_DEFINITION);
  if (operationName !== undefined) {
    return operations.find((o) => o.name?.value === operationName) ?? `Unknown operation named "${operationName}".`;
  }
  if (operations.length !== 1) return "Must provide operation name if query contains multiple operations.";
  return operations[0]!;
}

/**
 * Where a selection set is: its declared type, the object types it may be at run time (an
 * inline fragment narrows them), and for each of those whether it is inside the bound
 * repository. `nodes` is set on a connection or edge: the position of its nodes, decided
 * by the field that returned the connection.
 */
interface Position {
  type: GraphQLCompositeType;
  concrete: readonly GraphQLObjectType[];
  inside: boolean;
  nodes?: Reach;
  /** A mutation's payload: what it returns are the objects the mutation touched (proven). */
  payload?: boolean;
  /** How the object was reached, so a narrowing type condition can re-decide. */
  reach?: Reach;
}

/** How a field was reached: from an inside object by an edge that stays inside or not, or by search. */
interface Reach {
  from: boolean;
  edge: "contain" | "other" | "search";
}

class Judge {
  readonly refWrites = new Set<string>();
  private readonly proofList = new Map<string, ProofRequest>();
  private readonly fragments = new Map<string, FragmentDefinitionNode>();
  private visits = 0;

  constructor(
    private readonly gh: GitHubSchema,
    private readonly binding: Binding,
    document: DocumentNode,
    private readonly variables: Record<string, unknown>,
  ) {
    for (const d of document.definitions) if (d.kind === Kind.FRAGMENT_DEFINITION) this.fragments.set(d.name.value, d);
  }

  proofs(): ProofRequest[] {
    return [...this.proofList.values()];
  }

  prove(request: ProofRequest): void {
    const key = `${request.id}\u0000${request.mustBe}\u0000${request.branch ?? ""}`;
    if (!this.proofList.has(key)) this.proofList.set(key, request);
  }

  operation(op: OperationDefinitionNode): "query" | "mutation" | "introspection" {
    const schema = this.gh.schema;
    if (op.operation === "subscription") throw new Refusal("operation_not_allowed", "subscriptions are not allowed");
    if (op.operation === "mutation") {
      if (this.binding.permission !== "push") throw new Refusal("insufficient_permission", "a pull capability may not run mutations");
      this.root(op.selectionSet, schema.getMutationType()!, (field, def) => this.mutationField(field, def));
      return "mutation";
    }
    let introspectionOnly = true;
    this.root(op.selectionSet, schema.getQueryType()!, (field, def) => {
      if (!field.name.value.startsWith("__")) introspectionOnly = false;
      this.queryField(field, def);
    });
    return introspectionOnly ? "introspection" : "query";
  }

  /** Every field selected on a root type, through fragments, whatever their directives say. */
  private root(set: SelectionSetNode, type: GraphQLObjectType, onField: (field: FieldNode, def: GraphQLField<unknown, unknown> | undefined) => void): void {
    for (const selection of set.selections) {
      this.count();
      if (selection.kind === Kind.FIELD) {
        const name = selection.name.value;
        if (name === "__typename") continue;
        if (name === "__type" || name === "__schema") {
          // Introspection: the schema is public. It has no fields of its own on the mutation root.
          if (type !== this.gh.schema.getQueryType()) throw new Refusal("operation_not_allowed", `${name} is a query field`);
          onField(selection, undefined);
          continue;
        }
        onField(selection, type.getFields()[selection.name.value]!);
      } else if (selection.kind === Kind.INLINE_FRAGMENT) this.root(selection.selectionSet, type, onField);
      else this.root(this.fragment(selection.name.value).selectionSet, type, onField);
    }
  }

  private queryField(field: FieldNode, def: GraphQLField<unknown, unknown> | undefined): void {
    const name = field.name.value;
    if (!def) return; // introspection
    const args = this.args(field, def);
    switch (name) {
      case "repository": {
        const owner = args["owner"];
        const repo = args["name"];
        const { owner: o, name: n } = this.binding;
        if (typeof owner !== "string" || typeof repo !== "string" || owner.toLowerCase() !== o.toLowerCase() || repo.toLowerCase() !== n.toLowerCase()) {
          throw new Refusal("repository_mismatch", `this session may only read ${o}/${n}, not ${String(owner)}/${String(repo)}`);
        }
        return this.selection(field, def, { from: true, edge: "contain" });
      }
      case "viewer":
      case "rateLimit":
        return this.selection(field, def, { from: true, edge: "other" });
      case "node":
      case "nodes": {
        const ids = name === "node" ? [args["id"]] : (args["ids"] as unknown[]);
        for (const id of ids) this.prove({ id: String(id), mustBe: "in_repository", at: `${name}(id:)` });
        return this.selection(field, def, { from: true, edge: "contain" });
      }
      case "search": {
        const scope = searchConfined(String(args["query"]), this.binding.owner, this.binding.name);
        if (!scope.ok) throw new Refusal("repository_mismatch", scope.message);
        return this.selection(field, def, { from: true, edge: "search" });
      }
      default:
        throw new Refusal("operation_not_allowed", `the query field ${name} is not allowed (allowed: repository, viewer, rateLimit, node, nodes, search, introspection)`);
    }
  }

  private mutationField(field: FieldNode, def: GraphQLField<unknown, unknown> | undefined): void {
    const name = field.name.value;
    if (!def) throw new Refusal("operation_not_allowed", `${name} is not a mutation`);
    const spec = MUTATIONS[name];
    if (!spec) throw new Refusal("operation_not_allowed", `the mutation ${name} is not allowed for a session`);
    const inputArg = def.args.find((a) => a.name === "input");
    if (!inputArg) throw new Refusal("operation_not_allowed", `the mutation ${name} has no input`);
    const verdict = judgeMutationInput(name, spec, this.args(field, def)["input"], inputArg.type, this.binding);
    if (!verdict.ok) throw new Refusal(verdict.rule, verdict.message);
    for (const p of verdict.proofs) this.prove(p);
    for (const r of verdict.refWrites) this.refWrites.add(r);
    const type = getNamedType(def.type) as GraphQLObjectType;
    if (field.selectionSet) this.selectionSet(field.selectionSet, { type, concrete: [type], inside: true, payload: true }, name);
  }

  /** Argument values with variables substituted and coerced (the document has validated). */
  private args(field: FieldNode, def: GraphQLField<unknown, unknown>): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const arg of def.args) {
      const node = field.arguments?.find((a) => a.name.value === arg.name);
      if (node) out[arg.name] = valueFromAST(node.value, arg.type, this.variables);
      else if (arg.defaultValue !== undefined) out[arg.name] = arg.defaultValue;
    }
    return out;
  }

  /** Walks the selection of a root field reached by `reach`. */
  private selection(field: FieldNode, def: GraphQLField<unknown, unknown>, reach: Reach): void {
    if (!field.selectionSet) return;
    this.selectionSet(field.selectionSet, this.positionOf(getNamedType(def.type) as GraphQLCompositeType, reach), field.name.value);
  }

  /** The position of an object of `type` reached by `reach`. */
  private positionOf(type: GraphQLCompositeType, reach: Reach): Position {
    const concrete = this.gh.concrete(type);
    // A connection or edge belongs to the object whose field returned it; its nodes are judged by `reach`.
    if (isWrapper(type)) return { type, concrete, inside: reach.from, nodes: reach };
    return { type, concrete, inside: concrete.length > 0 && concrete.every((t) => this.insideAs(t, reach)), reach };
  }

  /** Whether an object of concrete type `t` reached by `reach` is inside the bound repository. */
  private insideAs(t: GraphQLObjectType, reach: Reach): boolean {
    if (!reach.from) return false;
    const category = this.gh.category(t);
    if (category === "actor") return false;
    if (reach.edge === "search") return t.name === "Issue" || t.name === "PullRequest" || t.name === "Discussion";
    if (category === "value") return true;
    return reach.edge === "contain";
  }

  private selectionSet(set: SelectionSetNode, pos: Position, path: string): void {
    for (const selection of set.selections) {
      this.count();
      if (selection.kind === Kind.FIELD) this.field(selection, pos, path);
      else {
        const fragment = selection.kind === Kind.INLINE_FRAGMENT ? selection : this.fragment(selection.name.value);
        const condition = fragment.typeCondition ? (this.gh.schema.getType(fragment.typeCondition.name.value) as GraphQLCompositeType) : pos.type;
        this.selectionSet(fragment.selectionSet, this.narrow(pos, condition), path);
      }
    }
  }

  /** A position seen through a type condition: fewer possible types, so possibly inside where the whole was not. */
  private narrow(pos: Position, condition: GraphQLCompositeType): Position {
    if (condition === pos.type) return pos;
    const allowed = new Set(this.gh.concrete(condition));
    const concrete = pos.concrete.filter((t) => allowed.has(t));
    const reach = pos.reach;
    if (pos.nodes || pos.payload || !reach) return { ...pos, type: condition, concrete };
    return { ...pos, type: condition, concrete, inside: concrete.length > 0 && concrete.every((t) => this.insideAs(t, reach)) };
  }

  private field(field: FieldNode, pos: Position, path: string): void {
    const name = field.name.value;
    const here = `${path}.${name}`;
    if (name === "__typename") return;
    const def = fieldOf(pos.type, name);
    const type = getNamedType(def.type);
    if (pos.nodes && (name === "nodes" || name === "node" || name === "edges")) {
      // Connection and edge wrappers are transparent: their nodes are where the connection's field said.
      if (field.selectionSet) this.selectionSet(field.selectionSet, this.positionOf(type as GraphQLCompositeType, pos.nodes), here);
      return;
    }
    if (!pos.inside) {
      const allowed = isLeafType(type) ? pos.concrete.every((t) => IDENTITY_FIELDS.has(name) || OUTSIDE_EXTRA_FIELDS[t.name]?.has(name)) : pos.concrete.every((t) => OUTSIDE_EDGES.has(`${t.name}.${name}`));
      if (!allowed || pos.concrete.length === 0) {
        throw new Refusal("repository_mismatch", `${here} reads outside ${this.binding.owner}/${this.binding.name}, where only identity fields (${[...IDENTITY_FIELDS].join(", ")}) may be read`);
      }
      if (field.selectionSet) this.selectionSet(field.selectionSet, { type: type as GraphQLCompositeType, concrete: this.gh.concrete(type), inside: false }, here);
      return;
    }
    if (!isCompositeType(type) || !field.selectionSet) return;
    const contain =
      pos.payload ||
      CONTAINMENT_EDGES.has(`${pos.type.name}.${name}`) ||
      pos.concrete.every((t) => CONTAINMENT_EDGES.has(`${t.name}.${name}`) || (name === "repository" && this.gh.category(t) === "owned"));
    const reach: Reach = { from: true, edge: contain && pos.concrete.length > 0 ? "contain" : "other" };
    this.selectionSet(field.selectionSet, this.positionOf(type, reach), here);
  }

  private fragment(name: string): FragmentDefinitionNode {
    return this.fragments.get(name)!; // validation guarantees it exists and has no cycle
  }

  private count(): void {
    if (++this.visits > MAX_VISITS) throw new Refusal("operation_not_allowed", `the document expands to more than ${MAX_VISITS} selections`);
  }
}

/** A connection or an edge: a list wrapper whose nodes are judged by the field that returned it. */
function isWrapper(type: GraphQLCompositeType): boolean {
  if (!/(Connection|Edge)$/.test(type.name) || !("getFields" in type)) return false;
  const fields = type.getFields();
  return "nodes" in fields || "node" in fields || "edges" in fields;
}

function fieldOf(type: GraphQLCompositeType, name: string): GraphQLField<unknown, unknown> {
  // Unions have only __typename (handled by the caller); validation guarantees the field exists.
  return (type as GraphQLObjectType).getFields()[name]!;
}
