/**
 * The git smart-HTTP proxy (`/git/{owner}/{name}.git/...`) and the REST proxy
 * (`/api/repos/{owner}/{name}/...`): an agent session presents its capability, the user's
 * actor checks it and answers a live user token for this one request (or "the App", for
 * which the installation actor answers an installation token), and the request is forwarded
 * to GitHub with that token. The session never sees a token, so a refresh by another session
 * cannot break it, and the capability is worth nothing for any other repository. Every
 * response after a redemption says whose token it used: `X-Broker-Identity: user|app`.
 *
 * Bodies stream both ways (packs are never buffered), redirects are never followed, and
 * only the headers git and the REST API need cross in either direction.
 */
import { callActor, userActor } from "../api";
import type { Redeemed, RedeemedBase } from "../actor/capabilities";
import { loadConfig, type AppConfig } from "../config";
import { failure, type Failure } from "../contract";
import { gitFailure, json } from "../http/respond";
import { installationTokenFor } from "../installations/capability-identity";
import { logEvent } from "../log";
import { PROVIDER_NAMES } from "../providers/provider";
import { PUBLIC_DOOR, presentedCapability, verifyCapability, type Door } from "./capability-token";
import { parseGitRoute, parseRestRoute } from "./paths";
import { checkPush } from "./push-check";

const GIT_REQUEST_HEADERS = ["content-type", "accept", "content-encoding", "git-protocol", "user-agent"];
const GIT_RESPONSE_HEADERS = ["content-type", "cache-control", "expires", "pragma", "content-encoding"];
const REST_REQUEST_HEADERS = ["content-type", "accept", "x-github-api-version", "user-agent"];
const REST_RESPONSE_HEADERS = ["content-type", "etag", "link", "last-modified", "x-ratelimit-limit", "x-ratelimit-remaining", "x-ratelimit-reset", "retry-after"];

/** What differs between the two proxies. */
interface ProxySpec {
  kind: "git" | "rest";
  /** The parsed route, or `null` when the path or method is not allowed. */
  route: { repository: string; write: boolean; service: string; appType: string | null } | null;
  refusal: string;
  /** The upstream URL for the repository as issued, on the capability's App's host. */
  upstream: (repository: string, app: AppConfig) => string;
  authorization: (token: string, app: AppConfig) => string;
  requestHeaders: string[];
  responseHeaders: string[];
  door: Door;
}

/**
 * `/git/...`: errors are plain text, which git prints to the user as `remote: ...`. `door`:
 * where the capability comes from (the request at the public doors; the platform at a
 * container's egress door, src/surface/egress.ts).
 */
export function proxyGit(request: Request, env: Env, door: Door = PUBLIC_DOOR): Promise<Response> {
  const url = new URL(request.url);
  const route = parseGitRoute(request.method, url.pathname, url.search.slice(1));
  const config = loadConfig(env);
  return proxy(request, env, {
    kind: "git",
    route,
    refusal: "Only git smart-HTTP fetch and push of the bound repository go through here.",
    // GitLab: `{baseUrl}/{group/.../project}.git`, its OAuth tokens as the `oauth2` user's password.
    upstream: (repository, app) => `${app.provider === "gitlab" ? app.baseUrl : config.webUrl}/${repository}.git${route!.upstreamPath}${url.search}`,
    authorization: (token, app) => `Basic ${btoa(`${app.provider === "gitlab" ? "oauth2" : "x-access-token"}:${token}`)}`,
    requestHeaders: GIT_REQUEST_HEADERS,
    responseHeaders: GIT_RESPONSE_HEADERS,
    door,
  });
}

/** `/api/repos/{owner}/{name}/...`: an allow-list of REST calls around a push. */
export function proxyRest(request: Request, env: Env): Promise<Response> {
  const url = new URL(request.url);
  const route = parseRestRoute(request.method, url.pathname);
  const config = loadConfig(env);
  return proxy(request, env, {
    kind: "rest",
    route: route && { ...route, service: "rest", appType: null },
    refusal: "This REST call is not on the proxy's allow-list.",
    upstream: (repository) => `${config.apiUrl}/repos/${repository}${route!.subPath}${url.search}`,
    authorization: (token) => `Bearer ${token}`,
    requestHeaders: REST_REQUEST_HEADERS,
    responseHeaders: REST_RESPONSE_HEADERS,
    door: PUBLIC_DOOR,
  });
}

/** Checks the route and the capability, then forwards with a live user token. */
async function proxy(request: Request, env: Env, spec: ProxySpec): Promise<Response> {
  const refused = spec.route ? await redeem(env, request, spec.route, spec.door) : failure("invalid_upstream_request", spec.refusal);
  if (!refused.ok) {
    await request.body?.cancel();
    return failureResponse(spec.kind, refused);
  }
  // The push policy: a push's ref updates are checked before anything goes upstream.
  let body = request.body;
  // The audit trail records the refs of every push, allowed or refused (one call per push),
  // alongside the forwarding rather than before it: it is awaited before the answer, not before GitHub.
  let recorded: Promise<unknown> = Promise.resolve();
  if (spec.kind === "git" && request.method === "POST" && spec.route!.write) {
    const checked = await checkPush(request, refused.policy, refused.userId);
    if (checked.refs) {
      const outcome = checked.ok ? "forwarded" : "refused";
      recorded = callActor(() => userActor(env, refused.userId).recordPush({ userId: refused.userId, sessionId: refused.sessionId, repository: refused.repository, refs: checked.refs!, outcome }));
    }
    if (!checked.ok) {
      await recorded;
      return withIdentity(checked.response, refused.identity);
    }
    body = checked.body;
  }
  const app = loadConfig(env).apps.get(refused.appType)!;
  const headers = pick(request.headers, spec.requestHeaders);
  headers.set("authorization", spec.authorization(refused.token, app));
  const response = await forward(spec.upstream(refused.repository, app), request, body, headers, spec.responseHeaders, spec.kind, refused.userId, PROVIDER_NAMES[app.provider]);
  await recorded;
  return withIdentity(response, refused.identity);
}

/** A redemption ready to forward: the token of the identity the actor chose, and whose it is. */
export type Lent = RedeemedBase & { identity: Redeemed["identity"]; token: string; userId: string };

/**
 * Redeems the capability `door` presents for `route`. Authenticated in the Worker before any
 * Durable Object is touched: a forgery, or a container-bound capability at a public door or
 * from another container, wakes nothing.
 */
export async function redeem(
  env: Env,
  request: Request,
  route: { repository: string | null; write: boolean; service: string; appType: string | null },
  door: Door = PUBLIC_DOOR,
): Promise<Lent | Failure> {
  const raw = presentedCapability(request, door);
  const verified = raw ? await verifyCapability(env, raw, door.kind === "egress" ? door.containerId : null) : null;
  if (!verified) return failure("invalid_capability", door.kind === "egress" ? "This container holds no capability valid here." : "Send the session capability as the HTTP password.");
  const { userId, secretHash, containerId } = verified;
  const { repository, write, service, appType } = route;
  const redeemed = await callActor(
    async (): Promise<Redeemed | Failure> => await userActor(env, userId).redeemCapability({ userId, secretHash, repository, write, service, appType, containerId }),
  );
  if (!redeemed.ok) return redeemed;
  if (redeemed.identity === "user") return { ...redeemed, userId };
  // The App's turn: the installation actor answers the token (cached, one mint for all).
  const app = await installationTokenFor(env, redeemed);
  return app.ok ? { ...redeemed, token: app.token, userId } : app;
}

async function forward(
  upstream: string,
  request: Request,
  body: ReadableStream<Uint8Array> | null,
  headers: Headers,
  keep: string[],
  kind: string,
  userId: string,
  who: string,
): Promise<Response> {
  const started = Date.now();
  let response: Response;
  try {
    response = await fetch(upstream, {
      method: request.method,
      headers,
      body: request.method === "GET" || request.method === "HEAD" ? undefined : body,
      redirect: "manual",
    });
  } catch {
    return failureResponse(kind, failure("github_unavailable", `${who} could not be reached.`, 5));
  }
  logEvent({ event: `proxy_${kind}`, userId, outcome: String(response.status), durationMs: Date.now() - started });
  if (response.status >= 300 && response.status < 400) {
    await response.body?.cancel();
    return failureResponse(kind, failure("invalid_upstream_request", `${who} answered with a redirect, which the proxy does not follow.`));
  }
  return new Response(response.body, { status: response.status, headers: pick(response.headers, keep) });
}

/** `X-Broker-Identity`: whose token the proxied request carried. */
export function withIdentity(response: Response, identity: Redeemed["identity"]): Response {
  const out = new Response(response.body, response);
  out.headers.set("x-broker-identity", identity);
  return out;
}

function failureResponse(kind: string, f: Failure): Response {
  return kind === "git" ? gitFailure(f) : json(f);
}

export function pick(from: Headers, names: string[]): Headers {
  const out = new Headers();
  for (const name of names) {
    const value = from.get(name);
    if (value !== null) out.set(name, value);
  }
  return out;
}
