/**
 * GitHub's GraphQL SDL made compact for the Worker (see scripts/github-schema.ts). Pure, so
 * the test that keeps src/surface/github-schema.ts current runs it in workerd too.
 */
import { Kind, parse, print, stripIgnoredCharacters, type DefinitionNode, type DocumentNode } from "graphql";

/** `sdl` without descriptions, directives and duplicate fields, minified. */
export function compactSdl(sdl: string): string {
  const doc = parse(sdl, { noLocation: true });
  const definitions: DefinitionNode[] = [];
  for (const def of doc.definitions) {
    if (def.kind === Kind.DIRECTIVE_DEFINITION) continue;
    definitions.push(strip(def) as DefinitionNode);
  }
  return stripIgnoredCharacters(print({ kind: Kind.DOCUMENT, definitions } as DocumentNode));
}

/** A copy of an AST node without `description` and `directives`, with fields deduplicated. */
function strip(node: unknown): unknown {
  if (Array.isArray(node)) return node.map(strip);
  if (node === null || typeof node !== "object") return node;
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === "description" || key === "directives" || key === "loc") continue;
    if (key === "fields" && Array.isArray(value)) {
      const seen = new Set<string>();
      out[key] = value.filter((f: { name: { value: string } }) => !seen.has(f.name.value) && seen.add(f.name.value)).map(strip);
      continue;
    }
    out[key] = strip(value);
  }
  return out;
}

