/**
 * `/api/v3/...` on AGENT_HOST: GitHub's REST API for one session, as GitHub Enterprise Server
 * shapes it. The capability is redeemed (the repository the path names must be the bound one),
 * the call judged by rest-policy.ts, a merge's base branch looked up and judged (a pull request's
 * new base, or a new ref, read from the body and judged), and the call
 * forwarded with the live token of the capability's identity.
 */
import { loadConfig } from "../config";
import { PUBLIC_DOOR, type Door } from "../proxy/capability-token";
import { failure } from "../contract";
import { withIdentity, type Lent } from "../proxy/git-proxy";
import { MAX_BODY_BYTES, readLimited, repositoryOf } from "../validate";
import { judgeBaseChange, judgeMergeBase, judgeRefCreate, judgeRest, type Binding, type SurfaceRefusal } from "./rest-policy";
import { apiEndpoints, failureResponse, forward, githubError, redeemSurface, upstreamHeaders } from "./upstream";

/** GitHub caps a pull request's body at 65,536 characters: at most 256 KiB of UTF-8, and its other fields are short. */
const MAX_PULL_BODY_BYTES = 512 * 1024;

/** Serves `rawPath` (the path below `/api/v3`, as sent); `door`: where the capability comes from. */
export async function restProxy(request: Request, env: Env, rawPath: string, door: Door = PUBLIC_DOOR): Promise<Response> {
  const named = /^\/repos\/([^/]+)\/([^/]+)/.exec(rawPath);
  const write = request.method !== "GET" && request.method !== "HEAD";
  const lent = await redeemSurface(env, request, named ? (repositoryOf(named[1]!, named[2]!) ?? `${named[1]}/${named[2]}`) : null, write, "rest", door);
  if (!lent.ok) {
    await request.body?.cancel();
    return failureResponse(lent);
  }
  const binding: Binding = { repository: lent.repository, permission: lent.permission, policy: lent.policy };
  const decision = judgeRest(request.method, rawPath, binding);
  if (!decision.ok) return refused(request, lent, decision);

  const config = loadConfig(env);
  const api = apiEndpoints(config);
  const headers = upstreamHeaders(request, lent, "/api/v3");
  let body: BodyInit | null = write ? request.body : null;

  if (decision.identity && lent.identity === "app") {
    // The App's bot has no `/user`: answer who this session acts as, from the App's configuration.
    const app = config.apps.get(lent.appType);
    const login = `${app?.slug ?? lent.appType}[bot]`;
    const bot = { login, id: Number(app?.botUserId ?? 0), type: "Bot", name: login, site_admin: false };
    return withIdentity(new Response(JSON.stringify(bot), { headers: { "content-type": "application/json; charset=utf-8" } }), "app");
  }
  if (decision.refFromBody || decision.baseFromBody) {
    // The body names what the call writes: read (bounded) and judged before it goes anywhere.
    const limit = decision.baseFromBody ? MAX_PULL_BODY_BYTES : MAX_BODY_BYTES;
    const text = await readLimited(request, limit);
    if (text === null) return withIdentity(githubError(413, `This request body is at most ${limit / 1024} KiB.`), lent.identity);
    let fields: { ref?: unknown; base?: unknown };
    try {
      fields = JSON.parse(text) as typeof fields;
      if (!fields || typeof fields !== "object" || Array.isArray(fields)) throw new Error();
    } catch {
      return withIdentity(githubError(400, "Problems parsing JSON"), lent.identity);
    }
    const bad = decision.refFromBody ? judgeRefCreate(binding, fields.ref) : judgeBaseChange(binding, fields.base);
    if (bad) return refused(request, lent, bad);
    body = text;
  }
  if (decision.mergeOf !== undefined) {
    const base = await baseOf(`${api.rest}/repos/${lent.repository}/pulls/${decision.mergeOf}`, headers);
    if (base === 404) return withIdentity(githubError(404, "Not Found"), lent.identity);
    if (base === null) return withIdentity(failureResponse(failure("github_unavailable", "GitHub did not say which branch this pull request merges into.", 5)), lent.identity);
    const bad = judgeMergeBase(binding, base);
    if (bad) return refused(request, lent, bad);
  }
  const search = new URL(request.url).search;
  return forward(`${api.rest}${decision.upstreamPath}${search}`, { method: request.method, headers, body }, lent, decision.passRedirect);
}

async function refused(request: Request, lent: Lent, refusal: SurfaceRefusal): Promise<Response> {
  await request.body?.cancel().catch(() => undefined);
  return withIdentity(failureResponse(failure(refusal.rule, refusal.message)), lent.identity);
}

/** The base branch of a pull request, as GitHub reports it; 404 for none; `null` when GitHub does not say. */
async function baseOf(url: string, headers: Headers): Promise<string | 404 | null> {
  try {
    const lookup = new Headers(headers);
    lookup.set("accept", "application/vnd.github+json");
    lookup.delete("content-type");
    const response = await fetch(url, { headers: lookup, redirect: "manual" });
    if (!response.ok) {
      await response.body?.cancel();
      return response.status === 404 ? 404 : null;
    }
    const ref = ((await response.json()) as { base?: { ref?: unknown } }).base?.ref;
    return typeof ref === "string" ? ref : null;
  } catch {
    return null;
  }
}
