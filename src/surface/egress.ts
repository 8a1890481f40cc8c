/**
 * The egress door: a request a container's outbound handler intercepted on its way to the
 * provider (`https://github.com/...`, `https://api.github.com/...`, a GitLab instance), handed
 * to the broker over the platform's service binding (`BrokerApi.egress`) with the capability
 * the platform keeps for that container and the container's id (docs/egress.md).
 *
 * The request is mapped onto the GitHub-shaped surface's shapes and judged by exactly its
 * judge (git proxy and branch policy, rest-policy.ts, graphql-policy.ts): one judge, three
 * front doors (AGENT_HOST, the public paths, this one). Only the capability's source differs:
 * here it is the platform's, never the request's (the sandbox holds a placeholder), and a
 * container-bound capability verifies only with this container's id.
 *
 * Hosts are the broker's own configuration (`GITHUB_WEB_URL`, `GITHUB_API_URL`, each GitLab
 * App's `baseUrl`), compared by host name and port, so GitHub Enterprise Server works too.
 */
import { loadConfig, type BrokerConfig } from "../config";
import { failure, type Failure } from "../contract";
import { gitFailure } from "../http/respond";
import type { Door } from "../proxy/capability-token";
import { proxyGit } from "../proxy/git-proxy";
import { providerOf } from "../providers";
import { isName } from "../validate";
import { graphqlProxy } from "./graphql-proxy";
import { restProxy } from "./rest-proxy";
import { apiEndpoints, failureResponse, githubError } from "./upstream";

/** What the platform's handler passes with each intercepted request. */
export interface EgressBinding {
  /** `ctx.containerId`: the container whose outbound request this is. */
  containerId: string;
  /** The capability the platform keeps for that container; `null` when it holds none. */
  capability: string | null;
}

const GIT_PATH = /^\/(.+?)(?:\.git)?\/(info\/refs|git-upload-pack|git-receive-pack)$/;

/** Serves one intercepted request (see the module comment). */
export async function egress(request: Request, env: Env, binding: unknown): Promise<Response> {
  const door = doorOf(binding);
  if (!door.ok) return refuse(request, githubError(400, `${door.reason}: ${door.message}`, door.reason));
  const url = new URL(request.url);
  const config = loadConfig(env);
  const route = routeOf(config, url);
  if (!route) {
    const refusal = failure("operation_not_allowed", `${url.host}${url.pathname} is not a git, REST or GraphQL endpoint the sandbox may reach.`);
    return refuse(request, isGitLike(url.pathname) ? gitFailure(refusal) : failureResponse(refusal));
  }
  if (route.kind === "rest") return restProxy(request, env, route.rawPath, door.value);
  if (route.kind === "graphql") {
    if (request.method !== "POST") return refuse(request, githubError(404, "Not Found"));
    return graphqlProxy(request, env, door.value);
  }
  // The git proxy's own route (`/git/{owner}/{name}.git/...`, `/git/{appType}/{group/.../project}.git/...`).
  const inner = new URL(`https://egress.internal/git${route.prefix ? `/${route.prefix}` : ""}${route.path}`);
  inner.search = url.search;
  return proxyGit(new Request(inner, request), env, door.value);
}

type Route = { kind: "rest"; rawPath: string } | { kind: "graphql" } | { kind: "git"; prefix: string; path: string };

/** Which surface an intercepted URL belongs to, by the configured hosts; `null` for none. */
export function routeOf(config: BrokerConfig, url: URL): Route | null {
  const path = url.pathname;
  const git = GIT_PATH.exec(path);
  // git first: where the web and API hosts are one (a test harness), git's paths are git's.
  if (git && url.host === new URL(config.webUrl).host) return /^[^/]+\/[^/]+$/.test(git[1]!) ? { kind: "git", prefix: "", path } : null;
  const graphql = new URL(apiEndpoints(config).graphql);
  if (url.host === graphql.host && path === graphql.pathname) return { kind: "graphql" };
  const api = new URL(config.apiUrl);
  const apiPath = api.pathname.replace(/\/$/, "");
  if (url.host === api.host && path.startsWith(`${apiPath}/`)) return { kind: "rest", rawPath: path.slice(apiPath.length) };
  for (const app of config.apps.values()) {
    // A provider whose proxy path names the App (GitLab: `{baseUrl}/{group/.../project}.git/...`).
    const provider = providerOf(config, app);
    if (git && provider.pathApp !== null && url.host === new URL(provider.webUrl).host) return { kind: "git", prefix: provider.pathApp, path };
  }
  return null;
}

function doorOf(binding: unknown): { ok: true; value: Door } | Failure {
  const fields = (binding && typeof binding === "object" ? binding : {}) as Record<string, unknown>;
  const containerId = fields.containerId;
  if (!isName(containerId)) return failure("invalid_request", "containerId must be the container's id (ctx.containerId)");
  const capability = fields.capability ?? null;
  if (capability !== null && (typeof capability !== "string" || capability.length > 512)) return failure("invalid_request", "capability must be a string or null");
  return { ok: true, value: { kind: "egress", containerId, capability: capability ?? "" } };
}

function isGitLike(path: string): boolean {
  return /\/(info\/refs|git-upload-pack|git-receive-pack)$/.test(path);
}

async function refuse(request: Request, response: Response): Promise<Response> {
  await request.body?.cancel().catch(() => undefined);
  return response;
}
