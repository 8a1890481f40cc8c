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
import { callActor, userActor } from "../actors";
import type { Redeemed, RedeemedBase } from "../actor/capabilities";
import { loadConfig } from "../config";
import { failure, type Failure } from "../contract";
import { gitFailure, json } from "../http/respond";
import { installationTokenFor } from "../installations/capability-identity";
import { logEvent } from "../log";
import { providerOf, type Provider } from "../providers";
import { PUBLIC_DOOR, presentedCapability, verifyCapability, type Door, type VerifiedCapability } from "./capability-token";
import { parseGitRoute, parseRestRoute } from "./paths";
import { judgePush, readPush, type ReadPush } from "./push-check";

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
  /** The upstream URL for the repository as issued, at the capability's App's provider. */
  upstream: (repository: string, provider: Provider) => string;
  authorization: (token: string, provider: Provider) => string;
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
  return proxy(request, env, {
    kind: "git",
    route,
    refusal: "Only git smart-HTTP fetch and push of the bound repository go through here.",
    upstream: (repository, provider) => `${provider.gitRemoteUrl(repository)}${route!.upstreamPath}${url.search}`,
    authorization: (token, provider) => provider.gitAuthorization(token),
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

/**
 * Checks the route and the capability, then forwards with a live token. A push's commands
 * are read first and the capability redeemed after them: from the redemption's answer to
 * the request going upstream the proxy waits on nobody (docs/lifecycle.md, "Capabilities").
 */
async function proxy(request: Request, env: Env, spec: ProxySpec): Promise<Response> {
  if (!spec.route) {
    await request.body?.cancel();
    return failureResponse(spec.kind, failure("invalid_upstream_request", spec.refusal));
  }
  // Authenticated here, before any Durable Object is touched: a forged one wakes nothing.
  const verified = await authenticate(env, request, spec.door);
  if (!verified.ok) {
    await request.body?.cancel();
    return failureResponse(spec.kind, verified);
  }
  let body = request.body;
  // A push's ref updates, read before the token is asked for (the client sets the pace here).
  let push: ReadPush | null = null;
  if (spec.kind === "git" && request.method === "POST" && spec.route.write) {
    const read = await readPush(request);
    if (!read.ok) return read.response;
    push = read;
    body = read.body;
  }
  const lent = await redeemVerified(env, verified.value, spec.route);
  if (!lent.ok) {
    await body?.cancel();
    return failureResponse(spec.kind, lent);
  }
  // The audit trail records the refs of every push, allowed or refused (one call per push),
  // alongside the forwarding rather than before it: it is awaited before the answer, not before GitHub.
  let recorded: Promise<unknown> = Promise.resolve();
  if (push) {
    const checked = await judgePush(push, lent.policy, lent.userId);
    const outcome = checked.ok ? "forwarded" : "refused";
    recorded = callActor(() => userActor(env, lent.userId).recordPush({ userId: lent.userId, sessionId: lent.sessionId, repository: lent.repository, refs: checked.refs, outcome }));
    if (!checked.ok) {
      await recorded;
      return withIdentity(checked.response, lent.identity);
    }
    body = checked.body;
  }
  // From the redemption to here, nothing was awaited for an allowed request: the token goes
  // upstream in the same turn as the actor's answer (a judged push awaits nothing either).
  const config = loadConfig(env);
  const provider = providerOf(config, config.apps.get(lent.appType)!);
  const headers = pick(request.headers, spec.requestHeaders);
  headers.set("authorization", spec.authorization(lent.token, provider));
  const response = await forward(spec.upstream(lent.repository, provider), request, body, headers, spec.responseHeaders, spec.kind, lent.userId, provider.name);
  await recorded;
  return withIdentity(response, lent.identity);
}

/** A redemption ready to forward: the token of the identity the actor chose, and whose it is. */
export type Lent = RedeemedBase & { identity: Redeemed["identity"]; token: string; userId: string };

/**
 * The capability `door` presents, authenticated in the Worker before any Durable Object is
 * touched: a forgery, or a container-bound capability at a public door or from another
 * container, wakes nothing.
 */
async function authenticate(env: Env, request: Request, door: Door): Promise<{ ok: true; value: VerifiedCapability } | Failure> {
  const raw = presentedCapability(request, door);
  const verified = raw ? await verifyCapability(env, raw, door.kind === "egress" ? door.containerId : null) : null;
  if (!verified) return failure("invalid_capability", door.kind === "egress" ? "This container holds no capability valid here." : "Send the session capability as the HTTP password.");
  return { ok: true, value: verified };
}

/**
 * Redeems the capability `door` presents for `route`. The caller forwards with no await in
 * between (docs/lifecycle.md): the redemption is the moment revocation is judged.
 */
export async function redeem(
  env: Env,
  request: Request,
  route: { repository: string | null; write: boolean; service: string; appType: string | null },
  door: Door = PUBLIC_DOOR,
): Promise<Lent | Failure> {
  const verified = await authenticate(env, request, door);
  return verified.ok ? redeemVerified(env, verified.value, route) : verified;
}

async function redeemVerified(env: Env, verified: VerifiedCapability, route: { repository: string | null; write: boolean; service: string; appType: string | null }): Promise<Lent | Failure> {
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
