/**
 * The provider seam: everything the per-user actor asks of an OAuth provider (GitHub,
 * GitLab), so the actor, generations, single-flight refresh, sealing and lifecycle rules are
 * written once. Each App names its provider in configuration (`GITHUB_APPS`, `GITLAB_APPS`);
 * `actor/context.ts` hands every call the provider of its App.
 *
 * Results are the same small union on both sides ({@link ProviderError}), so `failures.ts`
 * maps them to contract reasons once. Nothing a provider returns carries a token, code or
 * secret in an error.
 *
 * The provider answers everything that differs between GitHub and GitLab (its name, its git
 * URLs and credentials, the broker's proxy path, its optional features): the only branches on
 * the kind of provider are in `providers/index.ts`, and `scripts/check-seams.mjs` keeps it so.
 *
 * **GitHub's names on every provider's data.** The contract's `githubUserId`, `githubLogin`,
 * `githubGrant(s)`, the `github_unavailable` reason and the actors' `github_*` columns carry
 * a GitLab account's id, username and grant too: they are the wire's and the storage's names,
 * kept for compatibility; in code they mean "the provider account's".
 */
import type { Committer } from "../contract";
import type { AppConfig, ProviderKind } from "../config";

export type { ProviderKind } from "../config";

/**
 * A token pair with absolute expiries in epoch ms on **the broker's clock**: the moment the
 * answer was received plus the provider's `expires_in` ("one clock").
 */
export interface TokenSet {
  accessToken: string;
  accessTokenExpiresAt: number;
  /** `null` when the provider issued no refresh token (a GitHub App with expiry off). */
  refreshToken: string | null;
  refreshTokenExpiresAt: number | null;
}

/** The account behind a token. Stored in the `github_*` columns whatever the provider (see above). */
export interface ProviderUser {
  /** Numeric id as a decimal string. */
  id: string;
  /** GitHub `login`, GitLab `username`. */
  login: string;
  name: string | null;
}

/**
 * Why a call failed (the same kinds for every provider).
 * - `unavailable`: 5xx, timeout, network error, unparseable answer.
 * - `rate_limited`: 429 (or GitHub's 403 with `x-ratelimit-remaining: 0`).
 * - `app_misconfigured`: the provider rejected the App's own client id or secret.
 * - `bad_grant`: the provider rejected the code or refresh token (`bad_refresh_token`, `invalid_grant`).
 * - `unauthorized`: the API refused the user token (401).
 * - `not_found`: 404 (for a repository: missing, or not visible to this user token).
 * - `forbidden`: 403 that is not a rate limit; `ssoUrl` only for GitHub's SAML SSO.
 * - `invalid_request`: 422, the request itself is wrong (a permission name GitHub does not
 *   know); `detail` carries GitHub's reason, for the log only.
 */
export type ProviderError =
  | { kind: "unavailable"; retryAfterSeconds: number; detail: string }
  | { kind: "rate_limited"; retryAfterSeconds: number; detail: string }
  | { kind: "app_misconfigured"; detail: string }
  | { kind: "bad_grant"; code: string; detail: string }
  | { kind: "unauthorized"; detail: string }
  | { kind: "not_found"; detail: string }
  | { kind: "forbidden"; detail: string; ssoUrl?: string }
  | { kind: "invalid_request"; detail: string };

export type ProviderResult<T> = { ok: true; value: T } | { ok: false; error: ProviderError };

/**
 * Repository-scoped user tokens (GitHub's `POST /applications/{client_id}/token/scoped`): a
 * user token limited to one repository, derived from the user's token.
 */
export interface ScopedTokenMinter {
  /** A token for `repository` (and `permissions`, when given), expiring no later than `notAfter` (epoch ms, the broker's clock). */
  scopedToken(
    app: AppConfig,
    accessToken: string,
    repository: string,
    permissions: Record<string, string> | null,
    notAfter: number,
  ): Promise<ProviderResult<{ token: string; expiresAt: number }>>;
}

/** What the broker needs from a provider; one instance per actor call (it counts its requests). */
export interface Provider {
  readonly kind: ProviderKind;
  /** How messages for people name the provider ("GitHub", "GitLab"); reason codes stay the contract's. */
  readonly name: string;
  /** The provider's web root (`https://github.com`, a GitLab instance's `baseUrl`): git remotes and authorize pages live here. */
  readonly webUrl: string;
  /** Repository-scoped user tokens, where the provider has them; `null` where it has not. */
  readonly scopedTokens: ScopedTokenMinter | null;
  /** Whether the App can have installation tokens (a GitHub App's installation: src/installations/). */
  readonly installations: boolean;
  /**
   * The App the broker's git proxy path names (`/git/{appType}/{group/.../project}.git`), or
   * `null` for the path that names none (`/git/{owner}/{name}.git`, GitHub's).
   */
  readonly pathApp: string | null;
  /** What to tell the operator when an exchange issued no refresh token (the App's settings are wrong). */
  readonly noRefreshToken: string;
  /** Requests this client made: the `githubCalls` of a metric. */
  readonly calls: number;
  /**
   * Whether each authorization is its own token (GitLab): a reconnect of the same account
   * must revoke the previous pair, or it stays live and forgotten. GitHub has one grant per
   * user and App, so revoking it on a reconnect would kill the new tokens.
   */
  readonly separateAuthorizations: boolean;
  /** The browser's authorize URL, with PKCE S256 and the signed `state`. */
  authorizeUrl(app: AppConfig, state: string, codeChallenge: string, selectAccount: boolean): string;
  /** Exchanges an authorization code (with its PKCE verifier) for a token pair. */
  exchangeCode(app: AppConfig, code: string, codeVerifier: string): Promise<ProviderResult<TokenSet>>;
  /** Spends `refreshToken` for a new pair; both providers kill the old pair as they answer. */
  refresh(app: AppConfig, refreshToken: string): Promise<ProviderResult<TokenSet>>;
  /** The account of a user token (also the "is this token alive?" probe). */
  getUser(token: string): Promise<ProviderResult<ProviderUser>>;
  /** The user's own `push` / `pull` on a repository path (already validated for this provider). */
  getRepoPermissions(token: string, repository: string): Promise<ProviderResult<{ push: boolean; pull: boolean }>>;
  /** Revokes the user's authorization of the App (GitHub: the grant; GitLab: the token). */
  revokeGrant(app: AppConfig, accessToken: string): Promise<"revoked" | "already_gone" | "failed">;
  /** Revokes this one token, not the grant (where each authorization is its own token, the same as {@link revokeGrant}). */
  revokeToken(app: AppConfig, token: string): Promise<"revoked" | "already_gone" | "failed">;
  /** The repository's own git URL at the provider (`{webUrl}/{repository}.git`). */
  gitRemoteUrl(repository: string): string;
  /** The `authorization` header git presents upstream with `token`. */
  gitAuthorization(token: string): string;
  /** The broker's git proxy path for `repository` (after `PUBLIC_BASE_URL`). */
  proxyPath(repository: string): string;
  /** The user's git identity with the provider's no-reply address. */
  committer(user: { id: string; login: string; name: string | null }): Committer;
  /** Names the identity-index object of a provider account: `github:{id}`, `gitlab:{host}:{id}`. */
  identityKey(userId: string): string;
}
