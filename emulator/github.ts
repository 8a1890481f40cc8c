/**
 * A GitHub emulator: the parts of github.com and api.github.com the broker talks to, with
 * GitHub's behaviour where the broker's correctness depends on it.
 *
 * - Authorization codes are single use and expire after 10 minutes; PKCE (S256) is checked.
 * - A refresh returns a new access + refresh pair and kills the old refresh token, and the
 *   old access token with it.
 * - Errors on `/login/oauth/access_token` come as `{error, error_description, error_uri}`
 *   with HTTP 200, as GitHub sends them.
 * - Access tokens expire on the emulator's clock, which a test can move.
 * - It counts what it was asked and injects faults on demand (5xx, hangs, a response lost
 *   after the rotation happened, rate limits, wrong client credentials).
 * - It can hold any request (the k-th that matches) until a test releases it, numbers every
 *   request on arrival, and remembers which request killed each token: the interleaving
 *   explorer's truth.
 *
 * This class holds the state and the methods tests call; the routes are one table
 * (emulator/github-routes.ts) over a module per role (docs/emulator.md lists them).
 *
 * Only Web-standard APIs are used, so the same class serves requests inside the vitest
 * pool (as Miniflare's outbound service, running in Node), under `wrangler dev` (as a Worker)
 * and in the benchmark. Control endpoints live under `/_emulator/`.
 */

import { sign } from "@octokit/webhooks-methods";
import { GitHubAppsEmulator } from "./github-apps.ts";
import { GitHubBrowser, signedInUser } from "./github-browser.ts";
import { GitHubFaults, type Endpoint, type Fault, type FaultKind } from "./github-faults.ts";
import { GitHubGraphQL, type SchemaSource } from "./github-graphql.ts";
import { DEFAULT_SETTINGS, type EmulatorApp, type EmulatorSettings, type EmulatorUser, type GitBackend, type GitHubHost, type IssuedPair } from "./github-host.ts";
import { GitHubOAuth } from "./github-oauth.ts";
import { GitHubRest, type ApiHost } from "./github-rest.ts";
import { githubRoutes } from "./github-routes.ts";
import { GitHubStore, type Caller, type GitRefs } from "./github-store.ts";
import { GitHubTokens, type GrantHistory, type TokenState, type TokensSnapshot } from "./github-tokens.ts";
import { GitHubUserApi } from "./github-user-api.ts";
import { Holds, type Arrivals } from "./holds.ts";
import { randomToken } from "./encoding.ts";
import type { EmulatorRequest, EmulatorRouter } from "./routing.ts";
import { postWebhook } from "./webhooks.ts";

export type { EmulatorApp, EmulatorSettings, EmulatorUser, GitBackend, IssuedPair } from "./github-host.ts";
export type { Endpoint, Fault, FaultKind } from "./github-faults.ts";
export type { GrantHistory, TokenState } from "./github-tokens.ts";

/** What {@link GitHubEmulator.snapshot} saves (JSON). */
export interface EmulatorSnapshot extends TokensSnapshot {
  version: 1;
  users: EmulatorUser[];
  /** Minted installation tokens (absent in snapshots from before they were kept). */
  installationTokens?: ReturnType<GitHubAppsEmulator["snapshotTokens"]>;
}

export class GitHubEmulator {
  readonly apps = new Map<string, EmulatorApp>();
  /**
   * Called when the token endpoint has issued a pair (a refresh rotated, or a code was
   * exchanged), before the answer is sent; the answer waits for the promise it returns. The
   * crash soak kills the broker here, so the new pair exists only at the provider.
   */
  onIssued: ((issued: IssuedPair) => void | Promise<void>) | null = null;
  readonly users = new Map<number, EmulatorUser>();
  settings: EmulatorSettings = { ...DEFAULT_SETTINGS };
  /** Seconds added to the real clock: the emulator's "now", its `Date` header and expiries. */
  clockOffsetSeconds = 0;
  readonly counts: Record<Endpoint, number> = {
    exchange: 0,
    refresh: 0,
    user: 0,
    repo: 0,
    revoke_grant: 0,
    git: 0,
    scoped: 0,
    revoke_token: 0,
    installation: 0,
    installation_token: 0,
  };
  /** Faults injected so far, by kind. */
  get faultsInjected(): Partial<Record<FaultKind, number>> {
    return this.#faults.queue.injected;
  }
  /**
   * Every git request the backend was handed, oldest first, with the login whose token carried
   * it (a user's, or `<slug>[bot]` for an installation token) and its arrival number (`seq`: the
   * one holds and marks count): who fetched and pushed, as GitHub records it.
   */
  readonly gitRequests: { repository: string; login: string; push: boolean; seq: number }[] = [];
  /** See GitHubHost.moved. */
  readonly moved = new Map<string, string>();

  /** The pushes among {@link gitRequests}. */
  get pushes(): { repository: string; login: string }[] {
    return this.gitRequests.filter((r) => r.push).map(({ repository, login }) => ({ repository, login }));
  }

  /** Arrival number of every request (GitHub's and hold points), for ordering facts in tests. */
  #seq = 0;
  readonly #holds = new Holds();
  #webhookFetch: (req: Request) => Promise<Response>;
  readonly #tokens: GitHubTokens;
  readonly #faults: GitHubFaults;
  readonly #userApi: GitHubUserApi;
  readonly #router: EmulatorRouter;
  /** App JWTs, installations and installation tokens (emulator/github-apps.ts). */
  readonly installations: GitHubAppsEmulator;
  /** Pull requests, issues, checks, Actions runs (emulator/github-store.ts). */
  readonly store = new GitHubStore(() => this.now());
  /**
   * Where the Actions log redirects point (GitHub's blob storage: another host, no token), for a
   * test that serves the emulator on a port of its own; `null`: the host each request came to.
   */
  logsOrigin: string | null = null;
  /** `POST /graphql` (emulator/github-graphql.ts). */
  readonly graphql: GitHubGraphQL;
  /** REST over the store: pulls, issues, Actions, checks (emulator/github-rest.ts). */
  readonly rest: GitHubRest;

  /**
   * `gitRefs` reads and writes the bare repositories' branches (emulator/git-refs.ts, Node),
   * for GraphQL's refs and commits and real merges; `graphqlSchema` loads GitHub's schema.
   */
  constructor(apps: EmulatorApp[], options: { webhookFetch?: (req: Request) => Promise<Response>; gitBackend?: GitBackend; gitRefs?: GitRefs; graphqlSchema?: SchemaSource } = {}) {
    for (const app of apps) this.apps.set(app.clientId, app);
    this.#webhookFetch = options.webhookFetch ?? ((req) => fetch(req));
    const emulator = this;
    const host: GitHubHost = {
      apps: this.apps,
      users: this.users,
      get settings() {
        return emulator.settings;
      },
      get tokens() {
        return emulator.#tokens;
      },
      get faults() {
        return emulator.#faults;
      },
      counts: this.counts,
      moved: this.moved,
      get onIssued() {
        return emulator.onIssued;
      },
      now: () => this.now(),
      mark: () => this.mark(),
      enter: (endpoint, request) => {
        this.counts[endpoint]++;
        return this.#faults.apply(this.#faults.take(endpoint), false, request);
      },
      headers: (extra = {}) => new Headers({ date: new Date(this.now()).toUTCString(), "x-github-request-id": randomToken("").slice(0, 16), ...extra }),
      json: (status, body, extra = {}) => {
        const headers = host.headers(extra);
        headers.set("content-type", "application/json; charset=utf-8");
        return new Response(JSON.stringify(body), { status, headers });
      },
    };
    this.#tokens = new GitHubTokens(host);
    this.#faults = new GitHubFaults(host);
    this.installations = new GitHubAppsEmulator({ now: host.now, apps: this.apps, moved: this.moved, enter: (endpoint) => host.enter(endpoint), json: host.json, webhookFetch: (req) => this.#webhookFetch(req) });
    this.#userApi = new GitHubUserApi(host, this.installations);
    const api: ApiHost = {
      store: this.store,
      refs: options.gitRefs ?? null,
      caller: (request) => this.caller(request),
      userByLogin: (login) => {
        const user = [...this.users.values()].find((u) => u.login.toLowerCase() === login.toLowerCase());
        return user ? { login: user.login, id: user.id, type: "User", name: user.name } : null;
      },
      json: host.json,
      logsOrigin: () => this.logsOrigin,
    };
    this.graphql = new GitHubGraphQL(api, options.graphqlSchema);
    this.rest = new GitHubRest(api);
    const backend = options.gitBackend ?? null;
    const git: GitBackend | null =
      backend &&
      ((request, repository, pathInfo, user) => {
        const push = request.method === "POST" && pathInfo.endsWith("/git-receive-pack");
        this.gitRequests.push({ repository, login: user.login, push, seq: (request as EmulatorRequest).seq ?? 0 });
        return backend(request, repository, pathInfo, user);
      });
    this.#router = githubRoutes(this, {
      host,
      holds: this.#holds,
      oauth: new GitHubOAuth(host),
      browser: new GitHubBrowser(host, (params) => this.authorize(params)),
      user: this.#userApi,
      apps: this.installations,
      graphql: this.graphql,
      rest: this.rest,
      git,
    });
  }

  now(): number {
    return Date.now() + this.clockOffsetSeconds * 1000;
  }

  /** This emulator's arrival numbers and holds, for another emulator to share (emulator/holds.ts). */
  arrivals(): Arrivals {
    return { holds: this.#holds, next: () => ++this.#seq };
  }

  /** Forgets every user, token, code, fault and count; releases pending hangs. */
  reset(): void {
    this.users.clear();
    this.#tokens.reset();
    this.gitRequests.length = 0;
    this.moved.clear();
    this.#faults.queue.reset();
    this.#faults.releaseHangs();
    this.#holds.releaseAll();
    this.settings = { ...DEFAULT_SETTINGS };
    this.clockOffsetSeconds = 0;
    this.installations.reset();
    this.store.reset();
    for (const key of Object.keys(this.counts) as Endpoint[]) this.counts[key] = 0;
  }

  addUser(user: EmulatorUser): void {
    const repos: Record<string, "push" | "pull"> = {};
    for (const [name, perm] of Object.entries(user.repos)) repos[name.toLowerCase()] = perm;
    this.users.set(user.id, { ...user, repos });
  }

  addFault(fault: Fault): void {
    this.#faults.queue.add(fault);
  }

  /** Drops the queued faults and releases pending hangs. */
  clearFaults(): void {
    this.#faults.queue.clear();
    this.#faults.releaseHangs();
  }

  /** Issues an authorization code as if `userId` clicked "Authorize" on the consent page. */
  authorize(params: { clientId: string; userId: number; redirectUri: string; codeChallenge?: string | null }): string {
    if (!this.apps.has(params.clientId)) throw new Error("unknown client_id");
    if (!this.users.has(params.userId)) throw new Error("unknown user");
    return this.#tokens.authorize(params);
  }

  /** Issues a pair directly (no code), for seeding; returns the tokens as GitHub would. */
  issuePair(clientId: string, userId: number): { accessToken: string; refreshToken: string | null; pairId: number } {
    return this.#tokens.issuePair(clientId, userId);
  }

  /** The truth about a refresh token: alive (usable now) or not, and its pair. */
  refreshTokenState(token: string): TokenState | null {
    return this.#tokens.state(this.#tokens.refresh.get(token));
  }

  /** The truth about an access token. */
  accessTokenState(token: string): TokenState | null {
    return this.#tokens.state(this.#tokens.access.get(token));
  }

  /** The repository-scoped access tokens of a grant that still work. */
  liveScopedTokens(clientId: string, userId: number): string[] {
    return this.#tokens.liveOf(this.#tokens.access, clientId, userId, true);
  }

  /** Live refresh tokens of one user and App (there is at most one per grant). */
  liveRefreshTokens(clientId: string, userId: number): string[] {
    return this.#tokens.liveOf(this.#tokens.refresh, clientId, userId, false);
  }

  /**
   * What happened to a user's grant that can legitimately end a connection: rotations whose
   * answer was never delivered, and revocations. The truth check uses it.
   */
  history(clientId: string, userId: number): GrantHistory {
    return this.#tokens.history(clientId, userId);
  }

  /** Revokes the user's grant for the App, as "Revoke" in GitHub's settings does. */
  revokeGrant(clientId: string, userId: number, seq = ++this.#seq): void {
    this.#tokens.revokeGrant(clientId, userId, seq);
  }

  /** The arrival number the next request will get: everything numbered below it has arrived. */
  mark(): number {
    return ++this.#seq;
  }

  /** Arms a hold (emulator/holds.ts). `match`: endpoint names, or every endpoint when omitted. */
  hold(options: { match?: string[]; skip?: number } = {}): number {
    return this.#holds.arm(options);
  }

  /** What a hold has caught so far (`null`: nothing yet). */
  held(id: number): { endpoint: string; seq: number } | null {
    return this.#holds.held(id);
  }

  /** Lets a held request go on (or disarms a hold that caught nothing). */
  release(id: number): void {
    this.#holds.release(id);
  }

  /**
   * Revokes the grant and delivers a signed `github_app_authorization` webhook to the App's
   * `webhookUrl`, the way GitHub does when a user revokes the App in their settings.
   */
  async revokeAndNotify(clientId: string, userId: number): Promise<{ status: number; deliveryId: string }> {
    this.revokeGrant(clientId, userId);
    const app = this.apps.get(clientId);
    const user = this.users.get(userId);
    if (!app?.webhookUrl || !app.webhookSecret || !user) throw new Error("app has no webhook configured");
    const body = JSON.stringify({ action: "revoked", sender: { login: user.login, id: user.id, type: "User" } });
    const deliveryId = crypto.randomUUID();
    const delivery = { event: "github_app_authorization", deliveryId, signature: await sign(app.webhookSecret, body), body };
    const res = await postWebhook((req) => this.#webhookFetch(req), app.webhookUrl, delivery);
    return { status: res.status, deliveryId };
  }

  /** Serves one request, GitHub's routes and the `/_emulator/` control routes (emulator/github-routes.ts). */
  async fetch(request: Request): Promise<Response> {
    return (await this.#router.fetch(request)) as Response;
  }

  /** Whether `userId` authorized the App and no revocation came since. */
  hasAuthorized(clientId: string, userId: number): boolean {
    return this.#tokens.hasAuthorized(clientId, userId);
  }

  /** The account signed in to the browser that sent `request`, if any. */
  signedInUser(request: Request): EmulatorUser | null {
    return signedInUser(this.users, request);
  }

  /**
   * Who a request's token (`Authorization: token|Bearer`) speaks for: a user (user or scoped
   * token), or an App's bot (installation token); `null` without a live token.
   */
  caller(request: Request): Caller | null {
    return this.#userApi.caller(request);
  }

  // ---- persistence (`npm start`: the emulator survives a restart, as GitHub would) ----

  /** Everything a restart must keep: users, tokens, grants. Codes (10 minutes) and faults are not kept. */
  snapshot(): EmulatorSnapshot {
    const tokens = this.#tokens.snapshot();
    return {
      version: 1,
      users: [...this.users.values()],
      accessTokens: tokens.accessTokens,
      refreshTokens: tokens.refreshTokens,
      nextPair: tokens.nextPair,
      history: tokens.history,
      authorizations: tokens.authorizations,
      installationTokens: this.installations.snapshotTokens(),
    };
  }

  /** Puts back what {@link snapshot} saved (users in it replace users of the same id). */
  restore(saved: EmulatorSnapshot): void {
    if (saved.version !== 1) return;
    for (const user of saved.users) this.addUser(user);
    this.#tokens.restore(saved);
    this.installations.restoreTokens(saved.installationTokens ?? []);
  }
}
