/**
 * Generated documents against the GraphQL policy: random walks over GitHub's schema from
 * `repository(owner:, name:)` and `viewer`, with aliases, named and inline fragments,
 * `@skip`/`@include` and nested connections. The generator knows the concrete type at every
 * step, so it marks each selected field inside or outside the bound repository with a
 * simple walk of its own (no fragments to resolve, no abstract types to narrow). Whenever
 * the policy allows a document, every field the generator placed outside must be an
 * identity field (or an allowed identity edge), and every root must be an allowed one.
 */
import fc from "fast-check";
import { getNamedType, isAbstractType, isEnumType, isLeafType, isNonNullType, isObjectType, type GraphQLField, type GraphQLObjectType } from "graphql";
import { describe, expect, it } from "vitest";
import { githubSchema } from "../src/surface/github-graphql-schema";
import { CONTAINMENT_EDGES, IDENTITY_FIELDS, OUTSIDE_EDGES, OUTSIDE_EXTRA_FIELDS } from "../src/surface/graphql-reach";
import { judgeGraphQL } from "../src/surface/graphql-policy";

const gh = githubSchema();
const binding = { owner: "o", name: "r", permission: "push" as const, allowDelete: false, branchAllowed: () => true };

/** A field placed outside the repository that is not identity: if the policy allows its document, that is a leak. */
interface Leak {
  path: string;
}

function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Arguments for a field, or null if one it needs is not simple to make up. */
function argsFor(field: GraphQLField<unknown, unknown>): string | null {
  const out: string[] = [];
  for (const arg of field.args) {
    const t = getNamedType(arg.type);
    if (arg.name === "first") out.push("first: 2");
    else if (!isNonNullType(arg.type) || arg.defaultValue !== undefined) continue;
    else if (t.name === "Int") out.push(`${arg.name}: 1`);
    else if (t.name === "String" || t.name === "ID" || t.name === "URI" || t.name === "GitObjectID") out.push(`${arg.name}: "x"`);
    else if (t.name === "Boolean") out.push(`${arg.name}: true`);
    else if (isEnumType(t)) out.push(`${arg.name}: ${t.getValues()[0]!.name}`);
    else return null;
  }
  return out.length ? `(${out.join(", ")})` : "";
}

function isWrapper(t: GraphQLObjectType): boolean {
  const f = t.getFields();
  return /(Connection|Edge)$/.test(t.name) && ("nodes" in f || "node" in f || "edges" in f);
}

class Generator {
  readonly fragments: string[] = [];
  readonly leaks: Leak[] = [];
  private n = 0;
  constructor(private readonly rand: () => number) {}

  pick<T>(list: readonly T[]): T {
    return list[Math.floor(this.rand() * list.length)]!;
  }

  decorate(name: string): string {
    const alias = this.rand() < 0.2 ? `a${this.n++}: ` : "";
    const directive = this.rand() < 0.15 ? this.pick([" @skip(if: true)", " @include(if: false)", " @include(if: true)"]) : "";
    return alias + name + directive;
  }

  /** A selection set on concrete type `t`, inside or outside the repository. */
  object(t: GraphQLObjectType, inside: boolean, depth: number, path: string): string {
    const fields = Object.values(t.getFields());
    const count = 1 + Math.floor(this.rand() * 3);
    const parts: string[] = [];
    for (let i = 0; i < count; i++) {
      let field = this.pick(fields);
      // Outside, mostly ask for identity, so that many generated documents are allowed.
      if (!inside && this.rand() < 0.7) field = fields.find((f) => IDENTITY_FIELDS.has(f.name) && isLeafType(getNamedType(f.type))) ?? field;
      const args = argsFor(field);
      if (args === null) continue;
      const here = `${path}.${field.name}`;
      const named = getNamedType(field.type);
      if (isLeafType(named)) {
        if (!inside && !IDENTITY_FIELDS.has(field.name) && !OUTSIDE_EXTRA_FIELDS[t.name]?.has(field.name)) this.leaks.push({ path: here });
        parts.push(this.decorate(field.name) + args);
        continue;
      }
      if (depth <= 0) continue;
      if (!inside && !OUTSIDE_EDGES.has(`${t.name}.${field.name}`)) this.leaks.push({ path: here });
      const contain = CONTAINMENT_EDGES.has(`${t.name}.${field.name}`) || (field.name === "repository" && gh.category(t) === "owned");
      parts.push(`${this.decorate(field.name)}${args} { __typename ${this.composite(named as GraphQLObjectType, inside, contain, depth - 1, here)} }`);
    }
    const body = parts.join(" ");
    if (this.rand() < 0.2 && body) {
      const name = `F${this.n++}`;
      this.fragments.push(`fragment ${name} on ${t.name} { ${body} }`);
      return `...${name}`;
    }
    return this.rand() < 0.1 ? `... on ${t.name} { ${body} }` : body;
  }

  /** What a field of named type `type` reached from an object `inside` (by a containing edge or not) selects. */
  composite(type: GraphQLObjectType, inside: boolean, contain: boolean, depth: number, path: string): string {
    if (isObjectType(type) && isWrapper(type)) {
      const f = type.getFields();
      const via = f["nodes"] ? "nodes" : f["node"] ? "node" : "edges";
      const inner = getNamedType(f[via]!.type) as GraphQLObjectType;
      const count = inside && this.rand() < 0.3 ? " totalCount" in f || f["totalCount"] ? " totalCount" : "" : "";
      return `${count} ${via} { __typename ${this.composite(inner, inside, contain, depth, `${path}.${via}`)} }`;
    }
    const concrete = isAbstractType(type) ? gh.concrete(type) : [type];
    const chosen = isAbstractType(type) ? [this.pick(concrete), this.pick(concrete)] : concrete;
    const parts = chosen.map((c) => {
      const category = gh.category(c);
      const cInside = inside && category !== "actor" && (category === "value" || contain);
      const sel = this.object(c, cInside, depth, `${path}<${c.name}>`);
      return isAbstractType(type) ? `... on ${c.name} { ${sel} }` : sel;
    });
    return parts.join(" ");
  }
}

function generate(seed: number): { query: string; leaks: Leak[]; foreignRoot: boolean } {
  const g = new Generator(prng(seed));
  const repo = gh.schema.getType("Repository") as GraphQLObjectType;
  const user = gh.schema.getType("User") as GraphQLObjectType;
  const roots: string[] = [];
  const rootChoice = g.pick(["repo", "repo", "repo", "viewer", "other"]);
  let foreignRoot = false;
  if (rootChoice === "viewer") roots.push(`viewer { ${g.object(user, false, 3, "viewer")} }`);
  else {
    foreignRoot = rootChoice === "other";
    roots.push(`${g.decorate("repository")}(owner: "o", name: "${foreignRoot ? "other" : "r"}") { ${g.object(repo, true, 4, "repository")} }`);
  }
  return { query: `query Q { ${roots.join(" ")} } ${g.fragments.join(" ")}`, leaks: g.leaks, foreignRoot };
}

describe("generated documents", () => {
  it("when the policy allows one, nothing outside the repository but identity is selected", () => {
    let allowed = 0;
    let refusedWithLeak = 0;
    fc.assert(
      fc.property(fc.integer(), (seed) => {
        const { query, leaks, foreignRoot } = generate(seed);
        const d = judgeGraphQL({ query }, binding);
        if (!d.ok && d.rule === "invalid_query") return; // the generator's arguments do not always validate
        if (d.ok) {
          allowed++;
          expect(leaks, query).toEqual([]);
          expect(foreignRoot, query).toBe(false);
        } else if (leaks.length > 0) refusedWithLeak++;
      }),
      { numRuns: 600 },
    );
    // The walk reaches outside often and is allowed often: the property is not vacuous.
    expect(allowed).toBeGreaterThan(60);
    expect(refusedWithLeak).toBeGreaterThan(60);
  });

  it("variables in any shape but an object are refused, whatever the defaults name", () => {
    // Defaults that name the bound repository: judged with no variables, the document passes.
    const query = `query($o: String! = "o", $n: String! = "r") { repository(owner: $o, name: $n) { issues(first: 1) { nodes { body } } } }`;
    expect(judgeGraphQL({ query }, binding).ok).toBe(true);
    const notAnObject = fc.oneof(fc.string(), fc.integer(), fc.double(), fc.boolean(), fc.array(fc.anything()), fc.json());
    fc.assert(
      fc.property(notAnObject, (variables) => {
        fc.pre(variables !== null && (typeof variables !== "object" || Array.isArray(variables)));
        const d = judgeGraphQL({ query, variables } as never, binding);
        expect(d.ok ? "allowed" : d.rule).toBe("invalid_query");
      }),
      { numRuns: 300 },
    );
  });
});
