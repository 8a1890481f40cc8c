/**
 * A GitLab emulator (test infrastructure, beside emulator/github.ts): the OAuth and REST
 * endpoints the broker uses, as truthful as the GitHub one where it matters.
 *
 * - Authorization codes are single-use, bound to client, `redirect_uri` and the PKCE
 *   challenge (S256), and expire after 10 minutes.
 * - A refresh rotates: it kills the old access *and* refresh token (GitLab's docs: "invalidates
 *   the existing access token and refresh token"); a rotated refresh token answers
 *   `invalid_grant`.
 * - Access tokens expire (`expires_in`, default 7200 s, on the emulator's clock); the
 *   `omitExpiresIn` setting sends only `created_at`, as older GitLab versions do.
 * - Errors as GitLab sends them: `{error, error_description}` with HTTP 400 (`invalid_grant`,
 *   `invalid_request`) or 401 (`invalid_client`); the API answers 401 `{message: "401 Unauthorized"}`.
 * - `POST /oauth/revoke` (RFC 7009) kills the token's whole row (Doorkeeper keeps access and
 *   refresh token in one row) and answers 200 even for an unknown token.
 * - Faults (5xx, hang, a rotation whose answer is lost, 429, bad client) and counters.
 * - Git smart-HTTP for `{group/.../project}.git` with `oauth2:{token}` Basic auth, through
 *   the same `git http-backend` as the GitHub emulator.
 *
 * The OAuth side is emulator/gitlab-oauth.ts; the routes are the table in {@link gitlabRoutes},
 * on the skeleton both emulators share (emulator/routing.ts). Control endpoints live under
 * `/_emulator/`.
 */
import type { EmulatorUser, GitBackend } from "./github.ts";
import { FaultQueue, Hang, Hangs } from "./faults.ts";
import { isPush } from "./github-git.ts";
import { GitLabOAuth, gitlabJson as json, type GitLabHistory, type GitLabTokenRecord } from "./gitlab-oauth.ts";
import { Holds, type Arrivals } from "./holds.ts";
import { arrive, controlRoutes, emulatorRouter, held, type EmulatorRequest, type EmulatorRouter } from "./routing.ts";

export type { GitLabHistory } from "./gitlab-oauth.ts";

export interface GitLabEmulatorApp {
  clientId: string;
  clientSecret: string;
}

/** Access level on a project, and whether it comes from the project or from a group membership. */
export interface ProjectAccess {
  level: number;
  via?: "project" | "group";
}

export interface GitLabUser {
  id: number;
  username: string;
  name: string;
  /** `group/sub/project` (any case) → access. */
  projects: Record<string, ProjectAccess>;
}

export type GitLabEndpoint = "exchange" | "refresh" | "user" | "project" | "revoke" | "git";
export type GitLabFaultKind = "status_5xx" | "hang" | "drop_after_rotate" | "rate_limit" | "bad_client";

export interface GitLabFault {
  endpoint: GitLabEndpoint;
  kind: GitLabFaultKind;
  /** Default 1; `-1` until cleared. */
  count?: number;
}

export interface GitLabSettings {
  accessTokenExpiresIn: number;
  /** Send `created_at` only (no `expires_in`). */
  omitExpiresIn: boolean;
  hangMs: number;
  /**
   * The client's timeout (the broker's `GITHUB_TIMEOUT_MS`), when known: a rotation answered
   * after half of it may have been lost by the client, and is counted as possibly lost.
   */
  clientTimeoutMs: number | null;
}

/** What {@link GitLabEmulator.snapshot} saves. */
export interface GitLabSnapshot {
  version: 1;
  users: GitLabUser[];
  access: [string, GitLabTokenRecord][];
  refresh: [string, GitLabTokenRecord][];
  nextPair: number;
}

const DEFAULTS: GitLabSettings = { accessTokenExpiresIn: 7200, omitExpiresIn: false, hangMs: 60_000, clientTimeoutMs: null };

export class GitLabEmulator {
  readonly apps = new Map<string, GitLabEmulatorApp>();
  readonly users = new Map<number, GitLabUser>();
  /** Public projects (lower-case path): anyone may read them. */
  readonly publicProjects = new Set<string>();
  settings: GitLabSettings = { ...DEFAULTS };
  /**
   * Called when the token endpoint has issued a pair (a refresh rotated, or a code was
   * exchanged), before the answer is sent; the answer waits for the promise it returns (the
   * crash soak kills the broker here).
   */
  onIssued: ((issued: { grant: "refresh" | "exchange"; clientId: string; userId: number }) => void | Promise<void>) | null = null;
  clockOffsetSeconds = 0;
  readonly counts: Record<GitLabEndpoint, number> = { exchange: 0, refresh: 0, user: 0, project: 0, revoke: 0, git: 0 };
  get faultsInjected(): Partial<Record<GitLabFaultKind, number>> {
    return this.#faults.injected;
  }
  /** Rotations whose answer was dropped (`drop_after_rotate`). */
  get droppedRotations(): number {
    return this.#oauth.droppedRotations;
  }
  set droppedRotations(value: number) {
    this.#oauth.droppedRotations = value;
  }

  readonly #oauth: GitLabOAuth;
  readonly #faults = new FaultQueue<GitLabEndpoint, GitLabFaultKind, GitLabFault>();
  readonly #hangs = new Hangs();
  #gitBackend: GitBackend | null;
  /** Requests held until a test releases them (the interleaving tests), as in the GitHub emulator. */
  readonly #holds: Holds;
  /** Arrival numbers: this emulator's own, or shared with the GitHub emulator (tests). */
  readonly #nextSeq: () => number;
  readonly #router: EmulatorRouter;

  /** `arrivals`: number and hold requests with another emulator's counter and holds (one order across both). */
  constructor(apps: GitLabEmulatorApp[], options: { gitBackend?: GitBackend; arrivals?: Arrivals } = {}) {
    for (const app of apps) this.apps.set(app.clientId, app);
    this.#gitBackend = options.gitBackend ?? null;
    let seq = 0;
    this.#holds = options.arrivals?.holds ?? new Holds();
    this.#nextSeq = options.arrivals?.next ?? (() => ++seq);
    const emulator = this;
    this.#oauth = new GitLabOAuth({
      apps: this.apps,
      get settings() {
        return emulator.settings;
      },
      counts: this.counts,
      get onIssued() {
        return emulator.onIssued;
      },
      now: () => this.now(),
      takeFault: (endpoint) => this.#faults.take(endpoint),
      applyFault: (fault) => this.#applyFault(fault),
    });
    this.#router = this.#routes();
  }

  now(): number {
    return Date.now() + this.clockOffsetSeconds * 1000;
  }

  reset(): void {
    this.users.clear();
    this.publicProjects.clear();
    this.#oauth.reset();
    this.#faults.reset();
    this.#hangs.releaseAll();
    this.settings = { ...DEFAULTS };
    this.clockOffsetSeconds = 0;
    this.#holds.releaseAll();
    for (const key of Object.keys(this.counts) as GitLabEndpoint[]) this.counts[key] = 0;
  }

  addUser(user: GitLabUser): void {
    const projects: Record<string, ProjectAccess> = {};
    for (const [path, access] of Object.entries(user.projects ?? {})) projects[path.toLowerCase()] = access;
    this.users.set(user.id, { ...user, projects });
  }

  addFault(fault: GitLabFault): void {
    this.#faults.add(fault);
  }

  /** Drops the queued faults (pending hangs go on until reset or `hangMs`). */
  clearFaults(): void {
    this.#faults.clear();
  }

  /** The consent step, as if the user clicked Authorize: a code bound to client, redirect and challenge. */
  authorize(p: { clientId: string; userId: number; redirectUri: string; codeChallenge: string | null }): { code: string } {
    if (!this.apps.has(p.clientId)) throw new Error("unknown client");
    if (!this.users.has(p.userId)) throw new Error("unknown user");
    return this.#oauth.authorize(p);
  }

  /** Whether a token is alive, and what killed it. */
  tokenState(token: string): { alive: boolean; pairId: number; killedBy?: string; killedSeq?: number } | null {
    const r = this.#oauth.access.get(token) ?? this.#oauth.refresh.get(token);
    return r ? { alive: r.alive && r.expiresAt > this.now(), pairId: r.pairId, killedBy: r.killedBy, killedSeq: r.killedSeq } : null;
  }

  /** Live refresh tokens of a user for a client: "one token" means exactly one. */
  liveRefreshTokens(clientId: string, userId: number): string[] {
    return [...this.#oauth.refresh.entries()].filter(([, r]) => r.alive && r.clientId === clientId && r.userId === userId).map(([t]) => t);
  }

  /** What happened to a user's rotations (the soak's truth check). */
  history(userId: number): GitLabHistory {
    return this.#oauth.history(userId);
  }

  /** Arms a hold (emulator/holds.ts) on the `skip + 1`-th request to one of `match` (every endpoint when omitted). */
  hold(options: { match?: string[]; skip?: number } = {}): number {
    return this.#holds.arm(options);
  }

  /** The endpoint a hold caught, or `null`. */
  held(id: number): string | null {
    return this.#holds.held(id)?.endpoint ?? null;
  }

  release(id: number): void {
    this.#holds.release(id);
  }

  async fetch(request: Request): Promise<Response> {
    return (await this.#router.fetch(request)) as Response;
  }

  /** Users and tokens, for `npm start` to keep across restarts (emulator/local.ts). */
  snapshot(): GitLabSnapshot {
    return { version: 1, users: [...this.users.values()], access: [...this.#oauth.access], refresh: [...this.#oauth.refresh], nextPair: this.#oauth.nextPair };
  }

  /** Puts back what {@link snapshot} saved (users in it replace users of the same id). */
  restore(saved: GitLabSnapshot): void {
    if (saved.version !== 1) return;
    for (const user of saved.users) this.addUser(user);
    for (const [k, v] of saved.access) this.#oauth.access.set(k, v);
    for (const [k, v] of saved.refresh) this.#oauth.refresh.set(k, v);
    this.#oauth.nextPair = Math.max(this.#oauth.nextPair, saved.nextPair);
  }

  /** Every route, in one table: control routes (`/_emulator/...`), then GitLab's. */
  #routes(): EmulatorRouter {
    const ok = {};
    const query = (request: EmulatorRequest, name: string) => new URL(request.url).searchParams.get(name);
    const router = controlRoutes(emulatorRouter(() => this.#hangs.wait(this.settings.hangMs, () => json(504, { message: "Gateway Timeout" }))), this, json, ok);
    return router
      .post("/_emulator/public", (request) => {
        this.publicProjects.add(String(request.content.path).toLowerCase());
        return json(200, ok);
      })
      .post("/_emulator/clock", (request) => {
        this.clockOffsetSeconds = Number(request.content.offsetSeconds) || 0;
        return json(200, ok);
      })
      .get("/_emulator/stats", () => json(200, { counts: this.counts, faultsInjected: this.faultsInjected, droppedRotations: this.droppedRotations }))
      .post("/_emulator/authorize", (request) => json(200, this.authorize(request.content as never)))
      .get("/_emulator/token", (request) => json(200, { state: this.tokenState(query(request, "token") ?? "") }))
      .get("/_emulator/history", (request) => json(200, this.history(Number(query(request, "userId")))))
      .get("/_emulator/live", (request) => json(200, { refreshTokens: this.liveRefreshTokens(query(request, "clientId") ?? "", Number(query(request, "userId"))) }))
      .all("/_emulator/*", (request) => json(404, { message: `no control action ${new URL(request.url).pathname.slice("/_emulator/".length)}` }))

      .all("*", arrive(this.#nextSeq))
      .post("/oauth/token", held(this.#holds, tokenEndpointOf), (request) => this.#oauth.token(request, request.seq))
      .post("/oauth/revoke", held(this.#holds, "revoke"), (request) => this.#oauth.revoke(request, request.seq))
      .get("/api/v4/user", held(this.#holds, "user"), () => this.#counted("user"), (request) => this.#user(request))
      .get("/api/v4/projects/:id", held(this.#holds, "project"), () => this.#counted("project"), (request) => this.#project(request, decodeURIComponent(request.params.id!)))
      .all("/:path+.git/info/refs", held(this.#holds, "git"), (request) => this.#git(request))
      .all("/:path+.git/git-upload-pack", held(this.#holds, "git"), (request) => this.#git(request))
      .all("/:path+.git/git-receive-pack", held(this.#holds, "git"), (request) => this.#git(request))
      .all("*", () => json(404, { message: "404 Not Found" }));
  }

  /** `GET /api/v4/user`. */
  #user(request: Request): Response {
    const user = this.#bearer(request);
    if (!user) return json(401, { message: "401 Unauthorized" });
    return json(200, { id: user.id, username: user.username, name: user.name, state: "active", web_url: `https://gitlab.example/${user.username}` });
  }

  /** `GET /api/v4/projects/:id` (the id a URL-encoded path). */
  #project(request: Request, path: string): Response {
    const user = this.#bearer(request);
    if (!user) return json(401, { message: "401 Unauthorized" });
    const key = path.toLowerCase();
    const access = user.projects[key];
    const isPublic = this.publicProjects.has(key);
    if (!access && !isPublic) return json(404, { message: "404 Project Not Found" });
    const level = access ? { access_level: access.level, notification_level: 3 } : null;
    return json(200, {
      id: 1000 + key.length,
      path_with_namespace: path,
      visibility: isPublic ? "public" : "private",
      permissions: { project_access: access?.via === "group" ? null : level, group_access: access?.via === "group" ? level : null },
    });
  }

  #bearer(request: Request): GitLabUser | null {
    const userId = this.#oauth.bearer(request);
    return userId === null ? null : (this.users.get(userId) ?? null);
  }

  /** git smart-HTTP for `/{group/.../project}.git/...`; `undefined` for any other path. */
  async #git(request: Request): Promise<Response | undefined> {
    const url = new URL(request.url);
    const git = /^\/(.+?)\.git(\/info\/refs|\/git-upload-pack|\/git-receive-pack)$/.exec(url.pathname);
    if (!git || !this.#gitBackend) return undefined;
    const counted = this.#counted("git");
    if (counted) return counted;
    const path = git[1]!;
    const unauthorized = new Response("HTTP Basic: Access denied", { status: 401, headers: { "www-authenticate": 'Basic realm="GitLab"' } });
    const m = /^Basic (\S+)$/.exec(request.headers.get("authorization") ?? "");
    if (!m) return unauthorized;
    const [login, token] = atob(m[1]!).split(":");
    const userId = token ? this.#oauth.liveAccess(token) : null;
    if (login !== "oauth2" || userId === null) return unauthorized;
    const user = this.users.get(userId)!;
    const access = user.projects[path.toLowerCase()];
    if (!access || access.level < (isPush(url) ? 30 : 20)) return new Response("The project you were looking for could not be found.", { status: 404 });
    const asGitHubUser: EmulatorUser = { id: user.id, login: user.username, name: user.name, repos: {} };
    return this.#gitBackend(request, path, url.pathname, asGitHubUser);
  }

  /** Counts an API endpoint and applies its fault, if any (`undefined`: carry on). */
  #counted(endpoint: GitLabEndpoint): Response | undefined {
    this.counts[endpoint]++;
    const fault = this.#faults.take(endpoint);
    return fault ? this.#applyFault(fault) : undefined;
  }

  #applyFault(fault: GitLabFault): Response {
    switch (fault.kind) {
      case "status_5xx":
        return json(502, { message: "502 Bad Gateway" });
      case "rate_limit":
        return json(429, { message: "Retry later" }, { "retry-after": "30" });
      case "bad_client":
        return json(401, { error: "invalid_client", error_description: "Client authentication failed." });
      default:
        throw new Hang();
    }
  }
}

/** Which endpoint a token request is, for holds. */
async function tokenEndpointOf(request: Request): Promise<GitLabEndpoint> {
  return new URLSearchParams(await request.clone().text()).get("grant_type") === "refresh_token" ? "refresh" : "exchange";
}
