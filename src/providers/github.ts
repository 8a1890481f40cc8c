/**
 * The GitHub client: every call the broker makes to GitHub, each bounded by a timeout and
 * each answer classified into a small union the caller must handle.
 *
 * Hand-written over `fetch` rather than `@octokit/oauth-methods` because the broker needs
 * three things that library does not give: PKCE (`code_verifier` on the code exchange), an
 * OAuth host configured separately from the API host (`GITHUB_WEB_URL` vs `GITHUB_API_URL`),
 * and errors that cannot carry a token (its `RequestError` keeps the request body, which
 * holds the refresh token, one `console.log(err)` away from a log line).
 *
 * Nothing here logs, and no error value contains a token, code or secret: GitHub's own
 * error text is kept in `detail` for the structured log, never for a URL or a response.
 */
import type { Committer } from "../contract";
import type { AppConfig, BrokerConfig } from "../config";
import { boundedFetch, httpFailure, readJson, serverTime, unavailable, NO_CLIENT_SECRET, tokenEndpointRequest } from "./http";
import type { Provider, ProviderError, ProviderResult, ProviderUser, ScopedTokenMinter, TokenSet } from "./provider";

export type { TokenSet } from "./provider";
/** The GitHub names of the provider types (the seam's are `provider.ts`). */
export type GitHubUser = ProviderUser;
export type GitHubError = ProviderError;
export type GitHubResult<T> = ProviderResult<T>;

export class GitHubClient implements Provider, ScopedTokenMinter {
  readonly kind = "github";
  readonly name = "GitHub";
  /** One grant per user and App: a reconnect renews it (see {@link Provider.separateAuthorizations}). */
  readonly separateAuthorizations = false;
  readonly scopedTokens: ScopedTokenMinter = this;
  readonly installations = true;
  /** GitHub's proxy path names no App: `owner/name` is GitHub's own form. */
  readonly pathApp = null;
  readonly noRefreshToken = "The GitHub App does not issue expiring user tokens: turn on 'Expire user authorization tokens' in its settings.";
  /** Requests this client made (one client per actor call): the `githubCalls` of a metric. */
  calls = 0;

  constructor(private readonly config: BrokerConfig) {}

  /** `GITHUB_WEB_URL`. */
  get webUrl(): string {
    return this.config.webUrl;
  }

  gitRemoteUrl(repository: string): string {
    return `${this.config.webUrl}/${repository}.git`;
  }

  /** An App's user and installation tokens go to git as the `x-access-token` user's password. */
  gitAuthorization(token: string): string {
    return `Basic ${btoa(`x-access-token:${token}`)}`;
  }

  proxyPath(repository: string): string {
    return `/git/${repository}.git`;
  }

  /**
   * GitHub's authorize URL for `app`, with PKCE S256. `selectAccount` adds
   * `prompt=select_account` (GitHub shows its account picker, supported since 2024-06-07);
   * without it there is no `prompt` parameter.
   */
  authorizeUrl(app: AppConfig, state: string, codeChallenge: string, selectAccount = false): string {
    const url = new URL(`${this.config.webUrl}/login/oauth/authorize`);
    url.searchParams.set("client_id", app.clientId);
    url.searchParams.set("redirect_uri", this.config.callbackUrl);
    url.searchParams.set("state", state);
    url.searchParams.set("code_challenge", codeChallenge);
    url.searchParams.set("code_challenge_method", "S256");
    if (selectAccount) url.searchParams.set("prompt", "select_account");
    return url.toString();
  }

  /** Display name (or login) and GitHub's no-reply address `{id}+{login}@users.noreply.github.com`. */
  committer(user: { id: string; login: string; name: string | null }): Committer {
    return { name: user.name ?? user.login, email: `${user.id}+${user.login}@users.noreply.github.com` };
  }

  /** `github:{id}`: the revocation webhook names only GitHub's user id. */
  identityKey(userId: string): string {
    return `github:${userId}`;
  }

  /** Exchanges an authorization code (with its PKCE verifier) for a token pair. */
  exchangeCode(app: AppConfig, code: string, codeVerifier: string): Promise<GitHubResult<TokenSet>> {
    return this.#tokenRequest(app, {
      code,
      code_verifier: codeVerifier,
      redirect_uri: this.config.callbackUrl,
    });
  }

  /**
   * Spends `refreshToken` for a new pair. GitHub kills the old refresh token the moment it
   * answers, so the caller must store the result before doing anything else.
   */
  refresh(app: AppConfig, refreshToken: string): Promise<GitHubResult<TokenSet>> {
    return this.#tokenRequest(app, { grant_type: "refresh_token", refresh_token: refreshToken });
  }

  /** `GET /user` with the user token. */
  async getUser(token: string): Promise<GitHubResult<GitHubUser>> {
    const res = await this.#api("GET", "/user", token);
    if (!res.ok) return res;
    const body = res.value.body as { id?: unknown; login?: unknown; name?: unknown };
    if (typeof body.id !== "number" || typeof body.login !== "string") {
      return unavailable("GET /user: unexpected body");
    }
    return { ok: true, value: { id: String(body.id), login: body.login, name: typeof body.name === "string" && body.name ? body.name : null } };
  }

  /** The user's own permissions on `owner/name`, as GitHub reports them for the user token. */
  async getRepoPermissions(token: string, fullName: string): Promise<GitHubResult<{ push: boolean; pull: boolean }>> {
    const [owner, name] = fullName.split("/") as [string, string];
    const res = await this.#api("GET", `/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}`, token);
    if (!res.ok) return res;
    const perms = (res.value.body as { permissions?: { push?: unknown; pull?: unknown } }).permissions ?? {};
    return { ok: true, value: { push: perms.push === true, pull: perms.pull === true } };
  }

  /**
   * `DELETE /applications/{client_id}/grant`: revokes the user's whole authorization of the
   * App (every token of it). 404 and 422 mean the grant or token is already gone.
   */
  async revokeGrant(app: AppConfig, accessToken: string): Promise<"revoked" | "already_gone" | "failed"> {
    return this.#deleteWithAppCredentials(app, "grant", accessToken);
  }

  /**
   * `POST /applications/{client_id}/token/scoped`: a user token limited to one repository
   * (and to `permissions`, when given), derived from the user's `accessToken`. Its expiry is
   * on the broker's clock: receipt time plus what GitHub's `expires_at` leaves after its own
   * `Date`, never later than `notAfter` (the parent's expiry) — "one clock".
   */
  async scopedToken(
    app: AppConfig,
    accessToken: string,
    repository: string,
    permissions: Record<string, string> | null,
    notAfter: number,
  ): Promise<GitHubResult<{ token: string; expiresAt: number }>> {
    if (!app.clientSecret) return { ok: false, error: { kind: "app_misconfigured", detail: "client secret not configured" } };
    const [owner, name] = repository.split("/") as [string, string];
    const body: Record<string, unknown> = { access_token: accessToken, target: owner, repositories: [name] };
    if (permissions) body.permissions = permissions;
    const res = await this.#fetch(`${this.config.apiUrl}/applications/${encodeURIComponent(app.clientId)}/token/scoped`, {
      method: "POST",
      headers: { accept: "application/vnd.github+json", authorization: basic(app), "content-type": "application/json", "x-github-api-version": "2022-11-28" },
      body: JSON.stringify(body),
    });
    if (!res.ok) return res;
    const receivedAt = Date.now();
    const response = res.value;
    const label = "POST /applications/{client_id}/token/scoped";
    if (response.status === 401) {
      await response.body?.cancel();
      return { ok: false, error: { kind: "app_misconfigured", detail: `${label}: 401` } };
    }
    // 404: GitHub's answer for a parent token it no longer accepts.
    if (response.status === 404) {
      await response.body?.cancel();
      return { ok: false, error: { kind: "unauthorized", detail: `${label}: 404` } };
    }
    // 422: the request is invalid (validation failed): the caller's mistake, not a lack of access.
    if (response.status === 422) return { ok: false, error: { kind: "invalid_request", detail: `${label}: 422 ${await validationReason(response)}` } };
    const fail = await githubFailure(response, label);
    if (fail) return fail;
    const json = await readJson(response);
    if (!json || typeof json.token !== "string" || !json.token) return unavailable(`${label}: no token`);
    const githubExpiry = typeof json.expires_at === "string" ? Date.parse(json.expires_at) : NaN;
    const lifetime = Number.isFinite(githubExpiry) ? githubExpiry - serverTime(response) : Infinity;
    return { ok: true, value: { token: json.token, expiresAt: Math.min(receivedAt + lifetime, notAfter) } };
  }

  /**
   * `DELETE /applications/{client_id}/token`: revokes one token, not the grant (used for the
   * scoped tokens of a generation that ended while the grant lives on).
   */
  async revokeToken(app: AppConfig, token: string): Promise<"revoked" | "already_gone" | "failed"> {
    return this.#deleteWithAppCredentials(app, "token", token);
  }

  /** `DELETE /applications/{client_id}/{grant|token}` with the App's Basic credentials: 204 done, 404/422 already gone. */
  async #deleteWithAppCredentials(app: AppConfig, what: "grant" | "token", accessToken: string): Promise<"revoked" | "already_gone" | "failed"> {
    if (!app.clientSecret) return "failed";
    const res = await this.#fetch(`${this.config.apiUrl}/applications/${encodeURIComponent(app.clientId)}/${what}`, {
      method: "DELETE",
      headers: { accept: "application/vnd.github+json", authorization: basic(app), "content-type": "application/json" },
      body: JSON.stringify({ access_token: accessToken }),
    });
    if (!res.ok) return "failed";
    const status = res.value.status;
    await res.value.body?.cancel();
    if (status === 204) return "revoked";
    if (status === 404 || status === 422) return "already_gone";
    return "failed";
  }

  // ---- internals ----

  async #tokenRequest(app: AppConfig, params: Record<string, string>): Promise<GitHubResult<TokenSet>> {
    const init = tokenEndpointRequest(app, params);
    if (!init) return NO_CLIENT_SECRET;
    const res = await this.#fetch(`${this.config.webUrl}/login/oauth/access_token`, init);
    if (!res.ok) return res;
    const receivedAt = Date.now();
    const response = res.value;
    const fail = await githubFailure(response, "POST /login/oauth/access_token");
    if (fail) return fail;
    const body = await readJson(response);
    if (!body) return unavailable("token endpoint: body is not JSON");
    // GitHub reports OAuth errors with HTTP 200 and `error` in the body.
    if (typeof body.error === "string") {
      const detail = `${body.error}: ${String(body.error_description ?? "")}`;
      if (body.error === "incorrect_client_credentials") return { ok: false, error: { kind: "app_misconfigured", detail } };
      return { ok: false, error: { kind: "bad_grant", code: body.error, detail } };
    }
    if (typeof body.access_token !== "string" || !body.access_token) return unavailable("token endpoint: no access_token");
    const issuedAt = receivedAt;
    const expiresIn = Number(body.expires_in);
    const refreshExpiresIn = Number(body.refresh_token_expires_in);
    const hasRefresh = typeof body.refresh_token === "string" && body.refresh_token !== "";
    return {
      ok: true,
      value: {
        accessToken: body.access_token,
        // A token without `expires_in` does not expire; treat it as GitHub's standard 8 hours.
        accessTokenExpiresAt: issuedAt + (Number.isFinite(expiresIn) && expiresIn > 0 ? expiresIn : 28_800) * 1000,
        refreshToken: hasRefresh ? (body.refresh_token as string) : null,
        refreshTokenExpiresAt: hasRefresh
          ? issuedAt + (Number.isFinite(refreshExpiresIn) && refreshExpiresIn > 0 ? refreshExpiresIn : 15_897_600) * 1000
          : null,
      },
    };
  }

  async #api(method: string, path: string, token: string): Promise<GitHubResult<{ body: unknown }>> {
    const res = await this.#fetch(`${this.config.apiUrl}${path}`, {
      method,
      headers: {
        accept: "application/vnd.github+json",
        authorization: `Bearer ${token}`,
        "x-github-api-version": "2022-11-28",
      },
    });
    if (!res.ok) return res;
    const response = res.value;
    const label = `${method} ${path}`;
    if (response.status === 401) {
      await response.body?.cancel();
      return { ok: false, error: { kind: "unauthorized", detail: `${label}: 401` } };
    }
    if (response.status === 404) {
      await response.body?.cancel();
      return { ok: false, error: { kind: "not_found", detail: `${label}: 404` } };
    }
    const moved = await movedRepository(response, label);
    if (moved) return moved;
    const fail = await githubFailure(response, label);
    if (fail) {
      if (response.status === 403 && fail.error.kind === "unavailable") {
        const ssoUrl = ssoUrlOf(response, this.config.webUrl);
        return { ok: false, error: ssoUrl ? { kind: "forbidden", detail: `${label}: 403 (SAML SSO)`, ssoUrl } : { kind: "forbidden", detail: `${label}: 403` } };
      }
      return fail;
    }
    const body = await readJson(response);
    if (!body) return unavailable(`${label}: body is not JSON`);
    return { ok: true, value: { body } };
  }

  /** {@link boundedFetch}, counted. */
  #fetch(url: string, init: RequestInit): Promise<GitHubResult<Response>> {
    this.calls++;
    return boundedFetch(url, init, this.config.githubTimeoutMs);
  }
}

function basic(app: AppConfig): string {
  return `Basic ${btoa(`${app.clientId}:${app.clientSecret}`)}`;
}

/**
 * The authorize URL of `X-GitHub-SSO: required; url=<url>`, when it is an absolute URL on the
 * configured GitHub web host (it goes to a person's browser: nothing else is passed on).
 */
export function ssoUrlOf(response: Response, webUrl: string): string | undefined {
  const header = response.headers.get("x-github-sso") ?? "";
  const m = /^\s*required\s*;\s*url=(\S+)\s*$/i.exec(header);
  if (!m) return undefined;
  try {
    const url = new URL(m[1]!);
    if (url.origin !== new URL(webUrl).origin || url.username || url.password || m[1]!.length > 2048) return undefined;
    return url.toString();
  } catch {
    return undefined;
  }
}

/**
 * {@link httpFailure} with GitHub's rate limits: 429, and a 403 with `x-ratelimit-remaining: 0`
 * or a `Retry-After` (a secondary rate limit).
 */
export function githubFailure(response: Response, label: string): Promise<{ ok: false; error: GitHubError } | null> {
  const status = response.status;
  const limited = status === 429 || (status === 403 && (response.headers.get("x-ratelimit-remaining") === "0" || response.headers.has("retry-after")));
  return httpFailure(response, label, limited);
}

/**
 * A 3xx from a repository route: GitHub's answer for a renamed or transferred repository's old
 * name. Not here under this name (the redirect is never followed with a credential); `null`
 * for any other status.
 */
export async function movedRepository(response: Response, label: string): Promise<{ ok: false; error: GitHubError } | null> {
  if (response.status < 300 || response.status >= 400) return null;
  await response.body?.cancel();
  return { ok: false, error: { kind: "not_found", detail: `${label}: ${response.status} (moved)` } };
}

/** GitHub's reason for a 422 (`message` and each error's `message`/`code`), short and printable, for the log. */
async function validationReason(response: Response): Promise<string> {
  const body = (await response.json().catch(() => null)) as { message?: unknown; errors?: unknown } | null;
  const parts = [typeof body?.message === "string" ? body.message : ""];
  if (Array.isArray(body?.errors)) {
    for (const e of body.errors.slice(0, 5)) {
      const item = e as { message?: unknown; code?: unknown; field?: unknown };
      parts.push([item.field, item.code, item.message].filter((x) => typeof x === "string").join(" "));
    }
  }
  // Never a token in a log line, should GitHub ever echo one.
  return parts.filter(Boolean).join("; ").replace(/gh[a-z]_[A-Za-z0-9_]+/g, "[token]").replace(/[^\x20-\x7e]/g, " ").slice(0, 300);
}
