/**
 * The git smart-HTTP proxy (`/git/{owner}/{name}.git/...`) and the REST proxy
 * (`/api/repos/{owner}/{name}/...`): an agent session presents its capability, the user's
 * actor checks it and answers a live user token for this one request, and the request is
 * forwarded to GitHub with that token. The session never sees the token, so a refresh by
 * another session cannot break it, and the capability is worth nothing for any other
 * repository.
 *
 * Bodies stream both ways (packs are never buffered), redirects are never followed, and
 * only the headers git and the REST API need cross in either direction.
 */
import { userActor } from "./api";
import { capabilityFromRequest, parseCapability, parseGitRoute, parseRestRoute } from "./capabilities";
import { loadConfig } from "./config";
import { failure, statusOf, type Failure, type Reason } from "./contract";
import { logEvent } from "./log";

const GIT_REQUEST_HEADERS = ["content-type", "accept", "content-encoding", "git-protocol", "user-agent"];
const GIT_RESPONSE_HEADERS = ["content-type", "cache-control", "expires", "pragma", "content-encoding"];
const REST_REQUEST_HEADERS = ["content-type", "accept", "x-github-api-version", "user-agent"];
const REST_RESPONSE_HEADERS = ["content-type", "etag", "link", "last-modified", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"];

/** `/git/...`: errors are plain text, which git prints to the user as `remote: ...`. */
export async function proxyGit(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const route = parseGitRoute(request.method, url.pathname, url.search.slice(1));
  if (!route) {
    await request.body?.cancel();
    return gitError(failure("invalid_upstream_request", "Only git smart-HTTP fetch and push of the bound repository go through here."));
  }
  const redeemed = await redeem(env, request, route.repository, route.write);
  if (!redeemed.ok) {
    await request.body?.cancel();
    return gitError(redeemed);
  }
  const config = loadConfig(env);
  const upstream = `${config.webUrl}/${redeemed.repository}.git${route.upstreamPath}${url.search}`;
  const headers = pick(request.headers, GIT_REQUEST_HEADERS);
  headers.set("authorization", `Basic ${btoa(`x-access-token:${redeemed.token}`)}`);
  return forward(upstream, request, headers, GIT_RESPONSE_HEADERS, "git");
}

/** `/api/repos/{owner}/{name}/...`: an allow-list of REST calls around a push. */
export async function proxyRest(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const route = parseRestRoute(request.method, url.pathname);
  if (!route) {
    await request.body?.cancel();
    return jsonError(failure("invalid_upstream_request", "This REST call is not on the proxy's allow-list."));
  }
  const redeemed = await redeem(env, request, route.repository, route.write);
  if (!redeemed.ok) {
    await request.body?.cancel();
    return jsonError(redeemed);
  }
  const config = loadConfig(env);
  const upstream = `${config.apiUrl}/repos/${redeemed.repository}${route.subPath}${url.search}`;
  const headers = pick(request.headers, REST_REQUEST_HEADERS);
  headers.set("authorization", `Bearer ${redeemed.token}`);
  return forward(upstream, request, headers, REST_RESPONSE_HEADERS, "rest");
}

async function redeem(
  env: Env,
  request: Request,
  repository: string,
  write: boolean,
): Promise<{ ok: true; token: string; repository: string } | Failure> {
  const raw = capabilityFromRequest(request);
  const parsed = raw ? await parseCapability(raw) : null;
  if (!parsed) return failure("invalid_capability", "Send the session capability as the HTTP password.");
  try {
    return await userActor(env, parsed.userId).redeemCapability({ userId: parsed.userId, secretHash: parsed.secretHash, repository, write });
  } catch {
    return failure("github_unavailable", "The broker could not check the capability; try again.", 1);
  }
}

async function forward(upstream: string, request: Request, headers: Headers, keep: string[], kind: string): Promise<Response> {
  const started = Date.now();
  let response: Response;
  try {
    response = await fetch(upstream, {
      method: request.method,
      headers,
      body: request.method === "GET" || request.method === "HEAD" ? undefined : request.body,
      redirect: "manual",
    });
  } catch {
    return failureResponse(kind, failure("github_unavailable", "GitHub could not be reached.", 5));
  }
  logEvent({ event: `proxy_${kind}`, outcome: String(response.status), durationMs: Date.now() - started });
  if (response.status >= 300 && response.status < 400) {
    await response.body?.cancel();
    return failureResponse(kind, failure("invalid_upstream_request", "GitHub answered with a redirect, which the proxy does not follow."));
  }
  return new Response(response.body, { status: response.status, headers: pick(response.headers, keep) });
}

function failureResponse(kind: string, f: Failure): Response {
  return kind === "git" ? gitError(f) : jsonError(f);
}

function gitError(f: Failure): Response {
  const headers = new Headers({ "content-type": "text/plain; charset=utf-8", "cache-control": "no-store" });
  if (f.reason === "invalid_capability") headers.set("www-authenticate", 'Basic realm="github-token-broker"');
  return new Response(`${f.reason}: ${f.message}\n`, { status: statusOf(f.reason as Reason), headers });
}

function jsonError(f: Failure): Response {
  return new Response(JSON.stringify(f), {
    status: statusOf(f.reason),
    headers: { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" },
  });
}

function pick(from: Headers, names: string[]): Headers {
  const out = new Headers();
  for (const name of names) {
    const value = from.get(name);
    if (value !== null) out.set(name, value);
  }
  return out;
}
