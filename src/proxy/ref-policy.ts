/**
 * The push policy of a session capability: which refs the session may update (`branches`,
 * ref patterns) and whether it may delete refs (`allowDelete`). Pure: no I/O, no runtime.
 *
 * Patterns:
 * - `*` matches within one path segment (`agent/*` matches `agent/fix-1`, not `agent/a/b`);
 *   `**` as a whole segment matches across segments (`agent/**` matches `agent/a/b`; in the
 *   middle, `a/**\/b` matches `a/b` too); anything else is literal.
 * - A pattern without `refs/` names a branch: `agent/*` means `refs/heads/agent/*`.
 * - A tag (`refs/tags/...`) matches only a pattern that starts with `refs/tags/`: no branch
 *   pattern, however wide (`**`, `refs/**`), lets a session move a tag.
 *
 * Patterns are validated when the capability is issued ({@link parseBranchPatterns}), so a
 * caller learns about a typo at once, with a 400, instead of at the agent's first push.
 */
import { failure, type Failure } from "../contract";

/** What a capability carries for the git proxy's receive-pack check. */
export interface PushPolicy {
  /** Patterns as the caller wrote them (used in the refusal message). */
  branches: string[];
  allowDelete: boolean;
}

/**
 * The policy of a capability issued without `branches`: every branch, no tag, no delete.
 * The contract fixes that tags and deletes need saying so; it is silent on the branches, and
 * a `push` capability that could push nowhere would break every caller written before the
 * policy existed. A session that should be confined says `branches`.
 */
export const DEFAULT_BRANCHES: readonly string[] = ["**"];

/** At most this many patterns per capability, each at most this long. */
export const MAX_PATTERNS = 32;
export const MAX_PATTERN_LENGTH = 200;

/** Why a ref is refused; the text after the ref in git's `! [remote rejected] <ref> (...)`. */
export type RefusalReason = "branch_not_allowed" | "delete_not_allowed" | "tag_not_allowed" | "refused_as_whole";

export interface RefCommand {
  oldId: string;
  newId: string;
  ref: string;
}

/** The verdict on a whole push: every command passes, or the whole push is refused. */
export type PushDecision = { allowed: true } | { allowed: false; refusals: { ref: string; reason: RefusalReason }[] };

/** A ref-name segment: git's rules (no control characters, space, `~^:?[\`, `..`, `@{`). */
function validSegment(segment: string, wildcards: boolean): boolean {
  if (segment === "" || segment.startsWith(".") || segment.endsWith(".lock") || segment.endsWith(".")) return false;
  if (segment.includes("..") || segment.includes("@{")) return false;
  if (wildcards && segment === "**") return true;
  if (wildcards && segment.includes("**")) return false;
  for (const ch of segment) {
    const code = ch.codePointAt(0)!;
    if (code < 0x20 || code === 0x7f || " ~^:?[\\".includes(ch) || (!wildcards && ch === "*")) return false;
  }
  return true;
}

/** Whether `ref` is a well-formed full ref name (`refs/...`), by git's `check-ref-format` rules. */
export function isValidRefName(ref: string): boolean {
  if (ref.length === 0 || ref.length > 1024 || !ref.startsWith("refs/") || ref === "@") return false;
  return ref.split("/").every((s) => validSegment(s, false));
}

/** The full pattern a caller's pattern stands for (`agent/*` → `refs/heads/agent/*`). */
export function fullPattern(pattern: string): string {
  return pattern.startsWith("refs/") ? pattern : `refs/heads/${pattern}`;
}

/**
 * Validates `branches` and `allowDelete` from a capability request. `undefined` gives the
 * defaults ({@link DEFAULT_BRANCHES}, no deletes).
 */
export function parsePushPolicy(branches: unknown, allowDelete: unknown): { ok: true; value: PushPolicy } | Failure {
  const patterns = parseBranchPatterns(branches);
  if (!patterns.ok) return patterns;
  if (allowDelete !== undefined && typeof allowDelete !== "boolean") return failure("invalid_request", "allowDelete must be true or false");
  return { ok: true, value: { branches: patterns.value, allowDelete: allowDelete === true } };
}

/** `branches`: 1-32 ref patterns, each a valid ref name once `*` and `**` are set aside. */
export function parseBranchPatterns(value: unknown): { ok: true; value: string[] } | Failure {
  if (value === undefined) return { ok: true, value: [...DEFAULT_BRANCHES] };
  const bad = failure(
    "invalid_request",
    `branches must be an array of 1-${MAX_PATTERNS} ref patterns like "agent/*", "feature/login" or "refs/tags/v*" (* within a segment, ** across)`,
  );
  if (!Array.isArray(value) || value.length === 0 || value.length > MAX_PATTERNS) return bad;
  const out: string[] = [];
  for (const p of value) {
    if (typeof p !== "string" || p.length === 0 || p.length > MAX_PATTERN_LENGTH) return bad;
    const full = fullPattern(p);
    if (full === "refs/" || !full.split("/").every((s) => validSegment(s, true))) return bad;
    if (!out.includes(p)) out.push(p);
  }
  return { ok: true, value: out };
}

/**
 * Whether a full ref matches one (caller's) pattern. Linear-time matching, no regex built from
 * input. A ref git would not accept matches nothing: `refs/heads/agent/../main` would match
 * `agent/**` segment by segment, and only the host's own check would stand between it and `main`.
 */
export function refMatches(pattern: string, ref: string): boolean {
  if (!isValidRefName(ref)) return false;
  const full = fullPattern(pattern);
  if (ref.startsWith("refs/tags/") && !full.startsWith("refs/tags/")) return false;
  return matchSegments(full.split("/"), ref.split("/"));
}

/** Segment matching with `**` (dynamic programming over both lists: no exponential backtracking). */
function matchSegments(pattern: string[], ref: string[]): boolean {
  // reach[j]: pattern[0..i) can match ref[0..j).
  let reach = new Array<boolean>(ref.length + 1).fill(false);
  reach[0] = true;
  for (let i = 0; i < pattern.length; i++) {
    const p = pattern[i]!;
    const next = new Array<boolean>(ref.length + 1).fill(false);
    if (p === "**") {
      // In the middle: zero or more segments; at the end: one or more.
      const last = i === pattern.length - 1;
      let any = false;
      for (let j = 0; j <= ref.length; j++) {
        if (last) next[j] = any;
        if (reach[j]) any = true;
        if (!last) next[j] = any;
      }
    } else {
      for (let j = 0; j < ref.length; j++) if (reach[j] && globSegment(p, ref[j]!)) next[j + 1] = true;
    }
    reach = next;
  }
  return reach[ref.length]!;
}

/** `*` within one segment: the classic greedy wildcard match, O(n·m) at worst. */
function globSegment(pattern: string, text: string): boolean {
  if (!pattern.includes("*")) return pattern === text;
  if (pattern === "*") return text.length > 0;
  let p = 0;
  let t = 0;
  let star = -1;
  let mark = 0;
  while (t < text.length) {
    if (p < pattern.length && pattern[p] === text[t] && pattern[p] !== "*") {
      p++;
      t++;
    } else if (p < pattern.length && pattern[p] === "*") {
      star = p++;
      mark = t;
    } else if (star >= 0) {
      p = star + 1;
      t = ++mark;
    } else return false;
  }
  while (p < pattern.length && pattern[p] === "*") p++;
  return p === pattern.length;
}

/** Whether an object id is all zeros: the command creates (old) or deletes (new) the ref. */
export function isZeroId(id: string): boolean {
  return /^0+$/.test(id);
}

/**
 * The verdict on a push: refused as a whole when any one command is outside the policy
 * (a partial push would leave the session's branches in a state nobody asked for).
 */
export function decidePush(policy: PushPolicy, commands: readonly RefCommand[]): PushDecision {
  const reasons = commands.map((c) => refusalOf(policy, c));
  if (reasons.every((r) => r === null)) return { allowed: true };
  return { allowed: false, refusals: commands.map((c, i) => ({ ref: c.ref, reason: reasons[i] ?? "refused_as_whole" })) };
}

function refusalOf(policy: PushPolicy, command: RefCommand): RefusalReason | null {
  if (isZeroId(command.newId) && !policy.allowDelete) return "delete_not_allowed";
  if (policy.branches.some((p) => refMatches(p, command.ref))) return null;
  return command.ref.startsWith("refs/tags/") ? "tag_not_allowed" : "branch_not_allowed";
}

/** The words git prints in `! [remote rejected] <ref> (<words>)`. */
export function refusalText(policy: PushPolicy, reason: RefusalReason): string {
  switch (reason) {
    case "branch_not_allowed":
      return `branch not allowed for this session: ${policy.branches.join(", ")}`;
    case "delete_not_allowed":
      return "deleting refs is not allowed for this session";
    case "tag_not_allowed":
      return "tags are not allowed for this session";
    case "refused_as_whole":
      return "push refused as a whole: another ref is not allowed";
  }
}
