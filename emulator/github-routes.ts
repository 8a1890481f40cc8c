/**
 * Every route of the GitHub emulator, in one table: the control routes (`/_emulator/...`,
 * documented in docs/emulator.md), then GitHub's own, each to the module of its role. A route
 * with an endpoint name (`held(...)`) can be held by a test (emulator/holds.ts); every
 * GitHub request gets an arrival number first.
 */
import type { GitHubAppsEmulator, EmulatorInstallation } from "./github-apps.ts";
import type { GitHubBrowser } from "./github-browser.ts";
import { serveGit } from "./github-git.ts";
import type { GitHubGraphQL } from "./github-graphql.ts";
import type { GitBackend, GitHubHost } from "./github-host.ts";
import { tokenEndpointOf, type GitHubOAuth } from "./github-oauth.ts";
import type { GitHubRest } from "./github-rest.ts";
import type { GitHubUserApi } from "./github-user-api.ts";
import type { GitHubEmulator } from "./github.ts";
import type { Holds } from "./holds.ts";
import { arrive, controlRoutes, emulatorRouter, held, type EmulatorRequest, type EmulatorRouter } from "./routing.ts";

/** The modules the routes hand requests to. */
export interface GitHubRoles {
  host: GitHubHost;
  holds: Holds;
  oauth: GitHubOAuth;
  browser: GitHubBrowser;
  user: GitHubUserApi;
  apps: GitHubAppsEmulator;
  graphql: GitHubGraphQL;
  rest: GitHubRest;
  /** `null`: the emulator serves no git. */
  git: GitBackend | null;
}

/** The GitHub emulator's router. */
export function githubRoutes(e: GitHubEmulator, r: GitHubRoles): EmulatorRouter {
  const { host, holds, oauth, browser, user, apps, graphql, rest } = r;
  const json = (status: number, body: unknown) => host.json(status, body);
  const ok = { ok: true };
  const query = (request: EmulatorRequest, name: string) => new URL(request.url).searchParams.get(name);
  const grant = (request: EmulatorRequest) => ({ clientId: query(request, "clientId") ?? "", userId: Number(query(request, "userId")) });
  /** The `repository` a seeding route is about: in the body, else the query. */
  const repository = (request: EmulatorRequest) => String(request.content?.repository ?? query(request, "repository") ?? "");
  const id = (request: EmulatorRequest) => Number(request.content.id);
  /** A git request, when the emulator serves git (else it is not found); GitHub's git paths take no trailing slash. */
  function git(request: EmulatorRequest): Promise<Response> | undefined {
    if (!r.git) return undefined;
    const url = new URL(request.url);
    const m = /^\/([^/]+)\/([^/]+?)\.git(\/info\/refs|\/git-upload-pack|\/git-receive-pack)$/.exec(url.pathname);
    return m ? serveGit(host, apps, r.git, request, `${m[1]}/${m[2]}`, url) : undefined;
  }
  const router = emulatorRouter(() => host.faults.hang())
    // A point in the broker's own code (a Durable-Object-to-Durable-Object call) that a test
    // can hold like a GitHub request: see test/support/entry.ts.
    .all("/_emulator/hold-point", async (request) => {
      await holds.at(query(request, "name") ?? "point", e.mark());
      return new Response(null, { status: 204 });
    })
    .post("/_emulator/consent", (request) => browser.consentWithoutBrowser(request));

  return controlRoutes(router, e, json, ok)
    .post("/_emulator/clock", (request) => {
      e.clockOffsetSeconds = Number(request.content.offsetSeconds ?? 0);
      return json(200, { now: new Date(e.now()).toISOString() });
    })
    .post("/_emulator/authorize", (request) => json(200, { code: e.authorize(request.content as Parameters<GitHubEmulator["authorize"]>[0]) }))
    .post("/_emulator/issue", (request) => json(200, e.issuePair(String(request.content.clientId), Number(request.content.userId))))
    .post("/_emulator/revoke", async ({ content }) => {
      if (content.notify) return json(200, await e.revokeAndNotify(String(content.clientId), Number(content.userId)));
      e.revokeGrant(String(content.clientId), Number(content.userId));
      return json(200, ok);
    })
    .post("/_emulator/mark", () => json(200, { seq: e.mark() }))
    // A rename or transfer: the old name answers 301 from then on, as GitHub's does.
    .post("/_emulator/moved", (request) => {
      e.moved.set(String(request.content.from).toLowerCase(), String(request.content.to));
      return json(200, ok);
    })
    .get("/_emulator/stats", () => json(200, { counts: e.counts, faultsInjected: e.faultsInjected, apps: apps.stats() }))
    .get("/_emulator/token", (request) => {
      const token = query(request, "token") ?? "";
      return json(200, { refresh: e.refreshTokenState(token), access: e.accessTokenState(token) });
    })
    .get("/_emulator/history", (request) => {
      const { clientId, userId } = grant(request);
      return json(200, e.history(clientId, userId));
    })
    .get("/_emulator/pushes", () => json(200, { pushes: e.pushes }))
    .get("/_emulator/git-requests", (request) => json(200, { requests: e.gitRequests.slice(Number(query(request, "since") ?? 0)) }))
    .get("/_emulator/live", (request) => {
      const { clientId, userId } = grant(request);
      return json(200, { refreshTokens: e.liveRefreshTokens(clientId, userId), scopedTokens: e.liveScopedTokens(clientId, userId) });
    })
    // Installations (emulator/github-apps.ts).
    .post("/_emulator/installations", (request) => {
      apps.addInstallation(request.content as EmulatorInstallation);
      return json(200, ok);
    })
    .post("/_emulator/installations/suspend", async (request) => json(200, await apps.setSuspended(id(request), true)))
    .post("/_emulator/installations/unsuspend", async (request) => json(200, await apps.setSuspended(id(request), false)))
    .post("/_emulator/installations/uninstall", async (request) => json(200, await apps.uninstall(id(request))))
    .post("/_emulator/installations/remove-repositories", async (request) => json(200, await apps.removeRepositories(id(request), request.content.repositories as string[])))
    .post("/_emulator/apps/rotate-key", (request) => {
      apps.rotateKey(String(request.content.clientId));
      return json(200, ok);
    })
    .post("/_emulator/apps/settings", (request) => {
      if (request.content.installationTokenExpiresIn !== undefined) apps.installationTokenExpiresIn = Number(request.content.installationTokenExpiresIn);
      return json(200, { installationTokenExpiresIn: apps.installationTokenExpiresIn });
    })
    .get("/_emulator/apps/stats", () => json(200, apps.stats()))
    .get("/_emulator/installation-token", (request) => json(200, { state: apps.tokenState(query(request, "token") ?? "") }))
    // Pull requests, issues, checks, runs (emulator/github-rest.ts).
    .post("/_emulator/check-runs", (request) => rest.seedCheckRun(repository(request), request.content))
    .post("/_emulator/statuses", (request) => rest.seedStatus(repository(request), request.content))
    .post("/_emulator/workflow-runs", (request) => rest.seedRun(repository(request), request.content))
    .post("/_emulator/pulls", (request) => rest.seedPull(repository(request), request.content))
    .post("/_emulator/issues", (request) => rest.seedIssue(repository(request), request.content))
    .post("/_emulator/labels", (request) => rest.seedLabel(repository(request), request.content))
    .post("/_emulator/comments", (request) => rest.seedComment(repository(request), request.content))
    .get("/_emulator/pulls", (request) => rest.records("pulls", repository(request)))
    .get("/_emulator/issues", (request) => rest.records("issues", repository(request)))
    .all("/_emulator/*", (request) => {
      const action = new URL(request.url).pathname.replace(/\/+$/, "").slice("/_emulator/".length);
      return json(404, { message: `no control route ${request.method} ${action}` });
    })

    // GitHub.
    .all("*", arrive(() => e.mark()))
    .post("/login/oauth/access_token", held(holds, tokenEndpointOf), (request) => oauth.token(request, request.seq, request.arrivedAt))
    .get("/login/oauth/authorize", (request) => browser.authorizePage(request, new URL(request.url)))
    .post("/login/oauth/authorize", (request) => browser.consentAnswer(request))
    .get("/login", (request) => browser.signIn(new URL(request.url)))
    .post("/session", (request) => browser.session(request))
    .get("/user", held(holds, "user"), (request) => user.user(request))
    .get("/repos/:owner/:repo", held(holds, "repo"), (request) => user.repository(request, `${request.params.owner}/${request.params.repo}`))
    .all("/:owner/:repo.git/info/refs", held(holds, "git"), (request) => git(request))
    .all("/:owner/:repo.git/git-upload-pack", held(holds, "git"), (request) => git(request))
    .all("/:owner/:repo.git/git-receive-pack", held(holds, "git"), (request) => git(request))
    .get("/repos/:owner/:repo/installation", (request) => apps.lookup(request, `${request.params.owner}/${request.params.repo}`))
    .post("/app/installations/:id/access_tokens", (request) => (/^\d+$/.test(request.params.id!) ? apps.mint(request, Number(request.params.id)) : undefined))
    .post("/graphql", (request) => graphql.serve(request))
    .get("/actions-logs/:key", (request) => rest.log(request.params.key!))
    .all("/repos/:owner/:repo/*", (request) => rest.serve(request, new URL(request.url)))
    .delete("/applications/:clientId/grant", held(holds, "revoke_grant"), (request) =>
      oauth.deleteGrant(request, decodeURIComponent(request.params.clientId!), (clientId, userId) => e.revokeGrant(clientId, userId)),
    )
    .post("/applications/:clientId/token/scoped", held(holds, "scoped"), (request) => oauth.scopedToken(request, decodeURIComponent(request.params.clientId!)))
    .delete("/applications/:clientId/token", held(holds, "revoke_token"), (request) => oauth.deleteToken(request, decodeURIComponent(request.params.clientId!)))
    .all("*", () => host.json(404, { message: "Not Found", documentation_url: "https://docs.github.com/rest" }));
}
