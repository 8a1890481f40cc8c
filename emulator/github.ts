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
 * Only Web-standard APIs are used, so the same class serves requests inside the vitest
 * pool (as Miniflare's outbound service, running in Node), under `wrangler dev` (as a Worker)
 * and in the benchmark. Control endpoints live under `/_emulator/`.
 */

import { sign } from "@octokit/webhooks-methods";
import { GitHubAppsEmulator } from "./github-apps.ts";
import { GitHubGraphQL, type SchemaSource } from "./github-graphql.ts";
import { GitHubRest, type ApiHost } from "./github-rest.ts";
import { GitHubStore, type Actor, type Caller, type GitRefs } from "./github-store.ts";
import { FaultQueue } from "./faults.ts";
import { Holds, type Arrivals } from "./holds.ts";
import { accountPickerPage, consentPage, htmlPage, signInPage, type PageApp } from "./pages.ts";

export interface EmulatorApp {
  clientId: string;
  clientSecret: string;
  /** Used to sign the webhooks the emulator sends. */
  webhookSecret?: string;
  /** Where `github_app_authorization` webhooks for this App are delivered. */
  webhookUrl?: string;
  /** The App's display name on the consent screen (GitHub never shows the client id there). */
  name?: string;
}

export interface EmulatorUser {
  id: number;
  login: string;
  name: string | null;
  /** `owner/name` (any case) → the user's permission on it. */
  repos: Record<string, "push" | "pull">;
}

/** Endpoints that can be counted and faulted. */
export type Endpoint =
  | "exchange"
  | "refresh"
  | "user"
  | "repo"
  | "revoke_grant"
  | "git"
  | "scoped"
  | "revoke_token"
  | "installation"
  | "installation_token";

/**
 * Serves git smart-HTTP for a repository on disk (see emulator/git-backend.ts, Node only).
 * Called after the emulator checked the token and the user's permission.
 */
export type GitBackend = (request: Request, repository: string, pathInfo: string, user: EmulatorUser) => Promise<Response>;

/**
 * - `status_5xx`: answer 503 without doing anything.
 * - `hang`: never answer (until {@link GitHubEmulator.reset}, or `hangMs`); nothing done.
 * - `drop_after_rotate`: do the work (rotate the pair), then never answer: the response is lost.
 * - `rate_limit`: 403 with `x-ratelimit-remaining: 0` (API) or 429 (OAuth), `retry-after`.
 * - `bad_client`: `incorrect_client_credentials` (OAuth endpoint only).
 * - `delay`: answer normally, `delayMs` late (the rotation happens when the answer is sent).
 * - `sso_required`: 403 as for an organisation whose SAML SSO the token is not authorised for.
 */
export type FaultKind = "status_5xx" | "hang" | "drop_after_rotate" | "rate_limit" | "bad_client" | "delay" | "sso_required";

export interface Fault {
  endpoint: Endpoint;
  kind: FaultKind;
  /** How many requests it applies to; default 1. `-1`: until cleared. */
  count?: number;
  delayMs?: number;
}

interface TokenRecord {
  clientId: string;
  userId: number;
  expiresAt: number;
  alive: boolean;
  /** Access and refresh token issued together share a pair id. */
  pairId: number;
  /** A refresh token spent by a refresh (as opposed to revoked or expired). */
  rotated?: boolean;
  /** What ended it, and the arrival sequence number of the request that did. */
  killedBy?: { cause: "rotation" | "revocation"; seq: number };
  /**
   * A scoped token (`POST /applications/{client_id}/token/scoped`): only these repositories
   * (lower-case `owner/name`) and, when given, these permissions. It shares its parent's pair
   * and expiry, so the parent's rotation and the grant's revocation kill it too.
   */
  scope?: { repositories: string[]; permissions: Record<string, string> | null };
}

export interface TokenState {
  alive: boolean;
  pairId: number;
  userId: number;
  clientId: string;
  /** Why it died (rotation or revocation) and the arrival number of the request that killed it. */
  killedBy?: { cause: "rotation" | "revocation"; seq: number };
}

interface CodeRecord {
  clientId: string;
  userId: number;
  redirectUri: string;
  codeChallenge: string | null;
  expiresAt: number;
  used: boolean;
}

export interface EmulatorSettings {
  /** `expires_in` of user access tokens (GitHub: 28800). */
  accessTokenExpiresIn: number;
  /** `refresh_token_expires_in` (GitHub: about six months). */
  refreshTokenExpiresIn: number;
  /** "Expire user authorization tokens" on the App; when off no refresh token is issued. */
  expiringTokens: boolean;
  /** Whether a refresh also kills the previous access token. */
  refreshKillsAccessToken: boolean;
  /** Upper bound of a `hang`, so a forgotten hang never holds a process forever. */
  hangMs: number;
  /**
   * The client's own timeout (the broker's `GITHUB_TIMEOUT_MS`), when known: a rotation
   * answered later than (about) this was lost by the client, and is recorded as a dropped
   * rotation, the same fact as a `drop_after_rotate` fault.
   */
  clientTimeoutMs: number | null;
}

const DEFAULT_SETTINGS: EmulatorSettings = {
  accessTokenExpiresIn: 28_800,
  refreshTokenExpiresIn: 15_897_600,
  expiringTokens: true,
  refreshKillsAccessToken: true,
  hangMs: 60_000,
  clientTimeoutMs: null,
};

/** A pair the token endpoint issued, about to be sent (see {@link GitHubEmulator.onIssued}). */
export interface IssuedPair {
  grant: "refresh" | "exchange";
  clientId: string;
  userId: number;
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
    return this.#faults.injected;
  }
  /**
   * Every git request the backend was handed, oldest first, with the login whose token carried
   * it (a user's, or `<slug>[bot]` for an installation token): who fetched and pushed, as GitHub
   * records it.
   */
  readonly gitRequests: { repository: string; login: string; push: boolean }[] = [];

  /** The pushes among {@link gitRequests}. */
  get pushes(): { repository: string; login: string }[] {
    return this.gitRequests.filter((r) => r.push).map(({ repository, login }) => ({ repository, login }));
  }

  #accessTokens = new Map<string, TokenRecord>();
  #refreshTokens = new Map<string, TokenRecord>();
  #codes = new Map<string, CodeRecord>();
  readonly #faults = new FaultQueue<Endpoint, FaultKind, Fault>();
  #hangs = new Set<() => void>();
  #nextPair = 1;
  /** Arrival number of every request (GitHub's and hold points), for ordering facts in tests. */
  #seq = 0;
  readonly #holds = new Holds();
  /** Per `clientId:userId`: rotations whose answer was dropped, and grant revocations. */
  #history = new Map<string, GrantHistory>();
  #webhookFetch: (req: Request) => Promise<Response>;
  #gitBackend: GitBackend | null;
  /** App JWTs, installations and installation tokens (emulator/github-apps.ts). */
  readonly installations = new GitHubAppsEmulator({
    now: () => this.now(),
    apps: this.apps,
    enter: (endpoint) => {
      this.counts[endpoint]++;
      return this.#applyFault(this.#takeFault(endpoint), false);
    },
    json: (status, body, extra) => this.#json(status, body, extra),
    webhookFetch: (req) => this.#webhookFetch(req),
  });
  /** Pull requests, issues, checks, Actions runs (emulator/github-store.ts). */
  readonly store = new GitHubStore(() => this.now());
  readonly #api: ApiHost = {
    store: this.store,
    refs: null,
    caller: (request) => this.caller(request),
    userByLogin: (login) => {
      const user = [...this.users.values()].find((u) => u.login.toLowerCase() === login.toLowerCase());
      return user ? { login: user.login, id: user.id, type: "User", name: user.name } : null;
    },
    json: (status, body, extra) => this.#json(status, body, extra),
    logsOrigin: () => this.logsOrigin,
  };
  /**
   * Where the Actions log redirects point (GitHub's blob storage: another host, no token), for a
   * test that serves the emulator on a port of its own; `null`: the host each request came to.
   */
  logsOrigin: string | null = null;
  /** `POST /graphql` (emulator/github-graphql.ts). */
  readonly graphql: GitHubGraphQL;
  /** REST over the store: pulls, issues, Actions, checks (emulator/github-rest.ts). */
  readonly rest = new GitHubRest(this.#api);
  /**
   * Grants made on the consent screen: `clientId:userId` → the user's revocation count at the
   * time. The grant stands while no revocation came after it (see {@link hasAuthorized}).
   */
  #authorizations = new Map<string, number>();

  /**
   * `gitRefs` reads and writes the bare repositories' branches (emulator/git-refs.ts, Node),
   * for GraphQL's refs and commits and real merges; `graphqlSchema` loads GitHub's schema.
   */
  constructor(apps: EmulatorApp[], options: { webhookFetch?: (req: Request) => Promise<Response>; gitBackend?: GitBackend; gitRefs?: GitRefs; graphqlSchema?: SchemaSource } = {}) {
    for (const app of apps) this.apps.set(app.clientId, app);
    this.#api.refs = options.gitRefs ?? null;
    this.graphql = new GitHubGraphQL(this.#api, options.graphqlSchema);
    this.#webhookFetch = options.webhookFetch ?? ((req) => fetch(req));
    const backend = options.gitBackend ?? null;
    this.#gitBackend = backend && ((request, repository, pathInfo, user) => {
      this.gitRequests.push({ repository, login: user.login, push: request.method === "POST" && pathInfo.endsWith("/git-receive-pack") });
      return backend(request, repository, pathInfo, user);
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
    this.#accessTokens.clear();
    this.#refreshTokens.clear();
    this.#codes.clear();
    this.gitRequests.length = 0;
    this.#faults.reset();
    this.#history.clear();
    this.#authorizations.clear();
    for (const release of this.#hangs) release();
    this.#hangs.clear();
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
    this.#faults.add(fault);
  }

  clearFaults(): void {
    this.#faults.clear();
    for (const release of this.#hangs) release();
    this.#hangs.clear();
  }

  /** Issues an authorization code as if `userId` clicked "Authorize" on the consent page. */
  authorize(params: { clientId: string; userId: number; redirectUri: string; codeChallenge?: string | null }): string {
    if (!this.apps.has(params.clientId)) throw new Error("unknown client_id");
    if (!this.users.has(params.userId)) throw new Error("unknown user");
    const code = randomToken("");
    this.#codes.set(code, {
      clientId: params.clientId,
      userId: params.userId,
      redirectUri: params.redirectUri,
      codeChallenge: params.codeChallenge ?? null,
      expiresAt: this.now() + 600_000,
      used: false,
    });
    return code;
  }

  /** Issues a pair directly (no code), for seeding; returns the tokens as GitHub would. */
  issuePair(clientId: string, userId: number): { accessToken: string; refreshToken: string | null; pairId: number } {
    const pairId = this.#nextPair++;
    const now = this.now();
    const accessToken = randomToken("ghu_");
    this.#accessTokens.set(accessToken, {
      clientId,
      userId,
      pairId,
      alive: true,
      expiresAt: now + this.settings.accessTokenExpiresIn * 1000,
    });
    let refreshToken: string | null = null;
    if (this.settings.expiringTokens) {
      refreshToken = randomToken("ghr_");
      this.#refreshTokens.set(refreshToken, {
        clientId,
        userId,
        pairId,
        alive: true,
        expiresAt: now + this.settings.refreshTokenExpiresIn * 1000,
      });
    }
    return { accessToken, refreshToken, pairId };
  }

  /** The truth about a refresh token: alive (usable now) or not, and its pair. */
  refreshTokenState(token: string): TokenState | null {
    return this.#state(this.#refreshTokens.get(token));
  }

  /** The truth about an access token. */
  accessTokenState(token: string): TokenState | null {
    return this.#state(this.#accessTokens.get(token));
  }

  #state(rec: TokenRecord | undefined): TokenState | null {
    if (!rec) return null;
    const state: TokenState = { alive: rec.alive && rec.expiresAt > this.now(), pairId: rec.pairId, userId: rec.userId, clientId: rec.clientId };
    if (rec.killedBy) state.killedBy = rec.killedBy;
    return state;
  }

  /** Live refresh tokens of one user and App (there is at most one per grant). */
  /** The repository-scoped access tokens of a grant that still work. */
  liveScopedTokens(clientId: string, userId: number): string[] {
    const out: string[] = [];
    for (const [token, rec] of this.#accessTokens) {
      if (rec.scope && rec.clientId === clientId && rec.userId === userId && rec.alive && rec.expiresAt > this.now()) out.push(token);
    }
    return out;
  }

  liveRefreshTokens(clientId: string, userId: number): string[] {
    const out: string[] = [];
    for (const [token, rec] of this.#refreshTokens) {
      if (rec.clientId === clientId && rec.userId === userId && rec.alive && rec.expiresAt > this.now()) out.push(token);
    }
    return out;
  }

  /**
   * What happened to a user's grant that can legitimately end a connection: rotations whose
   * answer was never delivered, and revocations. The truth check uses it.
   */
  history(clientId: string, userId: number): GrantHistory {
    return { ...(this.#history.get(`${clientId}:${userId}`) ?? emptyHistory()) };
  }

  #record(clientId: string, userId: number, what: keyof GrantHistory): void {
    const key = `${clientId}:${userId}`;
    const entry = this.#history.get(key) ?? emptyHistory();
    entry[what]++;
    this.#history.set(key, entry);
  }

  /** Revokes the user's grant for the App, as "Revoke" in GitHub's settings does. */
  revokeGrant(clientId: string, userId: number, seq = ++this.#seq): void {
    this.#record(clientId, userId, "revocations");
    for (const map of [this.#accessTokens, this.#refreshTokens]) {
      for (const rec of map.values()) {
        if (rec.clientId !== clientId || rec.userId !== userId || !rec.alive) continue;
        rec.alive = false;
        rec.killedBy = { cause: "revocation", seq };
      }
    }
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

  /** Which counted endpoint a request is, for holds; `null` for anything else. */
  async #endpointOf(request: Request, path: string): Promise<string | null> {
    if (request.method === "POST" && path === "/login/oauth/access_token") {
      const params = await readParams(request.clone());
      return params.get("grant_type") === "refresh_token" ? "refresh" : "exchange";
    }
    if (request.method === "GET" && path === "/user") return "user";
    if (request.method === "GET" && /^\/repos\/[^/]+\/[^/]+$/.test(path)) return "repo";
    if (request.method === "DELETE" && /^\/applications\/[^/]+\/grant$/.test(path)) return "revoke_grant";
    if (request.method === "POST" && /^\/applications\/[^/]+\/token\/scoped$/.test(path)) return "scoped";
    if (request.method === "DELETE" && /^\/applications\/[^/]+\/token$/.test(path)) return "revoke_token";
    if (/\.git\/(info\/refs|git-upload-pack|git-receive-pack)$/.test(path)) return "git";
    return null;
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
    const body = JSON.stringify({
      action: "revoked",
      sender: { login: user.login, id: user.id, type: "User" },
    });
    const deliveryId = crypto.randomUUID();
    const res = await this.#webhookFetch(
      new Request(app.webhookUrl, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          "x-github-event": "github_app_authorization",
          "x-github-delivery": deliveryId,
          "x-hub-signature-256": await sign(app.webhookSecret, body),
          "user-agent": "GitHub-Hookshot/emulator",
        },
        body,
      }),
    );
    return { status: res.status, deliveryId };
  }

  /** Serves one request, GitHub's routes and the `/_emulator/` control routes. */
  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname.replace(/\/+$/, "") || "/";
    try {
      if (path === "/_emulator/hold-point") {
        // A point in the broker's own code (a Durable-Object-to-Durable-Object call) that a
        // test can hold like a GitHub request: see test/support/entry.ts.
        await this.#holds.at(url.searchParams.get("name") ?? "point", ++this.#seq);
        return new Response(null, { status: 204 });
      }
      if (path === "/_emulator/consent" && request.method === "POST") return await this.#consentWithoutBrowser(request);
      if (path.startsWith("/_emulator/")) return await this.#control(request, path.slice("/_emulator/".length), url);
      const seq = ++this.#seq;
      const arrivedAt = Date.now();
      const endpoint = await this.#endpointOf(request, path);
      if (endpoint) await this.#holds.at(endpoint, seq);
      if (request.method === "POST" && path === "/login/oauth/access_token") return await this.#tokenEndpoint(request, seq, arrivedAt);
      const page = await this.#browser(request, url, path);
      if (page) return page;
      if (request.method === "GET" && path === "/user") return await this.#getUser(request);
      const repo = /^\/repos\/([^/]+)\/([^/]+)$/.exec(path);
      if (request.method === "GET" && repo) return await this.#getRepo(request, `${repo[1]}/${repo[2]}`);
      const git = /^\/([^/]+)\/([^/]+?)\.git(\/info\/refs|\/git-upload-pack|\/git-receive-pack)$/.exec(url.pathname);
      if (git && this.#gitBackend) return await this.#git(request, `${git[1]}/${git[2]}`, url);
      const appRoute = (await this.installations.route(request, path)) ?? (await this.graphql.route(request, path)) ?? (await this.rest.route(request, path, url));
      if (appRoute) return appRoute;
      const grant = /^\/applications\/([^/]+)\/grant$/.exec(path);
      if (request.method === "DELETE" && grant) return await this.#deleteGrant(request, decodeURIComponent(grant[1]!));
      const scoped = /^\/applications\/([^/]+)\/token(\/scoped)?$/.exec(path);
      if (scoped && request.method === "POST" && scoped[2]) return await this.#scopedToken(request, decodeURIComponent(scoped[1]!));
      if (scoped && request.method === "DELETE" && !scoped[2]) return await this.#deleteToken(request, decodeURIComponent(scoped[1]!));
      return this.#json(404, { message: "Not Found", documentation_url: "https://docs.github.com/rest" });
    } catch (err) {
      if (err instanceof Hang) return await this.#hang();
      throw err;
    }
  }

  // ---- faults ----

  #takeFault(endpoint: Endpoint): Fault | null {
    return this.#faults.take(endpoint);
  }

  /** Never answers until reset or `hangMs`; then a 504, as a proxy in front of GitHub would. */
  #hang(): Promise<Response> {
    return new Promise((resolve) => {
      const release = () => {
        clearTimeout(timer);
        this.#hangs.delete(release);
        resolve(this.#json(504, { message: "Gateway Timeout" }));
      };
      const timer = setTimeout(release, this.settings.hangMs);
      this.#hangs.add(release);
    });
  }

  async #applyFault(fault: Fault | null, oauth: boolean, request?: Request): Promise<Response | null> {
    if (!fault) return null;
    switch (fault.kind) {
      case "status_5xx":
        return this.#json(503, { message: "Service Unavailable" });
      case "hang":
        return this.#hang();
      case "rate_limit":
        return oauth
          ? this.#json(429, { message: "Too Many Requests" }, { "retry-after": "30" })
          : this.#json(
              403,
              { message: "API rate limit exceeded for user." },
              {
                "x-ratelimit-remaining": "0",
                "x-ratelimit-reset": String(Math.floor(this.now() / 1000) + 60),
                "retry-after": "60",
              },
            );
      case "bad_client":
        return oauth ? this.#oauthError("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.") : null;
      case "delay":
        await new Promise((r) => setTimeout(r, fault.delayMs ?? 100));
        return null;
      case "sso_required":
        return this.#json(
          403,
          { message: "Resource protected by organization SAML enforcement. You must grant your OAuth token access to this organization." },
          { "x-github-sso": `required; url=${ssoUrl(request)}` },
        );
      case "drop_after_rotate":
        return null; // handled by the endpoint: do the work, then hang
    }
  }

  // ---- OAuth ----

  async #tokenEndpoint(request: Request, seq: number, arrivedAt: number): Promise<Response> {
    const params = await readParams(request);
    const isRefresh = params.get("grant_type") === "refresh_token";
    const endpoint: Endpoint = isRefresh ? "refresh" : "exchange";
    this.counts[endpoint]++;
    const fault = this.#takeFault(endpoint);
    const early = await this.#applyFault(fault, true);
    if (early) return early;

    const app = this.apps.get(params.get("client_id") ?? "");
    if (!app || params.get("client_secret") !== app.clientSecret) {
      return this.#oauthError("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.");
    }
    const result = isRefresh ? this.#refresh(app, params, seq) : await this.#exchange(app, params);
    if (fault?.kind === "drop_after_rotate") {
      const rec = this.#refreshTokens.get(params.get("refresh_token") ?? "");
      if (isRefresh && rec) this.#record(app.clientId, rec.userId, "droppedRotations");
      throw new Hang();
    }
    if (this.onIssued && result.status === 200) {
      const userId = isRefresh ? this.#refreshTokens.get(params.get("refresh_token") ?? "")?.userId : this.#codes.get(params.get("code") ?? "")?.userId;
      const issued = ((await result.clone().json()) as { access_token?: string }).access_token !== undefined;
      if (issued && userId !== undefined) await this.onIssued({ grant: endpoint, clientId: app.clientId, userId });
    }
    const timeout = this.settings.clientTimeoutMs;
    // Half the timeout: the request may have waited about as long again on its way here.
    if (isRefresh && timeout !== null && Date.now() - arrivedAt >= timeout * 0.5 && result.status === 200) {
      // The client gave up (its timeout) before GitHub answered: the rotation happened and
      // its answer is lost, exactly like a dropped response.
      const rec = this.#refreshTokens.get(params.get("refresh_token") ?? "");
      if (rec) this.#record(app.clientId, rec.userId, "droppedRotations");
    }
    return result;
  }

  async #exchange(app: EmulatorApp, params: URLSearchParams): Promise<Response> {
    const code = this.#codes.get(params.get("code") ?? "");
    if (!code || code.used || code.clientId !== app.clientId || code.expiresAt <= this.now()) {
      return this.#oauthError("bad_verification_code", "The code passed is incorrect or expired.");
    }
    code.used = true; // single use, even when the rest of the exchange fails
    const redirectUri = params.get("redirect_uri");
    if (redirectUri !== null && redirectUri !== code.redirectUri) {
      return this.#oauthError("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.");
    }
    if (code.codeChallenge !== null) {
      const verifier = params.get("code_verifier") ?? "";
      if ((await s256(verifier)) !== code.codeChallenge) {
        return this.#oauthError("bad_verification_code", "The code_verifier does not match the code_challenge.");
      }
    }
    return this.#issue(app.clientId, code.userId);
  }

  #refresh(app: EmulatorApp, params: URLSearchParams, seq: number): Response {
    const token = params.get("refresh_token") ?? "";
    const rec = this.#refreshTokens.get(token);
    // A client presenting a refresh token that was already spent: the race this broker exists
    // to prevent (legitimate only right after a rotation whose answer was lost).
    if (rec?.rotated) this.#record(rec.clientId, rec.userId, "spentTokenReuses");
    if (!rec || !rec.alive || rec.clientId !== app.clientId || rec.expiresAt <= this.now()) {
      return this.#oauthError("bad_refresh_token", "The refresh token passed is incorrect or expired.");
    }
    rec.alive = false; // single use: the old refresh token is dead from now on
    rec.rotated = true;
    rec.killedBy = { cause: "rotation", seq };
    if (this.settings.refreshKillsAccessToken) {
      for (const access of this.#accessTokens.values()) {
        if (access.pairId !== rec.pairId || !access.alive) continue;
        access.alive = false;
        access.killedBy = { cause: "rotation", seq };
      }
    }
    return this.#issue(app.clientId, rec.userId);
  }

  #issue(clientId: string, userId: number): Response {
    const pair = this.issuePair(clientId, userId);
    const body: Record<string, unknown> = {
      access_token: pair.accessToken,
      expires_in: this.settings.accessTokenExpiresIn,
      scope: "",
      token_type: "bearer",
    };
    if (pair.refreshToken) {
      body.refresh_token = pair.refreshToken;
      body.refresh_token_expires_in = this.settings.refreshTokenExpiresIn;
    }
    return this.#json(200, body);
  }

  #oauthError(error: string, description: string): Response {
    // GitHub answers OAuth errors with HTTP 200 and the error in the body.
    return this.#json(200, { error, error_description: description, error_uri: `https://docs.github.com/apps#${error}` });
  }

  // ---- the browser side: sign-in, account picker, consent (for the local demo) ----
  //
  // As on github.com: a browser has a signed-in account (a cookie); a user who already
  // authorized the App is sent straight back to the callback with a code, no consent screen
  // (the reason the broker's connect needs the web app's confirmation); `prompt=select_account`
  // shows the account picker first.

  /** Whether `userId` authorized the App and no revocation came since. */
  hasAuthorized(clientId: string, userId: number): boolean {
    const at = this.#authorizations.get(`${clientId}:${userId}`);
    return at !== undefined && at === this.history(clientId, userId).revocations;
  }

  /** The account signed in to the browser that sent `request`, if any. */
  signedInUser(request: Request): EmulatorUser | null {
    const m = /(?:^|;\s*)emulator_user=(\d+)/.exec(request.headers.get("cookie") ?? "");
    return m ? (this.users.get(Number(m[1])) ?? null) : null;
  }

  /** A page the emulator's App model shows: its name, or its client id when it has none. */
  #pageApp(app: EmulatorApp): PageApp {
    return { clientId: app.clientId, name: app.name ?? app.clientId };
  }

  async #browser(request: Request, url: URL, path: string): Promise<Response | null> {
    if (request.method === "GET" && path === "/login/oauth/authorize") return this.#authorizePage(request, url);
    if (request.method === "POST" && path === "/login/oauth/authorize") return await this.#consentAnswer(request);
    if (request.method === "GET" && path === "/login") return signInPage([...this.users.values()], localPath(url.searchParams.get("return_to")));
    if (request.method === "POST" && path === "/session") {
      const form = await readParams(request);
      const user = this.users.get(Number(form.get("user_id")));
      if (!user) return htmlPage("Sign in", "<h1>No such account</h1>", 400);
      return new Response(null, {
        status: 303,
        headers: { location: localPath(form.get("return_to")), "set-cookie": `emulator_user=${user.id}; Path=/; HttpOnly; SameSite=Lax` },
      });
    }
    return null;
  }

  #authorizePage(request: Request, url: URL): Response {
    const app = this.apps.get(url.searchParams.get("client_id") ?? "");
    if (!app) return htmlPage("Not found", "<h1>Unknown application</h1><p>No App has this client id.</p>", 404);
    const user = this.signedInUser(request);
    if (url.searchParams.get("prompt") === "select_account") {
      const next = new URL(url);
      next.searchParams.delete("prompt");
      return accountPickerPage(this.#pageApp(app), [...this.users.values()], user, next.pathname + next.search);
    }
    const here = url.pathname + url.search;
    if (!user) return new Response(null, { status: 303, headers: { location: `/login?return_to=${encodeURIComponent(here)}` } });
    const redirectUri = url.searchParams.get("redirect_uri") ?? "";
    if (this.hasAuthorized(app.clientId, user.id) && URL.canParse(redirectUri)) {
      return this.#backToApp(redirectUri, url.searchParams.get("state"), {
        code: this.authorize({ clientId: app.clientId, userId: user.id, redirectUri, codeChallenge: url.searchParams.get("code_challenge") }),
      });
    }
    const fields: Record<string, string> = {};
    for (const k of ["client_id", "redirect_uri", "state", "code_challenge", "code_challenge_method"]) fields[k] = url.searchParams.get(k) ?? "";
    return consentPage(this.#pageApp(app), user, fields, `/login?return_to=${encodeURIComponent(here)}`);
  }

  async #consentAnswer(request: Request): Promise<Response> {
    const form = await readParams(request);
    const redirectUri = form.get("redirect_uri") ?? "";
    if (!URL.canParse(redirectUri)) return htmlPage("Bad request", "<h1>Bad redirect_uri</h1>", 400);
    if (form.get("decision") !== "authorize") {
      return this.#backToApp(redirectUri, form.get("state"), { error: "access_denied", error_description: "The user has denied your application access." });
    }
    // The signed-in account; a form's `user_id` only for callers without a browser session.
    const userId = this.signedInUser(request)?.id ?? Number(form.get("user_id"));
    const clientId = form.get("client_id") ?? "";
    const code = this.authorize({ clientId, userId, redirectUri, codeChallenge: form.get("code_challenge") || null });
    this.#authorizations.set(`${clientId}:${userId}`, this.history(clientId, userId).revocations);
    return this.#backToApp(redirectUri, form.get("state"), { code });
  }

  /**
   * `POST /_emulator/consent` (form: `url` = an authorize URL, `login`, `decision` =
   * `authorize` (default) or `deny`): the consent screen's answer for a terminal, so a person
   * can connect with curl. The same redirect to the App's callback as the browser's consent.
   */
  async #consentWithoutBrowser(request: Request): Promise<Response> {
    const form = await readParams(request);
    const authorize = URL.canParse(form.get("url") ?? "") ? new URL(form.get("url")!) : null;
    const user = [...this.users.values()].find((u) => u.login === form.get("login"));
    if (!authorize || authorize.pathname !== "/login/oauth/authorize") return this.#json(400, { message: "url must be an authorize URL the broker gave you" });
    if (!user) return this.#json(400, { message: `no account '${form.get("login") ?? ""}'; the emulator has ${[...this.users.values()].map((u) => u.login).join(", ")}` });
    const app = this.apps.get(authorize.searchParams.get("client_id") ?? "");
    if (!app) return this.#json(400, { message: "no App has this client id" });
    const answer = new URLSearchParams({ decision: form.get("decision") ?? "authorize", user_id: String(user.id) });
    for (const k of ["client_id", "redirect_uri", "state", "code_challenge"]) answer.set(k, authorize.searchParams.get(k) ?? "");
    return this.#consentAnswer(new Request(request.url, { method: "POST", headers: { "content-type": "application/x-www-form-urlencoded" }, body: answer }));
  }

  #backToApp(redirectUri: string, state: string | null, params: Record<string, string>): Response {
    const target = new URL(redirectUri);
    if (state !== null) target.searchParams.set("state", state);
    for (const [k, v] of Object.entries(params)) target.searchParams.set(k, v);
    return new Response(null, { status: 302, headers: { location: target.toString() } });
  }

  // ---- persistence (`npm start`: the emulator survives a restart, as GitHub would) ----

  /** Everything a restart must keep: users, tokens, grants. Codes (10 minutes) and faults are not kept. */
  snapshot(): EmulatorSnapshot {
    return {
      version: 1,
      users: [...this.users.values()],
      accessTokens: [...this.#accessTokens],
      refreshTokens: [...this.#refreshTokens],
      nextPair: this.#nextPair,
      history: [...this.#history],
      authorizations: [...this.#authorizations],
      installationTokens: this.installations.snapshotTokens(),
    };
  }

  /** Puts back what {@link snapshot} saved (users in it replace users of the same id). */
  restore(saved: EmulatorSnapshot): void {
    if (saved.version !== 1) return;
    for (const user of saved.users) this.addUser(user);
    for (const [k, v] of saved.accessTokens) this.#accessTokens.set(k, v);
    for (const [k, v] of saved.refreshTokens) this.#refreshTokens.set(k, v);
    for (const [k, v] of saved.history) this.#history.set(k, v);
    for (const [k, v] of saved.authorizations) this.#authorizations.set(k, v);
    this.installations.restoreTokens(saved.installationTokens ?? []);
    this.#nextPair = Math.max(this.#nextPair, saved.nextPair);
  }

  // ---- REST API ----

  #bearer(request: Request): TokenRecord | null {
    const header = request.headers.get("authorization") ?? "";
    const m = /^(?:token|bearer) (\S+)$/i.exec(header);
    const rec = m ? this.#accessTokens.get(m[1]!) : undefined;
    return rec && rec.alive && rec.expiresAt > this.now() ? rec : null;
  }

  /**
   * Who a request's token (`Authorization: token|Bearer`) speaks for: a user (user or scoped
   * token), or an App's bot (installation token); `null` without a live token.
   */
  caller(request: Request): Caller | null {
    const token = /^(?:token|bearer) (\S+)$/i.exec(request.headers.get("authorization") ?? "")?.[1];
    if (token?.startsWith("ghs_")) return this.installations.caller(token);
    const rec = this.#bearer(request);
    const user = rec && this.users.get(rec.userId);
    if (!rec || !user) return null;
    const actor: Actor = { login: user.login, id: user.id, type: "User", name: user.name };
    return { ...actor, permission: (repository) => this.#permission(rec, repository) };
  }

  async #getUser(request: Request): Promise<Response> {
    this.counts.user++;
    const early = await this.#applyFault(this.#takeFault("user"), false, request);
    if (early) return early;
    const rec = this.#bearer(request);
    if (!rec) return this.#json(401, { message: "Bad credentials" });
    const user = this.users.get(rec.userId)!;
    return this.#json(200, { login: user.login, id: user.id, name: user.name, type: "User" });
  }

  async #getRepo(request: Request, fullName: string): Promise<Response> {
    this.counts.repo++;
    const early = await this.#applyFault(this.#takeFault("repo"), false, request);
    if (early) return early;
    const asApp = this.installations.restRepository(request, fullName);
    if (asApp) return asApp;
    const rec = this.#bearer(request);
    if (!rec) return this.#json(401, { message: "Bad credentials" });
    const perm = this.#permission(rec, decodeURIComponent(fullName));
    if (!perm) return this.#json(404, { message: "Not Found" });
    const [owner, name] = decodeURIComponent(fullName).split("/");
    return this.#json(200, {
      full_name: `${owner}/${name}`,
      name,
      owner: { login: owner },
      private: true,
      permissions: { admin: false, maintain: false, push: perm === "push", triage: perm === "push", pull: true },
    });
  }

  async #deleteGrant(request: Request, clientId: string): Promise<Response> {
    this.counts.revoke_grant++;
    const early = await this.#applyFault(this.#takeFault("revoke_grant"), false, request);
    if (early) return early;
    const app = this.apps.get(clientId);
    const auth = request.headers.get("authorization") ?? "";
    const expected = app ? `basic ${btoa(`${app.clientId}:${app.clientSecret}`)}` : "";
    if (!app || auth.toLowerCase() !== expected.toLowerCase()) return this.#json(401, { message: "Bad credentials" });
    let token = "";
    try {
      token = String(((await request.json()) as { access_token?: unknown }).access_token ?? "");
    } catch {
      return this.#json(422, { message: "Invalid request." });
    }
    const rec = this.#accessTokens.get(token);
    if (!rec || rec.clientId !== clientId) return this.#json(404, { message: "Not Found" });
    if (!rec.alive || rec.expiresAt <= this.now()) return this.#json(422, { message: "Invalid token." });
    this.revokeGrant(clientId, rec.userId);
    return new Response(null, { status: 204, headers: this.#headers() });
  }

  // ---- scoped tokens ----

  /** The user's permission on a repository through this token: a scoped token reaches only its own. */
  #permission(rec: TokenRecord, repository: string): "push" | "pull" | undefined {
    const perm = this.users.get(rec.userId)?.repos[repository.toLowerCase()];
    if (!perm || !rec.scope) return perm;
    if (!rec.scope.repositories.includes(repository.toLowerCase())) return undefined;
    const contents = rec.scope.permissions?.contents;
    if (rec.scope.permissions && contents !== "write") return contents === "read" ? "pull" : undefined;
    return perm;
  }

  /** Basic client id:secret of a known App, or `null`. */
  #basicApp(request: Request, clientId: string): EmulatorApp | null {
    const app = this.apps.get(clientId);
    const auth = request.headers.get("authorization") ?? "";
    return app && auth.toLowerCase() === `basic ${btoa(`${app.clientId}:${app.clientSecret}`)}`.toLowerCase() ? app : null;
  }

  /** `POST /applications/{client_id}/token/scoped`: a user token limited to repositories and permissions. */
  async #scopedToken(request: Request, clientId: string): Promise<Response> {
    this.counts.scoped++;
    const early = await this.#applyFault(this.#takeFault("scoped"), false, request);
    if (early) return early;
    if (!this.#basicApp(request, clientId)) return this.#json(401, { message: "Bad credentials" });
    const body = (await request.json().catch(() => null)) as { access_token?: unknown; target?: unknown; repositories?: unknown; permissions?: unknown } | null;
    const parent = this.#accessTokens.get(String(body?.access_token ?? ""));
    // GitHub: "Invalid tokens will return 404 NOT FOUND".
    if (!parent || parent.clientId !== clientId || !parent.alive || parent.expiresAt <= this.now()) return this.#json(404, { message: "Not Found" });
    const repos = body?.repositories;
    if (typeof body?.target !== "string" || !Array.isArray(repos) || repos.length === 0 || !repos.every((r) => typeof r === "string")) {
      return this.#json(422, { message: "Validation Failed: target and repositories are required here" });
    }
    const permissions = body.permissions && typeof body.permissions === "object" ? (body.permissions as Record<string, string>) : null;
    // As GitHub: a permission no App can hold at that level fails validation (metadata is read-only).
    if (permissions && Object.entries(permissions).some(([name, level]) => (name === "metadata" && level !== "read") || !/^[a-z_]+$/.test(name))) {
      return this.#json(422, { message: "Validation Failed", errors: [{ resource: "ScopedToken", field: "permissions", code: "invalid", message: "metadata can only be read" }] });
    }
    const token = randomToken("ghu_");
    this.#accessTokens.set(token, {
      ...parent,
      scope: { repositories: (repos as string[]).map((r) => `${body.target}/${r}`.toLowerCase()), permissions },
    });
    const user = this.users.get(parent.userId)!;
    return this.#json(200, {
      id: this.#nextPair,
      token,
      token_last_eight: token.slice(-8),
      expires_at: new Date(parent.expiresAt).toISOString().replace(".000Z", "Z"),
      scopes: [],
      app: { client_id: clientId, name: "emulated app", url: "https://example.com" },
      user: { login: user.login, id: user.id },
      permissions: permissions ?? undefined,
    });
  }

  /** `DELETE /applications/{client_id}/token`: revokes one token (not the grant). */
  async #deleteToken(request: Request, clientId: string): Promise<Response> {
    this.counts.revoke_token++;
    const early = await this.#applyFault(this.#takeFault("revoke_token"), false, request);
    if (early) return early;
    if (!this.#basicApp(request, clientId)) return this.#json(401, { message: "Bad credentials" });
    const body = (await request.json().catch(() => null)) as { access_token?: unknown } | null;
    const rec = this.#accessTokens.get(String(body?.access_token ?? ""));
    if (!rec || rec.clientId !== clientId) return this.#json(404, { message: "Not Found" });
    if (rec.alive) rec.killedBy = { cause: "revocation", seq: ++this.#seq };
    rec.alive = false;
    return new Response(null, { status: 204, headers: this.#headers() });
  }

  // ---- git smart-HTTP (as github.com serves it, with x-access-token Basic auth) ----

  async #git(request: Request, repository: string, url: URL): Promise<Response> {
    this.counts.git++;
    const early = await this.#applyFault(this.#takeFault("git"), false, request);
    if (early) return early;
    const auth = /^Basic (.+)$/i.exec(request.headers.get("authorization") ?? "");
    let token = "";
    try {
      token = auth ? atob(auth[1]!).split(":").slice(1).join(":") : "";
    } catch {
      token = "";
    }
    if (token.startsWith("ghs_")) return this.installations.git(request, repository, url, token, this.#gitBackend!);
    const rec = token ? this.#accessTokens.get(token) : undefined;
    if (!rec || !rec.alive || rec.expiresAt <= this.now()) {
      return new Response("Invalid username or token.\n", { status: 401, headers: { "www-authenticate": 'Basic realm="GitHub"' } });
    }
    const user = this.users.get(rec.userId)!;
    const perm = this.#permission(rec, repository);
    const push = url.pathname.endsWith("/git-receive-pack") || url.searchParams.get("service") === "git-receive-pack";
    if (!perm) return new Response("Repository not found.\n", { status: 404 });
    if (push && perm !== "push") return new Response(`Permission to ${repository}.git denied to ${user.login}.\n`, { status: 403 });
    const pathInfo = `/${repository}.git${url.pathname.slice(url.pathname.indexOf(".git/") + 4)}`;
    return this.#gitBackend!(request, repository, pathInfo, user);
  }

  // ---- control API ----

  async #control(request: Request, action: string, url: URL): Promise<Response> {
    const body = request.method === "POST" ? ((await request.json().catch(() => ({}))) as Record<string, any>) : {};
    switch (`${request.method} ${action}`) {
      case "POST reset":
        this.reset();
        return this.#json(200, { ok: true });
      case "POST users":
        this.addUser(body as EmulatorUser);
        return this.#json(200, { ok: true });
      case "POST settings":
        this.settings = { ...this.settings, ...body };
        return this.#json(200, this.settings);
      case "POST clock":
        this.clockOffsetSeconds = Number(body.offsetSeconds ?? 0);
        return this.#json(200, { now: new Date(this.now()).toISOString() });
      case "POST faults":
        this.addFault(body as Fault);
        return this.#json(200, { ok: true });
      case "DELETE faults":
        this.clearFaults();
        return this.#json(200, { ok: true });
      case "POST authorize":
        return this.#json(200, { code: this.authorize(body as Parameters<GitHubEmulator["authorize"]>[0]) });
      case "POST issue":
        return this.#json(200, this.issuePair(String(body.clientId), Number(body.userId)));
      case "POST revoke":
        if (body.notify) return this.#json(200, await this.revokeAndNotify(String(body.clientId), Number(body.userId)));
        this.revokeGrant(String(body.clientId), Number(body.userId));
        return this.#json(200, { ok: true });
      case "POST holds":
        return this.#json(200, { id: this.hold(body as { match?: string[]; skip?: number }) });
      case "POST mark":
        return this.#json(200, { seq: this.mark() });
      case "GET stats":
        return this.#json(200, { counts: this.counts, faultsInjected: this.faultsInjected, apps: this.installations.stats() });
      case "GET token": {
        const token = url.searchParams.get("token") ?? "";
        return this.#json(200, { refresh: this.refreshTokenState(token), access: this.accessTokenState(token) });
      }
      case "GET history":
        return this.#json(200, this.history(url.searchParams.get("clientId") ?? "", Number(url.searchParams.get("userId"))));
      case "GET pushes":
        return this.#json(200, { pushes: this.pushes });
      case "GET git-requests":
        return this.#json(200, { requests: this.gitRequests.slice(Number(url.searchParams.get("since") ?? 0)) });
      case "GET live": {
        const [clientId, userId] = [url.searchParams.get("clientId") ?? "", Number(url.searchParams.get("userId"))];
        return this.#json(200, { refreshTokens: this.liveRefreshTokens(clientId, userId), scopedTokens: this.liveScopedTokens(clientId, userId) });
      }
      default: {
        const hold = /^holds\/(\d+)(\/release)?$/.exec(action);
        if (hold && request.method === "GET") return this.#json(200, { caught: this.held(Number(hold[1])) });
        if (hold && hold[2] && request.method === "POST") {
          this.release(Number(hold[1]));
          return this.#json(200, { ok: true });
        }
        return (
          (await this.installations.control(request.method, action, body, url)) ??
          (await this.rest.control(request.method, action, body, url)) ??
          this.#json(404, { message: `no control route ${request.method} ${action}` })
        );
      }
    }
  }

  #headers(extra: Record<string, string> = {}): Headers {
    return new Headers({ date: new Date(this.now()).toUTCString(), "x-github-request-id": randomToken("").slice(0, 16), ...extra });
  }

  #json(status: number, body: unknown, extra: Record<string, string> = {}): Response {
    const headers = this.#headers(extra);
    headers.set("content-type", "application/json; charset=utf-8");
    return new Response(JSON.stringify(body), { status, headers });
  }
}

/** What {@link GitHubEmulator.snapshot} saves (JSON). */
export interface EmulatorSnapshot {
  version: 1;
  users: EmulatorUser[];
  accessTokens: [string, TokenRecord][];
  refreshTokens: [string, TokenRecord][];
  nextPair: number;
  history: [string, GrantHistory][];
  authorizations: [string, number][];
  /** Minted installation tokens (absent in snapshots from before they were kept). */
  installationTokens?: ReturnType<GitHubAppsEmulator["snapshotTokens"]>;
}

/** A `return_to` kept on the emulator: a path, never another origin (no open redirect). */
function localPath(value: string | null): string {
  return value && value.startsWith("/") && !value.startsWith("//") ? value : "/";
}

/** Per grant (App and user): the events that can legitimately end a connection, and reuses. */
export interface GrantHistory {
  /** Refreshes that rotated the pair but whose answer was never delivered. */
  droppedRotations: number;
  /** Grant revocations ("Revoke" in the user's settings, or `DELETE .../grant`). */
  revocations: number;
  /** Refresh attempts with a refresh token already spent by an earlier refresh. */
  spentTokenReuses: number;
}

/**
 * Where GitHub sends a person to authorize an organisation's SAML SSO for an App: on the web
 * host (the API host without `api.`), `/orgs/{owner}/sso?authorization_request=...`.
 */
function ssoUrl(request: Request | undefined): string {
  const url = new URL(request?.url ?? "https://github.com/");
  const web = new URL(url.origin);
  if (web.hostname.startsWith("api.")) web.hostname = web.hostname.slice(4);
  const owner = /^\/repos\/([^/]+)\//.exec(url.pathname)?.[1] ?? /^\/([^/]+)\//.exec(url.pathname)?.[1] ?? "acme";
  return `${web.origin}/orgs/${owner}/sso?authorization_request=${randomToken("")}`;
}

function emptyHistory(): GrantHistory {
  return { droppedRotations: 0, revocations: 0, spentTokenReuses: 0 };
}

/** Thrown to turn an answer into a hang after the work was done (a lost response). */
class Hang extends Error {}

async function readParams(request: Request): Promise<URLSearchParams> {
  const type = request.headers.get("content-type") ?? "";
  const text = await request.text();
  if (type.includes("application/json")) {
    const obj = JSON.parse(text || "{}") as Record<string, unknown>;
    return new URLSearchParams(Object.entries(obj).map(([k, v]) => [k, String(v)]));
  }
  const params = new URLSearchParams(text);
  // GitHub also accepts the parameters in the query string.
  for (const [k, v] of new URL(request.url).searchParams) if (!params.has(k)) params.set(k, v);
  return params;
}

function randomToken(prefix: string): string {
  const bytes = crypto.getRandomValues(new Uint8Array(27));
  return prefix + base64url(bytes);
}

function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function s256(verifier: string): Promise<string> {
  return base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
}

export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
