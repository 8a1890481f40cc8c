/**
 * The GitHub-shaped surface: on `AGENT_HOST` the broker answers GitHub's own URL shapes, as
 * GitHub Enterprise Server does, so an agent's unmodified `git` and `gh` work with nothing but
 * a session capability (`GH_HOST=<AGENT_HOST>`, `GH_ENTERPRISE_TOKEN=<capability>`):
 *
 * - `/{owner}/{name}(.git)/info/refs|git-upload-pack|git-receive-pack`: git smart HTTP, the
 *   same proxy and branch policy as `/git/...`;
 * - `/api/v3/...`: REST, judged by src/surface/rest-policy.ts;
 * - `POST /api/graphql`: GraphQL, judged by src/surface/graphql-policy.ts.
 *
 * Every request is judged against the repository, permission and branches its capability was
 * issued for before anything goes upstream, and forwarded with the live token of the
 * capability's identity (`X-Broker-Identity: user|app` on every answer after a redemption).
 */
import { PUBLIC_DOOR, type Door } from "../proxy/capability-token";
import { proxyGit } from "../proxy/git-proxy";
import { graphqlProxy } from "./graphql-proxy";
import { restProxy } from "./rest-proxy";
import { githubError } from "./upstream";

/**
 * Serves one request that arrived on `AGENT_HOST` (the public door), or one a container's
 * egress handler intercepted, mapped onto these shapes (src/surface/egress.ts): the same
 * judge, with the capability taken from `door`.
 */
export function agentHost(request: Request, env: Env, door: Door = PUBLIC_DOOR): Promise<Response> {
  const url = new URL(request.url);
  const path = url.pathname;
  if (path.startsWith("/api/v3/")) return restProxy(request, env, path.slice("/api/v3".length), door);
  if (path === "/api/graphql") {
    if (request.method !== "POST") return Promise.resolve(githubError(404, "Not Found"));
    return graphqlProxy(request, env, door);
  }
  if (/^\/[^/]+\/[^/]+\/(info\/refs|git-upload-pack|git-receive-pack)$/.test(path) && !path.startsWith("/api/")) {
    // The git proxy's own route, so one judge (paths, capability, branch policy) serves both.
    const inner = new URL(request.url);
    inner.pathname = `/git${path}`;
    return proxyGit(new Request(inner, request), env, door);
  }
  return Promise.resolve(githubError(404, "Not Found: this host serves git, /api/v3 and /api/graphql for session capabilities"));
}
