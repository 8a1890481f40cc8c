/**
 * The GitLab side of the provider seam (gitlab.com and self-managed): OAuth with PKCE and
 * `scope`, rotating refresh tokens, identity, project access levels and token revocation.
 *
 * GitLab differs from GitHub where it matters to the broker:
 * - OAuth errors come as HTTP 400/401 with `{error, error_description}` (GitHub: 200);
 *   `invalid_grant` is a dead code or refresh token, `invalid_client` the App's credentials.
 * - A refresh "invalidates the existing access token and refresh token": the same race the
 *   actor's single-flight refresh exists for, with no revocation webhook to tell us later.
 * - Access tokens live 2 hours; `expires_in` may be missing, then `created_at` + 7200 s on
 *   GitLab's clock, translated to the broker's ("one clock").
 * - Refresh tokens do not expire by age.
 *
 * Nothing here logs, and no error value contains a token, code or secret.
 */
import type { Committer } from "../contract";
import type { AppConfig, BrokerConfig } from "../config";
import { boundedFetch, httpFailure, readJson, unavailable, NO_CLIENT_SECRET, tokenEndpointRequest } from "./http";
import type { Provider, ProviderError, ProviderResult, ProviderUser, TokenSet } from "./provider";

/** GitLab's access-token lifetime since 15.0 (2 hours). */
export const GITLAB_ACCESS_TTL_S = 7200;
/** Access levels (`permissions.project_access.access_level`): Developer pushes, Reporter pulls. */
export const GITLAB_PUSH_LEVEL = 30;
export const GITLAB_PULL_LEVEL = 20;

export class GitLabClient implements Provider {
  readonly kind = "gitlab";
  readonly name = "GitLab";
  /** Every authorization is a token of its own: a reconnect revokes the previous pair. */
  readonly separateAuthorizations = true;
  /** GitLab has neither repository-scoped user tokens nor installations. */
  readonly scopedTokens = null;
  readonly installations = false;
  /** A GitLab project path has no fixed depth, so the proxy path names the App: `/git/{appType}/...`. */
  readonly pathApp: string;
  readonly noRefreshToken = "GitLab issued no refresh token: check the OAuth application's settings.";
  calls = 0;
  readonly #base: string;
  readonly #host: string;

  /** One client per App: a GitLab App is bound to its instance (`baseUrl`). */
  constructor(
    private readonly config: BrokerConfig,
    app: AppConfig,
  ) {
    this.#base = app.baseUrl ?? "https://gitlab.com";
    this.#host = new URL(this.#base).hostname;
    this.pathApp = app.appType;
  }

  /** The App's instance (`baseUrl`). */
  get webUrl(): string {
    return this.#base;
  }

  gitRemoteUrl(repository: string): string {
    return `${this.#base}/${repository}.git`;
  }

  /** GitLab's OAuth tokens go to git as the `oauth2` user's password. */
  gitAuthorization(token: string): string {
    return `Basic ${btoa(`oauth2:${token}`)}`;
  }

  proxyPath(repository: string): string {
    return `/git/${this.pathApp}/${repository}.git`;
  }

  /** `{base}/oauth/authorize` with PKCE S256 and `scope`. GitLab has no account picker: `selectAccount` is ignored. */
  authorizeUrl(app: AppConfig, state: string, codeChallenge: string): string {
    const url = new URL(`${this.#base}/oauth/authorize`);
    url.searchParams.set("client_id", app.clientId);
    url.searchParams.set("redirect_uri", this.config.callbackUrl);
    url.searchParams.set("response_type", "code");
    url.searchParams.set("state", state);
    url.searchParams.set("scope", app.scopes ?? "read_user write_repository api");
    url.searchParams.set("code_challenge", codeChallenge);
    url.searchParams.set("code_challenge_method", "S256");
    return url.toString();
  }

  exchangeCode(app: AppConfig, code: string, codeVerifier: string): Promise<ProviderResult<TokenSet>> {
    return this.#token(app, { grant_type: "authorization_code", code, code_verifier: codeVerifier, redirect_uri: this.config.callbackUrl });
  }

  /** Spends `refreshToken`: GitLab kills the old access *and* refresh token as it answers. */
  refresh(app: AppConfig, refreshToken: string): Promise<ProviderResult<TokenSet>> {
    return this.#token(app, { grant_type: "refresh_token", refresh_token: refreshToken, redirect_uri: this.config.callbackUrl });
  }

  /** `GET /api/v4/user`: numeric `id`, `username`, `name`. */
  async getUser(token: string): Promise<ProviderResult<ProviderUser>> {
    const res = await this.#api("/api/v4/user", token, "GET /api/v4/user");
    if (!res.ok) return res;
    const body = res.value as { id?: unknown; username?: unknown; name?: unknown };
    if (typeof body.id !== "number" || typeof body.username !== "string") return unavailable("GET /api/v4/user: unexpected body");
    return { ok: true, value: { id: String(body.id), login: body.username, name: typeof body.name === "string" && body.name ? body.name : null } };
  }

  /**
   * `GET /api/v4/projects/{url-encoded path}`: the higher of the project and group access
   * levels; ≥ 30 pushes, ≥ 20 pulls, and anyone pulls a public project.
   */
  async getRepoPermissions(token: string, repository: string): Promise<ProviderResult<{ push: boolean; pull: boolean }>> {
    const res = await this.#api(`/api/v4/projects/${encodeURIComponent(repository)}`, token, "GET /api/v4/projects/{path}");
    if (!res.ok) return res;
    const body = res.value as { visibility?: unknown; permissions?: { project_access?: { access_level?: unknown } | null; group_access?: { access_level?: unknown } | null } };
    const level = Math.max(levelOf(body.permissions?.project_access), levelOf(body.permissions?.group_access));
    return { ok: true, value: { push: level >= GITLAB_PUSH_LEVEL, pull: level >= GITLAB_PULL_LEVEL || body.visibility === "public" } };
  }

  /**
   * `POST /oauth/revoke` (RFC 7009) with the App's credentials. GitLab answers 200 for a
   * token it does not know too, so "revoked" also covers "was already gone".
   */
  async revokeGrant(app: AppConfig, accessToken: string): Promise<"revoked" | "already_gone" | "failed"> {
    if (!app.clientSecret) return "failed";
    const res = await this.#fetch(`${this.#base}/oauth/revoke`, {
      method: "POST",
      headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({ client_id: app.clientId, client_secret: app.clientSecret, token: accessToken }),
    });
    if (!res.ok) return "failed";
    const status = res.value.status;
    await res.value.body?.cancel();
    return status === 200 ? "revoked" : "failed";
  }

  /** Each authorization is its own token: revoking the token is revoking the grant. */
  revokeToken(app: AppConfig, token: string): Promise<"revoked" | "already_gone" | "failed"> {
    return this.revokeGrant(app, token);
  }

  /** Display name (or username) and `{id}-{username}@users.noreply.{host}`. */
  committer(user: { id: string; login: string; name: string | null }): Committer {
    return { name: user.name ?? user.login, email: `${user.id}-${user.login}@users.noreply.${this.#host}` };
  }

  /** `gitlab:{host}:{id}`: ids are per instance. */
  identityKey(userId: string): string {
    return `gitlab:${this.#host}:${userId}`;
  }

  // ---- internals ----

  async #token(app: AppConfig, params: Record<string, string>): Promise<ProviderResult<TokenSet>> {
    const init = tokenEndpointRequest(app, params);
    if (!init) return NO_CLIENT_SECRET;
    const res = await this.#fetch(`${this.#base}/oauth/token`, init);
    if (!res.ok) return res;
    const receivedAt = Date.now();
    const response = res.value;
    const label = "POST /oauth/token";
    if (response.status === 400 || response.status === 401) {
      const body = await readJson(response);
      const code = typeof body?.error === "string" ? body.error : `http_${response.status}`;
      const detail = `${label}: ${response.status} ${code}`;
      if (code === "invalid_client" || code === "unauthorized_client") return { ok: false, error: { kind: "app_misconfigured", detail } };
      if (code === "invalid_grant") return { ok: false, error: { kind: "bad_grant", code, detail } };
      // Any other 400 (`invalid_request`, ...) says nothing about the grant: not a reason to disconnect.
      return unavailable(detail);
    }
    const fail = await httpFailure(response, label);
    if (fail) return fail;
    const body = await readJson(response);
    if (!body || typeof body.access_token !== "string" || !body.access_token) return unavailable(`${label}: no access_token`);
    const hasRefresh = typeof body.refresh_token === "string" && body.refresh_token !== "";
    return {
      ok: true,
      value: {
        accessToken: body.access_token,
        accessTokenExpiresAt: receivedAt + lifetimeSeconds(body, response) * 1000,
        refreshToken: hasRefresh ? (body.refresh_token as string) : null,
        refreshTokenExpiresAt: null,
      },
    };
  }

  async #api(path: string, token: string, label: string): Promise<ProviderResult<unknown>> {
    const res = await this.#fetch(`${this.#base}${path}`, { method: "GET", headers: { accept: "application/json", authorization: `Bearer ${token}` } });
    if (!res.ok) return res;
    const response = res.value;
    const simple: Record<number, ProviderError["kind"]> = { 401: "unauthorized", 403: "forbidden", 404: "not_found" };
    const kind = simple[response.status];
    if (kind) {
      await response.body?.cancel();
      return { ok: false, error: { kind, detail: `${label}: ${response.status}` } as ProviderError };
    }
    const fail = await httpFailure(response, label);
    if (fail) return fail;
    const body = await readJson(response);
    return body ? { ok: true, value: body } : unavailable(`${label}: body is not JSON`);
  }

  /** {@link boundedFetch}, counted. */
  #fetch(url: string, init: RequestInit): Promise<ProviderResult<Response>> {
    this.calls++;
    return boundedFetch(url, init, this.config.githubTimeoutMs);
  }
}

/**
 * Seconds the new access token lives, measured from its receipt: `expires_in`, or else what
 * `created_at` + 7200 leaves after GitLab's own `Date` (never more than 7200).
 */
function lifetimeSeconds(body: Record<string, unknown>, response: Response): number {
  const expiresIn = Number(body.expires_in);
  if (body.expires_in !== undefined && body.expires_in !== null && Number.isFinite(expiresIn) && expiresIn > 0) return expiresIn;
  const createdAt = Number(body.created_at);
  const serverNow = Date.parse(response.headers.get("date") ?? "");
  if (!Number.isFinite(createdAt) || !Number.isFinite(serverNow)) return GITLAB_ACCESS_TTL_S;
  return Math.max(0, Math.min(GITLAB_ACCESS_TTL_S, createdAt + GITLAB_ACCESS_TTL_S - serverNow / 1000));
}

function levelOf(access: { access_level?: unknown } | null | undefined): number {
  return typeof access?.access_level === "number" ? access.access_level : 0;
}
