/**
 * The REST half of the GitHub-shaped surface (`/api/v3/...` on AGENT_HOST): which calls a
 * session capability may make, judged before anything goes upstream. Pure: no I/O.
 *
 * Only the bound repository's own routes (`/repos/{owner}/{name}/...`) and the identity
 * (`/user`, `/rate_limit`) are served, from an allow-list of what an agent does around a
 * change. Writes need a `push` capability; a ref write is judged by the session's branch
 * policy like a push, and a merge writes the pull request's base branch, which only GitHub
 * knows: the decision then asks the caller to look it up ({@link RestDecision} `mergeOf`).
 * Moving a pull request's base is judged as a merge into the new base: GitHub keeps an enabled
 * auto-merge across the move, so it would merge where the session may not write.
 */
import type { Permission } from "../contract";
import { decidePush, refusalText, type PushPolicy } from "../proxy/ref-policy";

/** Why the surface refused a request: the rule, for code; every refusal says it in words too. */
export type SurfaceRule = "repository_mismatch" | "insufficient_permission" | "branch_not_allowed" | "operation_not_allowed";

export interface SurfaceRefusal {
  ok: false;
  rule: SurfaceRule;
  message: string;
}

/** What the session's capability is bound to, as its redemption answered. */
export interface Binding {
  /** `owner/name` as issued. */
  repository: string;
  permission: Permission;
  policy: PushPolicy;
}

export interface RestAllowed {
  ok: true;
  /** The path to request on the API host (`/repos/{owner}/{name}/...`, `/user`, `/rate_limit`). */
  upstreamPath: string;
  write: boolean;
  /** GitHub answers this route with a redirect to a short-lived URL (logs): pass it through, never follow it. */
  passRedirect: boolean;
  /** `PUT .../pulls/{n}/merge`: the merge writes that pull request's base branch; judge it with {@link judgeMergeBase}. */
  mergeOf?: number;
  /** `POST .../git/refs`: the body names the ref; judge it with {@link judgeRefCreate}. */
  refFromBody?: true;
  /** `PATCH .../pulls/{n}`: the body may move the pull request's base; judge it with {@link judgeBaseChange}. */
  baseFromBody?: true;
  /** `/user`: answered for the capability's identity (the App's bot has no `/user`). */
  identity?: true;
}

export type RestDecision = RestAllowed | SurfaceRefusal;

type Method = "GET" | "POST" | "PATCH" | "PUT" | "DELETE";
interface Rule {
  pattern: RegExp;
  methods: Method[];
  passRedirect?: boolean;
}

const N = String.raw`\d{1,12}`;
/** A ref or path segment run, plain (no `..`: dot segments are refused before this). */
const PATH = String.raw`[A-Za-z0-9._\-/]{1,400}`;
const SHA_OR_REF = String.raw`[A-Za-z0-9._\-/]{1,250}`;

/** Below `/repos/{owner}/{name}`: what an agent needs around a change. */
const REPO_RULES: Rule[] = [
  // The repository, its branches, commits and contents (read).
  { pattern: /^$/, methods: ["GET"] },
  { pattern: new RegExp(`^/branches(/${SHA_OR_REF})?$`), methods: ["GET"] },
  { pattern: new RegExp(`^/commits(/${SHA_OR_REF})?$`), methods: ["GET"] },
  { pattern: new RegExp(`^/compare/${SHA_OR_REF}$`), methods: ["GET"] },
  { pattern: new RegExp(`^/(contents(/${PATH})?|readme)$`), methods: ["GET"] },
  { pattern: new RegExp(`^/git/(ref|refs)(/${SHA_OR_REF})?$`), methods: ["GET"] },
  { pattern: new RegExp(`^/git/(commits|trees|blobs|tags)/[0-9a-f]{4,64}$`), methods: ["GET"] },
  // Pull requests, their comments, reviews and reviewers.
  { pattern: /^\/pulls$/, methods: ["GET", "POST"] },
  { pattern: new RegExp(`^/pulls/${N}$`), methods: ["GET", "PATCH"] },
  { pattern: new RegExp(`^/pulls/${N}/(files|commits)$`), methods: ["GET"] },
  { pattern: new RegExp(`^/pulls/${N}/(comments|reviews)$`), methods: ["GET", "POST"] },
  { pattern: new RegExp(`^/pulls/${N}/reviews/${N}$`), methods: ["GET", "PUT"] },
  { pattern: new RegExp(`^/pulls/${N}/reviews/${N}/(comments)$`), methods: ["GET"] },
  { pattern: new RegExp(`^/pulls/${N}/reviews/${N}/events$`), methods: ["POST"] },
  { pattern: new RegExp(`^/pulls/${N}/requested_reviewers$`), methods: ["GET", "POST", "DELETE"] },
  { pattern: new RegExp(`^/pulls/comments(/${N})?$`), methods: ["GET"] },
  { pattern: new RegExp(`^/pulls/comments/${N}$`), methods: ["PATCH"] },
  // Issues: read, comment, label.
  { pattern: /^\/issues$/, methods: ["GET"] },
  { pattern: new RegExp(`^/issues/${N}$`), methods: ["GET"] },
  { pattern: new RegExp(`^/issues/${N}/(comments|labels)$`), methods: ["GET", "POST"] },
  { pattern: new RegExp(`^/issues/${N}/(events|timeline)$`), methods: ["GET"] },
  { pattern: new RegExp(`^/issues/comments(/${N})?$`), methods: ["GET"] },
  { pattern: new RegExp(`^/issues/comments/${N}$`), methods: ["PATCH"] },
  { pattern: /^\/labels(\/[A-Za-z0-9._\- ]{1,100})?$/, methods: ["GET"] },
  { pattern: /^\/(assignees|milestones)$/, methods: ["GET"] },
  // Checks, statuses, Actions (read; logs answer with a redirect, passed through).
  { pattern: new RegExp(`^/commits/${SHA_OR_REF}/(check-runs|check-suites|status|statuses)$`), methods: ["GET"] },
  { pattern: new RegExp(`^/check-runs/${N}(/annotations)?$`), methods: ["GET"] },
  { pattern: new RegExp(`^/check-suites/${N}(/check-runs)?$`), methods: ["GET"] },
  { pattern: new RegExp(`^/statuses/${SHA_OR_REF}$`), methods: ["GET"] },
  { pattern: /^\/actions\/(runs|workflows)$/, methods: ["GET"] },
  { pattern: new RegExp(`^/actions/runs/${N}(/jobs|/attempts/${N}(/jobs)?)?$`), methods: ["GET"] },
  { pattern: new RegExp(`^/actions/workflows/[A-Za-z0-9._\\-]{1,100}(/runs)?$`), methods: ["GET"] },
  { pattern: new RegExp(`^/actions/jobs/${N}$`), methods: ["GET"] },
  { pattern: new RegExp(`^/actions/(jobs|runs)/${N}/logs$`), methods: ["GET"], passRedirect: true },
  { pattern: new RegExp(`^/actions/runs/${N}/attempts/${N}/logs$`), methods: ["GET"], passRedirect: true },
  // Releases (read).
  { pattern: /^\/releases(\/latest)?$/, methods: ["GET"] },
  { pattern: new RegExp(`^/releases/(${N}|tags/${SHA_OR_REF})$`), methods: ["GET"] },
];

/**
 * Judges `method rawPath` (below `/api/v3`, as sent: plain, no percent-encoding or dot
 * segments) for a session bound to `binding`.
 */
export function judgeRest(method: string, rawPath: string, binding: Binding): RestDecision {
  if (rawPath.includes("%") || rawPath.includes("//") || /(^|\/)\.\.?(\/|$)/.test(rawPath)) {
    return refuse("operation_not_allowed", "the path must be plain (no percent-encoding, dot segments or doubled slashes)");
  }
  if (method === "GET" && (rawPath === "/user" || rawPath === "/rate_limit")) {
    return { ok: true, upstreamPath: rawPath, write: false, passRedirect: false, ...(rawPath === "/user" ? { identity: true as const } : {}) };
  }
  const m = /^\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(rawPath);
  if (!m) return refuse("operation_not_allowed", `only ${binding.repository} and /user are served to this session`);
  if (`${m[1]}/${m[2]}`.toLowerCase() !== binding.repository.toLowerCase()) {
    return refuse("repository_mismatch", `this session may use ${binding.repository} only`);
  }
  const sub = m[3] ?? "";
  const upstreamPath = `/repos/${binding.repository}${sub}`;
  const write = method !== "GET" && method !== "HEAD";
  if (write && binding.permission !== "push") return refuse("insufficient_permission", "this session's capability is read-only");

  const merge = new RegExp(`^/pulls/(${N})/merge$`).exec(sub);
  if (merge && method === "GET") return { ok: true, upstreamPath, write: false, passRedirect: false };
  if (merge && method === "PUT") return { ok: true, upstreamPath, write: true, passRedirect: false, mergeOf: Number(merge[1]) };
  if (sub === "/git/refs" && method === "POST") return { ok: true, upstreamPath, write: true, passRedirect: false, refFromBody: true };
  if (method === "PATCH" && new RegExp(`^/pulls/${N}$`).test(sub)) return { ok: true, upstreamPath, write: true, passRedirect: false, baseFromBody: true };
  const refWrite = new RegExp(`^/git/refs/(heads/${SHA_OR_REF})$`).exec(sub);
  if (refWrite && (method === "PATCH" || method === "DELETE")) {
    const refused = judgeRef(binding, `refs/${refWrite[1]}`, method === "DELETE");
    return refused ?? { ok: true, upstreamPath, write: true, passRedirect: false };
  }

  const rule = REPO_RULES.find((r) => r.pattern.test(sub));
  if (!rule) return refuse("operation_not_allowed", `${method} ${sub || "/"} is not among the calls this surface serves`);
  if (!rule.methods.includes(method as Method)) return refuse("operation_not_allowed", `${method} is not allowed on ${sub || "the repository"}`);
  return { ok: true, upstreamPath, write, passRedirect: rule.passRedirect === true };
}

/** A merge into `baseRef` (a branch name, as GitHub reports a pull request's base). */
export function judgeMergeBase(binding: Binding, baseRef: string): SurfaceRefusal | null {
  return judgeRef(binding, `refs/heads/${baseRef}`, false);
}

/** `PATCH /pulls/{n}` with `{base?}` from its body: a new base is judged as a merge into it. */
export function judgeBaseChange(binding: Binding, base: unknown): SurfaceRefusal | null {
  if (base === undefined) return null;
  if (typeof base !== "string" || base === "") return refuse("operation_not_allowed", "base must be a branch name");
  return judgeRef(binding, `refs/heads/${base}`, false);
}

/** `POST /git/refs` with `{ref}` from its body. */
export function judgeRefCreate(binding: Binding, ref: unknown): SurfaceRefusal | null {
  if (typeof ref !== "string" || !ref.startsWith("refs/")) return refuse("operation_not_allowed", "ref must be a full ref name (refs/heads/...)");
  return judgeRef(binding, ref, false);
}

/** A ref write judged exactly as a push of that ref would be. */
function judgeRef(binding: Binding, ref: string, deletion: boolean): SurfaceRefusal | null {
  const zero = "0".repeat(40);
  const decision = decidePush(binding.policy, [{ oldId: zero, newId: deletion ? zero : "1".repeat(40), ref }]);
  if (decision.allowed) return null;
  const reason = decision.refusals[0]!.reason;
  return refuse(reason === "delete_not_allowed" ? "operation_not_allowed" : "branch_not_allowed", `${ref}: ${refusalText(binding.policy, reason)}`);
}

function refuse(rule: SurfaceRule, words: string): SurfaceRefusal {
  return { ok: false, rule, message: `${rule}: ${words}` };
}
