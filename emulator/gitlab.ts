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
 * Control endpoints live under `/_emulator/`.
 */
import type { EmulatorUser, GitBackend } from "./github.ts";
import { FaultQueue } from "./faults.ts";
import { Holds, type Arrivals } from "./holds.ts";

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

/** Per user: rotations whose answer was (or may have been) lost, and rotated refresh tokens presented again. */
export interface GitLabHistory {
  lostRotations: number;
  rotatedReuses: number;
}

/** What {@link GitLabEmulator.snapshot} saves. */
export interface GitLabSnapshot {
  version: 1;
  users: GitLabUser[];
  access: [string, TokenRecord][];
  refresh: [string, TokenRecord][];
  nextPair: number;
}

interface TokenRecord {
  clientId: string;
  userId: number;
  pairId: number;
  createdAt: number;
  expiresAt: number;
  alive: boolean;
  killedBy?: "rotation" | "revocation";
  /** The arrival number of the request that killed it (emulator/holds.ts `Arrivals`). */
  killedSeq?: number;
}

interface CodeRecord {
  clientId: string;
  userId: number;
  redirectUri: string;
  codeChallenge: string | null;
  expiresAt: number;
  used: boolean;
}

const DEFAULTS: GitLabSettings = { accessTokenExpiresIn: 7200, omitExpiresIn: false, hangMs: 60_000, clientTimeoutMs: null };

class Hang extends Error {}

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
  droppedRotations = 0;

  #access = new Map<string, TokenRecord>();
  #refresh = new Map<string, TokenRecord>();
  #codes = new Map<string, CodeRecord>();
  readonly #faults = new FaultQueue<GitLabEndpoint, GitLabFaultKind, GitLabFault>();
  #hangs = new Set<() => void>();
  #nextPair = 1;
  #gitBackend: GitBackend | null;
  #history = new Map<number, GitLabHistory>();
  /** Requests held until a test releases them (the interleaving tests), as in the GitHub emulator. */
  readonly #holds: Holds;
  /** Arrival numbers: this emulator's own, or shared with the GitHub emulator (tests). */
  readonly #nextSeq: () => number;

  /** `arrivals`: number and hold requests with another emulator's counter and holds (one order across both). */
  constructor(apps: GitLabEmulatorApp[], options: { gitBackend?: GitBackend; arrivals?: Arrivals } = {}) {
    for (const app of apps) this.apps.set(app.clientId, app);
    this.#gitBackend = options.gitBackend ?? null;
    let seq = 0;
    this.#holds = options.arrivals?.holds ?? new Holds();
    this.#nextSeq = options.arrivals?.next ?? (() => ++seq);
  }

  now(): number {
    return Date.now() + this.clockOffsetSeconds * 1000;
  }

  reset(): void {
    this.users.clear();
    this.publicProjects.clear();
    this.#access.clear();
    this.#refresh.clear();
    this.#codes.clear();
    this.#faults.reset();
    for (const release of [...this.#hangs]) release();
    this.settings = { ...DEFAULTS };
    this.clockOffsetSeconds = 0;
    this.droppedRotations = 0;
    this.#history.clear();
    this.#holds.releaseAll();
    for (const key of Object.keys(this.counts) as GitLabEndpoint[]) this.counts[key] = 0;
  }

  addUser(user: GitLabUser): void {
    const projects: Record<string, ProjectAccess> = {};
    for (const [path, access] of Object.entries(user.projects ?? {})) projects[path.toLowerCase()] = access;
    this.users.set(user.id, { ...user, projects });
  }

  /** The consent step, as if the user clicked Authorize: a code bound to client, redirect and challenge. */
  authorize(p: { clientId: string; userId: number; redirectUri: string; codeChallenge: string | null }): { code: string } {
    if (!this.apps.has(p.clientId)) throw new Error("unknown client");
    if (!this.users.has(p.userId)) throw new Error("unknown user");
    const code = `glc_${random()}`;
    this.#codes.set(code, { ...p, expiresAt: this.now() + 600_000, used: false });
    return { code };
  }

  /** Whether a token is alive, and what killed it. */
  tokenState(token: string): { alive: boolean; pairId: number; killedBy?: string; killedSeq?: number } | null {
    const r = this.#access.get(token) ?? this.#refresh.get(token);
    return r ? { alive: r.alive && r.expiresAt > this.now(), pairId: r.pairId, killedBy: r.killedBy, killedSeq: r.killedSeq } : null;
  }

  /** Live refresh tokens of a user for a client: "one token" means exactly one. */
  liveRefreshTokens(clientId: string, userId: number): string[] {
    return [...this.#refresh.entries()].filter(([, r]) => r.alive && r.clientId === clientId && r.userId === userId).map(([t]) => t);
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

  async #endpointOf(request: Request, path: string): Promise<GitLabEndpoint | null> {
    if (path === "/oauth/token") return new URLSearchParams(await request.clone().text()).get("grant_type") === "refresh_token" ? "refresh" : "exchange";
    if (path === "/oauth/revoke") return "revoke";
    if (path === "/api/v4/user") return "user";
    if (path.startsWith("/api/v4/projects/")) return "project";
    return /\.git\//.test(path) ? "git" : null;
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    const path = url.pathname;
    try {
      if (path.startsWith("/_emulator/")) return await this.#control(request, path.slice("/_emulator/".length), url);
      const seq = this.#nextSeq();
      if (this.#holds.armed) {
        const endpoint = await this.#endpointOf(request, path);
        if (endpoint) await this.#holds.at(endpoint, seq);
      }
      if (request.method === "POST" && path === "/oauth/token") return await this.#token(request, seq);
      if (request.method === "POST" && path === "/oauth/revoke") return await this.#revoke(request, seq);
      if (request.method === "GET" && path === "/api/v4/user") return this.#counted("user") ?? this.#user(request);
      const project = /^\/api\/v4\/projects\/([^/]+)$/.exec(path);
      if (request.method === "GET" && project) return this.#counted("project") ?? this.#project(request, decodeURIComponent(project[1]!));
      const git = /^\/(.+?)\.git(\/info\/refs|\/git-upload-pack|\/git-receive-pack)$/.exec(path);
      if (git && this.#gitBackend) return (this.#counted("git") ?? (await this.#git(request, git[1]!, url))) as Response;
      return json(404, { message: "404 Not Found" });
    } catch (err) {
      if (err instanceof Hang) return this.#hang();
      throw err;
    }
  }

  /** Users and tokens, for `npm start` to keep across restarts (emulator/local.ts). */
  snapshot(): GitLabSnapshot {
    return { version: 1, users: [...this.users.values()], access: [...this.#access], refresh: [...this.#refresh], nextPair: this.#nextPair };
  }

  /** Puts back what {@link snapshot} saved (users in it replace users of the same id). */
  restore(saved: GitLabSnapshot): void {
    if (saved.version !== 1) return;
    for (const user of saved.users) this.addUser(user);
    for (const [k, v] of saved.access) this.#access.set(k, v);
    for (const [k, v] of saved.refresh) this.#refresh.set(k, v);
    this.#nextPair = Math.max(this.#nextPair, saved.nextPair);
  }

  // ---- OAuth ----

  /** What happened to a user's rotations (the soak's truth check). */
  history(userId: number): GitLabHistory {
    let h = this.#history.get(userId);
    if (!h) this.#history.set(userId, (h = { lostRotations: 0, rotatedReuses: 0 }));
    return h;
  }

  async #token(request: Request, seq: number): Promise<Response> {
    const arrivedAt = Date.now();
    const form = new URLSearchParams(await request.text());
    const grant = form.get("grant_type");
    const endpoint: GitLabEndpoint = grant === "refresh_token" ? "refresh" : "exchange";
    this.counts[endpoint]++;
    const fault = this.#takeFault(endpoint);
    if (fault && fault.kind !== "drop_after_rotate") return this.#applyFault(fault);
    const app = this.apps.get(form.get("client_id") ?? "");
    if (!app || form.get("client_secret") !== app.clientSecret) {
      return json(401, { error: "invalid_client", error_description: "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method." });
    }
    const invalidGrant = json(400, {
      error: "invalid_grant",
      error_description: "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
    });
    let userId: number;
    if (grant === "authorization_code") {
      const code = this.#codes.get(form.get("code") ?? "");
      if (!code || code.used || code.clientId !== app.clientId || code.expiresAt <= this.now() || code.redirectUri !== form.get("redirect_uri")) return invalidGrant;
      code.used = true;
      if (code.codeChallenge !== null && code.codeChallenge !== (await s256(form.get("code_verifier") ?? ""))) return invalidGrant;
      userId = code.userId;
    } else if (grant === "refresh_token") {
      const old = this.#refresh.get(form.get("refresh_token") ?? "");
      if (old && !old.alive && old.killedBy === "rotation") this.history(old.userId).rotatedReuses++;
      if (!old || !old.alive || old.clientId !== app.clientId) return invalidGrant;
      // Rotation: the old row (access and refresh token) dies as the new one is issued.
      this.#killPair(old.pairId, "rotation", seq);
      userId = old.userId;
    } else {
      return json(400, { error: "unsupported_grant_type", error_description: "The authorization grant type is not supported by the authorization server." });
    }
    const body = this.#issue(app.clientId, userId);
    if (fault?.kind === "drop_after_rotate") {
      this.droppedRotations++;
      if (grant === "refresh_token") this.history(userId).lostRotations++;
      throw new Hang();
    }
    if (this.onIssued) await this.onIssued({ grant: grant === "refresh_token" ? "refresh" : "exchange", clientId: app.clientId, userId });
    const timeout = this.settings.clientTimeoutMs;
    if (grant === "refresh_token" && timeout !== null && Date.now() - arrivedAt >= timeout / 2) this.history(userId).lostRotations++;
    // GitLab's clock is the emulator's (`clock`): the broker must not mix it with its own.
    return json(200, body, { date: new Date(this.now()).toUTCString() });
  }

  #issue(clientId: string, userId: number): Record<string, unknown> {
    const pairId = this.#nextPair++;
    const now = this.now();
    const record = (): TokenRecord => ({ clientId, userId, pairId, createdAt: now, expiresAt: now + this.settings.accessTokenExpiresIn * 1000, alive: true });
    const access = `glpat-oauth-${random()}`;
    const refresh = `glrt-${random()}`;
    this.#access.set(access, record());
    this.#refresh.set(refresh, { ...record(), expiresAt: Number.MAX_SAFE_INTEGER });
    const body: Record<string, unknown> = { access_token: access, token_type: "Bearer", refresh_token: refresh, scope: "read_user write_repository api", created_at: Math.floor(now / 1000) };
    if (!this.settings.omitExpiresIn) body.expires_in = this.settings.accessTokenExpiresIn;
    return body;
  }

  async #revoke(request: Request, seq: number): Promise<Response> {
    const form = new URLSearchParams(await request.text());
    this.counts.revoke++;
    const fault = this.#takeFault("revoke");
    if (fault) return this.#applyFault(fault);
    const app = this.apps.get(form.get("client_id") ?? "");
    if (!app || form.get("client_secret") !== app.clientSecret) return json(401, { error: "invalid_client", error_description: "Client authentication failed." });
    const token = form.get("token") ?? "";
    const record = this.#access.get(token) ?? this.#refresh.get(token);
    if (record && record.clientId === app.clientId) this.#killPair(record.pairId, "revocation", seq);
    return json(200, {});
  }

  #killPair(pairId: number, cause: "rotation" | "revocation", seq: number): void {
    for (const map of [this.#access, this.#refresh]) {
      for (const r of map.values()) {
        if (r.pairId === pairId && r.alive) {
          r.alive = false;
          r.killedBy = cause;
          r.killedSeq = seq;
        }
      }
    }
  }

  // ---- API ----

  #bearer(request: Request): GitLabUser | null {
    const m = /^Bearer (\S+)$/.exec(request.headers.get("authorization") ?? "");
    const r = m ? this.#access.get(m[1]!) : undefined;
    if (!r || !r.alive || r.expiresAt <= this.now()) return null;
    return this.users.get(r.userId) ?? null;
  }

  #user(request: Request): Response {
    const user = this.#bearer(request);
    if (!user) return json(401, { message: "401 Unauthorized" });
    return json(200, { id: user.id, username: user.username, name: user.name, state: "active", web_url: `https://gitlab.example/${user.username}` });
  }

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

  async #git(request: Request, path: string, url: URL): Promise<Response> {
    const unauthorized = new Response("HTTP Basic: Access denied", { status: 401, headers: { "www-authenticate": 'Basic realm="GitLab"' } });
    const m = /^Basic (\S+)$/.exec(request.headers.get("authorization") ?? "");
    if (!m) return unauthorized;
    const [login, token] = atob(m[1]!).split(":");
    const r = token ? this.#access.get(token) : undefined;
    if (login !== "oauth2" || !r || !r.alive || r.expiresAt <= this.now()) return unauthorized;
    const user = this.users.get(r.userId)!;
    const access = user.projects[path.toLowerCase()];
    const push = url.pathname.endsWith("/git-receive-pack") || url.searchParams.get("service") === "git-receive-pack";
    if (!access || access.level < (push ? 30 : 20)) return new Response("The project you were looking for could not be found.", { status: 404 });
    const asGitHubUser: EmulatorUser = { id: user.id, login: user.username, name: user.name, repos: {} };
    return this.#gitBackend!(request, path, url.pathname, asGitHubUser);
  }

  // ---- faults ----

  /** Counts an API endpoint and applies its fault, if any (`null`: carry on). */
  #counted(endpoint: GitLabEndpoint): Response | null {
    this.counts[endpoint]++;
    const fault = this.#takeFault(endpoint);
    return fault ? this.#applyFault(fault) : null;
  }

  #takeFault(endpoint: GitLabEndpoint): GitLabFault | null {
    return this.#faults.take(endpoint);
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

  #hang(): Promise<Response> {
    return new Promise((resolve) => {
      const release = () => {
        clearTimeout(timer);
        this.#hangs.delete(release);
        resolve(json(504, { message: "Gateway Timeout" }));
      };
      const timer = setTimeout(release, this.settings.hangMs);
      this.#hangs.add(release);
    });
  }

  // ---- control ----

  async #control(request: Request, action: string, url: URL): Promise<Response> {
    const body = request.method === "POST" || request.method === "PUT" ? ((await request.json().catch(() => ({}))) as Record<string, any>) : {};
    switch (`${request.method} ${action}`) {
      case "POST reset":
        this.reset();
        return json(200, {});
      case "POST users":
        this.addUser(body as GitLabUser);
        return json(200, {});
      case "POST public":
        this.publicProjects.add(String(body.path).toLowerCase());
        return json(200, {});
      case "POST settings":
        this.settings = { ...this.settings, ...body };
        return json(200, this.settings);
      case "POST clock":
        this.clockOffsetSeconds = Number(body.offsetSeconds) || 0;
        return json(200, {});
      case "POST faults":
        this.#faults.add(body as GitLabFault);
        return json(200, {});
      case "DELETE faults":
        this.#faults.clear();
        return json(200, {});
      case "GET stats":
        return json(200, { counts: this.counts, faultsInjected: this.faultsInjected, droppedRotations: this.droppedRotations });
      case "POST authorize":
        return json(200, this.authorize(body as never));
      case "GET token":
        return json(200, { state: this.tokenState(url.searchParams.get("token") ?? "") });
      case "POST holds":
        return json(200, { id: this.hold(body as { match?: string[]; skip?: number }) });
      case "GET history":
        return json(200, this.history(Number(url.searchParams.get("userId"))));
      case "GET live":
        return json(200, { refreshTokens: this.liveRefreshTokens(url.searchParams.get("clientId") ?? "", Number(url.searchParams.get("userId"))) });
      default: {
        const hold = /^holds\/(\d+)(\/release)?$/.exec(action);
        if (hold && request.method === "GET") return json(200, { caught: this.held(Number(hold[1])) });
        if (hold && hold[2] && request.method === "POST") {
          this.release(Number(hold[1]));
          return json(200, {});
        }
        return json(404, { message: `no control action ${action}` });
      }
    }
  }
}

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", date: new Date().toUTCString(), ...headers } });
}

function random(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(20));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function s256(verifier: string): Promise<string> {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier)));
  return btoa(String.fromCharCode(...digest)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}
