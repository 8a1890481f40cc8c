/**
 * Whether a GitHub search query string is confined to one repository. Pure.
 *
 * GitHub's search syntax: whitespace-separated terms; `"..."` a phrase (a qualifier inside
 * quotes is text, not a qualifier); `-term` or `NOT term` negates; `AND`/`OR` and
 * parentheses combine; several `repo:`, `org:`, `user:` qualifiers are ORed together, so any
 * second scoping qualifier widens the search. A query is confined when it has exactly the
 * one positive `repo:<owner>/<name>` naming the bound repository, no other positive
 * scoping qualifier, and no boolean operators or parentheses (whose precedence could lift
 * the qualifier off part of the query). Negated scoping qualifiers only narrow and are allowed.
 */

/** Qualifiers that choose which repositories are searched (compared case-insensitively). */
const SCOPING = new Set(["repo", "org", "user", "owner", "enterprise", "repository"]);

const SCOPING_ANYWHERE = /(repo|org|user|owner|enterprise|repository)\s*:/i;

export type SearchScope = { ok: true } | { ok: false; message: string };

/** Whether `query` searches only `owner/name`. */
export function searchConfined(query: string, owner: string, name: string): SearchScope {
  const bound = `${owner}/${name}`.toLowerCase();
  let confined = false;
  const split = terms(query);
  if (split === null) return { ok: false, message: "search has an unbalanced quote" };
  for (const raw of split) {
    if (raw.startsWith('"') && raw.endsWith('"')) {
      // A phrase is text; one that reads like a qualifier is refused rather than guessed at.
      if (SCOPING_ANYWHERE.test(raw)) return { ok: false, message: "search may not quote a scoping qualifier" };
      continue;
    }
    if (/^(OR|AND|NOT)$/i.test(raw) || raw.includes("(") || raw.includes(")")) {
      return { ok: false, message: "search may not use OR, AND, NOT or parentheses" };
    }
    const negated = raw.startsWith("-");
    const term = negated ? raw.slice(1) : raw;
    const colon = term.indexOf(":");
    const qualifier = colon > 0 ? term.slice(0, colon).toLowerCase() : "";
    if (!SCOPING.has(qualifier)) {
      // `x"repo:a/b"` or `foo,org:x`: whatever GitHub makes of it, it is not confined.
      if (SCOPING_ANYWHERE.test(term)) return { ok: false, message: `search term not understood: ${term.slice(0, 40)}` };
      continue;
    }
    if (negated) continue;
    const value = term.slice(colon + 1).replace(/^"(.*)"$/, "$1").toLowerCase();
    // GitHub recognises the qualifier in lower case only: `REPO:o/r` would be text and scope nothing.
    if (term.startsWith("repo:") && value === bound && !confined) {
      confined = true;
      continue;
    }
    return { ok: false, message: `search may not name another scope (${term.slice(0, colon)}:${value})` };
  }
  return confined ? { ok: true } : { ok: false, message: `search must be qualified by repo:${owner}/${name}` };
}

/** Splits on whitespace, keeping `"..."` phrases (and `key:"a b"` values) whole; null if a quote is unbalanced. */
function terms(query: string): string[] | null {
  const out: string[] = [];
  let current = "";
  let quoted = false;
  for (const ch of query) {
    if (ch === '"') quoted = !quoted;
    if (!quoted && /\s/.test(ch)) {
      if (current) out.push(current);
      current = "";
    } else current += ch;
  }
  if (quoted) return null;
  if (current) out.push(current);
  return out;
}
