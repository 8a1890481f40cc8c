/**
 * What the GitHub-shaped surface's REST and GraphQL proxies share: redeeming the capability,
 * answering failures the way GitHub does (so `gh` prints them), and forwarding to GitHub's API
 * with the redeemed token, never following a redirect with it.
 */
import type { BrokerConfig } from "../config";
import { failure, statusOf, type Failure } from "../contract";
import { logEvent } from "../log";
import { PUBLIC_DOOR, type Door } from "../proxy/capability-token";
import { pick, redeem, withIdentity, type Lent } from "../proxy/git-proxy";

export const REQUEST_HEADERS = ["content-type", "accept", "x-github-api-version", "user-agent", "graphql-features"];
export const RESPONSE_HEADERS = ["content-type", "etag", "link", "last-modified", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "x-ratelimit-used", "x-ratelimit-resource", "retry-after", "x-github-request-id"];

/** A GitHub-shaped error body (`{message}`, which `gh` prints), with the broker's `reason`. */
export function githubError(status: number, message: string, reason?: string): Response {
  const body = reason ? { message, reason, documentation_url: "https://docs.github.com/rest" } : { message, documentation_url: "https://docs.github.com/rest" };
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" } });
}

/** A failure as GitHub would send it: the contract's status, `reason: words` as the message. */
export function failureResponse(f: Failure): Response {
  const response = githubError(statusOf(f.reason), f.message.startsWith(`${f.reason}:`) ? f.message : `${f.reason}: ${f.message}`, f.reason);
  if (f.retryAfterSeconds !== undefined) response.headers.set("retry-after", String(f.retryAfterSeconds));
  return response;
}

/**
 * Redeems the request's capability (authenticated in the Worker first: a forgery wakes no
 * Durable Object). `repository` is what the request names, or `null` for requests that name
 * none of their own (GraphQL, `/user`): they are judged against what the redemption answers.
 * `door`: where the capability comes from (see src/proxy/capability-token.ts).
 */
export function redeemSurface(env: Env, request: Request, repository: string | null, write: boolean, service: string, door: Door = PUBLIC_DOOR): Promise<Lent | Failure> {
  return redeem(env, request, { repository, write, service, appType: null }, door);
}

/** GitHub's API root and its GraphQL endpoint (`/api/v3` → `/api/graphql` on Enterprise Server). */
export function apiEndpoints(config: BrokerConfig): { rest: string; graphql: string } {
  const rest = config.apiUrl;
  return { rest, graphql: rest.endsWith("/api/v3") ? `${rest.slice(0, -"/v3".length)}/graphql` : `${rest}/graphql` };
}

/**
 * The request headers that cross, with the redeemed token, and where the client reached us
 * (`X-Forwarded-*`: GitHub ignores them; an emulator builds the URLs in its answers from them,
 * as GitHub Enterprise Server builds them from its own host).
 */
export function upstreamHeaders(request: Request, lent: Lent, prefix: "/api/v3" | "/api"): Headers {
  const headers = pick(request.headers, REQUEST_HEADERS);
  headers.set("authorization", `Bearer ${lent.token}`);
  headers.set("x-forwarded-proto", "https");
  headers.set("x-forwarded-host", new URL(request.url).host);
  headers.set("x-forwarded-prefix", prefix);
  return headers;
}

/**
 * Forwards with the redeemed token. A redirect is never followed with it: GitHub's log
 * downloads answer one to a short-lived URL that needs no token, which `passRedirect` hands to
 * the client as it is; any other redirect is refused.
 */
export async function forward(url: string, init: { method: string; headers: Headers; body: BodyInit | null }, lent: Lent, passRedirect: boolean): Promise<Response> {
  const started = Date.now();
  let response: Response;
  try {
    response = await fetch(url, { ...init, redirect: "manual" });
  } catch {
    return failureResponse(failure("github_unavailable", "GitHub could not be reached.", 5));
  }
  logEvent({ event: "proxy_surface", userId: lent.userId, outcome: String(response.status), durationMs: Date.now() - started });
  if (response.status >= 300 && response.status < 400) {
    await response.body?.cancel();
    const location = response.headers.get("location");
    if (!passRedirect || !location) return withIdentity(failureResponse(failure("invalid_upstream_request", "GitHub answered with a redirect, which the proxy does not follow.")), lent.identity);
    return withIdentity(new Response(null, { status: response.status, headers: { location } }), lent.identity);
  }
  return withIdentity(new Response(response.body, { status: response.status, headers: pick(response.headers, RESPONSE_HEADERS) }), lent.identity);
}

