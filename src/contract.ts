/**
 * The broker's public contract as types: every status, reason code and response shape that
 * callers (agent sessions, the web app, operators) rely on. The code and the tests both use
 * these, so a change here is a change to the contract (`../shared/contract.md`).
 */

/** HTTP status for each failure reason. The keys are the complete set of reason codes. */
export const REASON_STATUS = {
  invalid_request: 400,
  unauthorized: 401,
  not_connected: 404,
  revoked: 409,
  reconnect_required: 409,
  no_repo_access: 403,
  rate_limited: 429,
  github_unavailable: 503,
  app_misconfigured: 503,
  /** `connect/confirm`: the ticket is unknown, used, older than 5 minutes, or another user's. */
  invalid_ticket: 400,
  /** `connect/confirm`: GitHub refused the code, or the App issues no expiring user tokens. */
  exchange_failed: 502,
  /**
   * Not in the contract's table: a Durable Object call failed in transit (the object was
   * reset or overloaded) even after one retry. Retrying is safe; `retryAfterSeconds` is set.
   */
  broker_unavailable: 503,
  /** Not in the contract's table: the broker's own bug. Never used for a GitHub failure. */
  internal_error: 500,
  /** Installation tokens: the App is not installed on the owner, or not on that repository, or suspended. */
  not_installed: 404,
} as const;

/**
 * Reasons of the session-capability routes (`/v1/.../capabilities`, the git proxy `/git/...`
 * and the REST proxy `/api/repos/...`), on top of {@link REASON_STATUS}.
 */
export const CAPABILITY_REASON_STATUS = {
  /** Missing, malformed, unknown or revoked capability. */
  invalid_capability: 401,
  expired_capability: 401,
  /** The capability is bound to another repository. */
  repository_mismatch: 403,
  /** A push (or a REST write) with a `pull` capability. */
  insufficient_permission: 403,
  /** Not a git smart-HTTP path or an allowed REST path. */
  invalid_upstream_request: 404,
  /** The user's connection is gone (revoked, disconnected, deleted, another account). */
  source_unavailable: 410,
  /** The GitHub-shaped surface: a ref write (or a merge) outside the session's branches. */
  branch_not_allowed: 403,
  /** The GitHub-shaped surface: a call or GraphQL operation outside what a session may do. */
  operation_not_allowed: 403,
} as const;

export type CapabilityReason = keyof typeof CAPABILITY_REASON_STATUS;

/** A stable, machine-readable failure reason. `message` is for people; this is for code. */
export type Reason = keyof typeof REASON_STATUS | CapabilityReason;

/** Every error body the broker sends, over HTTP and over RPC alike. */
export interface Failure {
  ok: false;
  reason: Reason;
  message: string;
  /** Set for `rate_limited` and `github_unavailable`: when trying again makes sense. */
  retryAfterSeconds?: number;
  /**
   * Set on `no_repo_access` when GitHub said the organisation enforces SAML SSO and the
   * user's authorization is not yet approved for it (`X-GitHub-SSO: required; url=...`): the
   * web app sends the person there, then tries again.
   */
  ssoUrl?: string;
}

/** Builds a {@link Failure}. `message` must never contain a token, code or secret. */
export function failure(reason: Reason, message: string, retryAfterSeconds?: number): Failure {
  return retryAfterSeconds === undefined
    ? { ok: false, reason, message }
    : { ok: false, reason, message, retryAfterSeconds };
}

/**
 * The state of one user's connection to one GitHub App.
 * - `not_connected`: never connected, or disconnected ("Connect").
 * - `connected`: tokens stored and usable.
 * - `revoked`: the user revoked the App's authorization on GitHub ("Reconnect").
 * - `reconnect_required`: the refresh token expired, was rejected or could not be
 *   decrypted ("Reconnect").
 */
export type ConnectionStatus = "not_connected" | "connected" | "revoked" | "reconnect_required";

/** Why a connection is `revoked` or `reconnect_required`. */
export type ConnectionReason =
  | "user_revoked"
  | "refresh_token_expired"
  | "refresh_token_rejected"
  | "undecryptable"
  | "no_refresh_token";

/** `GET /v1/users/{userId}/connection`. Times are RFC 3339 UTC (`2026-11-22T10:00:00Z`). */
export interface ConnectionView {
  status: ConnectionStatus;
  githubUserId?: string;
  githubLogin?: string;
  accessTokenExpiresAt?: string;
  refreshTokenExpiresAt?: string;
  connectedAt?: string;
  updatedAt?: string;
  revokedAt?: string;
  reason?: ConnectionReason;
}

/** The git identity of the user: commits made with it are attributed to them on GitHub. */
export interface Committer {
  /** GitHub display name, or the login where there is none. */
  name: string;
  /** `{githubUserId}+{login}@users.noreply.github.com`. */
  email: string;
}

/** A checked user access token for one repository. */
export interface TokenGrant {
  ok: true;
  /** Whose identity the token carries: the user's (`user`) or the App installation's (`app`). */
  identity: "user";
  token: string;
  expiresAt: string;
  /**
   * The token's remaining life in seconds when the answer was made. A caller whose clock may
   * differ from the broker's schedules its refresh from this, not from `expiresAt`.
   */
  expiresInSeconds: number;
  /** GitHub's numeric user id, as a decimal string. */
  githubUserId: string;
  githubLogin: string;
  committer: Committer;
  /** `repository` when the request asked for `scope: "repository"`: the token reaches that repository only. */
  scope?: "repository";
  /** With `scope`: the one repository the token reaches (`owner/name`). */
  repository?: string;
  /** With `scope`, when the request limited them: the token's GitHub permissions. */
  permissions?: Record<string, string>;
}

export type TokenResult = TokenGrant | Failure;

/** The repository permission a caller asks for; `push` by default. */
export type Permission = "push" | "pull";

/**
 * What revoking the grant at GitHub achieved.
 * - `revoked`: GitHub deleted the grant.
 * - `already_gone`: GitHub said it was gone (404/422), or the broker held no usable token
 *   for it (the connection was revoked or `reconnect_required`).
 * - `pending`: GitHub could not be reached. The broker keeps the sealed tokens it needs and
 *   retries from the actor's alarm until GitHub confirms or the tokens have expired; it never
 *   forgets a live grant.
 */
export type GrantOutcome = "revoked" | "already_gone" | "pending";

export interface ConnectStarted {
  ok: true;
  authorizeUrl: string;
  /** When the authorize URL (its `state`) stops being accepted. */
  expiresAt: string;
}

/** `POST /v1/users/{userId}/connect/confirm`: the connection the ticket completed. */
export interface ConnectConfirmed {
  ok: true;
  status: "connected";
  appType: string;
  githubUserId: string;
  githubLogin: string;
}

export interface Disconnected {
  ok: true;
  status: "not_connected";
  githubGrant: GrantOutcome;
}

export interface UserDeleted {
  ok: true;
  deleted: true;
  githubGrants: Record<string, GrantOutcome>;
}

/**
 * `github_connect=error&reason=<code>` on the redirect after the OAuth callback:
 * - `access_denied`: the person cancelled on GitHub's consent screen (or GitHub reported any
 *   other authorization error, whose text goes to the log only);
 * - `invalid_state`: the state's connect is unknown or was already used;
 * - `expired_state`: the authorize URL was older than 10 minutes.
 */
export type CallbackErrorCode = "access_denied" | "invalid_state" | "expired_state";

/** Request bodies of the internal API, as callers send them (validated on arrival). */
export interface TokenRequest {
  appType: string;
  /** `owner/name`, or `https://github.com/owner/name(.git)` on the configured host. */
  repository: string;
  permission?: Permission;
  /** Default 300, at most 3600. */
  minValiditySeconds?: number;
  /** `repository`: a token minted for this repository only (`/applications/{client_id}/token/scoped`). */
  scope?: "repository";
  /** With `scope`: GitHub permission names to `read` / `write` (`{"contents": "write"}`). */
  permissions?: Record<string, string>;
  /** `app`: where only the user could fix the failure, answer an installation token instead. */
  fallback?: "app";
}

export interface RejectedTokenReport {
  appType: string;
  token: string;
}

export interface ConnectRequest {
  appType: string;
  returnTo: string;
  /** Adds `prompt=select_account`, so a person signed in to several GitHub accounts picks one. */
  selectAccount?: boolean;
}

export interface ConnectConfirmRequest {
  /** The `connect_ticket` the callback put on `returnTo`. */
  ticket: string;
}

/** `GET /v1/users/{userId}/audit?limit=&before=` (query) and `BrokerApi.getAudit`'s options. */
export interface AuditQuery {
  /** Entries per page: 1 to 500, default 50. */
  limit?: number;
  /** The `nextBefore` of the previous page; absent for the newest. */
  before?: number;
}

export interface CapabilityRequest {
  appType: string;
  repository: string;
  /** The agent session it is for; `DELETE .../capabilities/{sessionId}` revokes it early. */
  sessionId: string;
  permission?: Permission;
  /** Default 3600, 1 to 28800; never past the refresh token's expiry. */
  ttlSeconds?: number;
  /**
   * Ref patterns the session may push to (`agent/*`, `feature/login`, `refs/tags/v*`; `*`
   * within a segment, `**` across). Default `["**"]`: every branch, and no tag.
   */
  branches?: string[];
  /** Whether the session may delete refs (that match `branches`). Default false. */
  allowDelete?: boolean;
  /** Whose identity the session pushes with; default `user`. See {@link CapabilityIdentity}. */
  identity?: CapabilityIdentity;
  /** Binds it to one container: redeemed only by that container's egress handler (docs/egress.md). */
  containerId?: string;
}

/**
 * Whose token a capability's proxied requests carry. `user`: the user's, while the connection it
 * was issued under lasts (then `source_unavailable`). `app`: the App's installation token (GitHub
 * Apps only; no connection needed). `user_or_app`: the user's while they can lend it, the App's
 * from the moment they cannot (revoked, disconnected, reconnect required, reconnected as someone
 * else); issued while they cannot, the App's for its whole life. Outages are never masked.
 */
export type CapabilityIdentity = "user" | "app" | "user_or_app";

export interface CapabilityGrant {
  ok: true;
  capability: string;
  expiresAt: string;
  /** `${PUBLIC_BASE_URL}/git/{owner}/{repo}.git` (the capability is the HTTP password); bound: the provider's own URL. */
  gitRemoteUrl: string;
  /** The container it is bound to, as asked. */
  containerId?: string;
  /** The push policy as stored: the patterns (default `["**"]`) and `allowDelete`. */
  branches: string[];
  allowDelete: boolean;
  /** As asked ({@link CapabilityIdentity}); each proxied response says which one it used (`X-Broker-Identity`). */
  identity: CapabilityIdentity;
  /** Who to author commits as: the user (issued under their connection), else the App's bot. */
  committer: Committer;
  /** `app`, `user_or_app`: the user, where known, for a `Co-authored-by:` trailer when the bot pushes. */
  coAuthor?: Committer;
  /** `user_or_app` issued while the user could not lend their token: why it starts out as the App. */
  fallbackReason?: (typeof FALLBACK_REASONS)[number];
}

// ---- installation tokens (`POST /v1/installations/token`) ----

/** Which GitHub identity a token or a proxied request acts as: the user's, or the App's bot. */
export type Identity = "user" | "app";

/**
 * GitHub App permissions an installation token is scoped to: permission name → level. Only
 * repository permissions (an installation token here is always for one repository).
 */
export type InstallationPermissions = Record<string, "read" | "write">;

/** The scope of an installation token when the caller names none: push code, open pull requests. */
export const DEFAULT_INSTALLATION_PERMISSIONS: Readonly<InstallationPermissions> = Object.freeze({
  contents: "write",
  pull_requests: "write",
});

export interface InstallationTokenRequest {
  appType: string;
  /** `owner/name`, or a clone URL of it on the configured host. */
  repository: string;
  /** Default {@link DEFAULT_INSTALLATION_PERMISSIONS}. */
  permissions?: InstallationPermissions;
  /** Default 300, at most 3600. */
  minValiditySeconds?: number;
}

/** An installation token for one repository, minted by the broker with the App's private key. */
export interface InstallationTokenGrant {
  ok: true;
  identity: "app";
  token: string;
  expiresAt: string;
  /** Remaining life when the answer was made, on the broker's clock. */
  expiresInSeconds: number;
  /** GitHub's numeric installation id, as a decimal string (like `githubUserId`). */
  installationId: string;
  /** `owner/name`. */
  repository: string;
  /** What GitHub granted the token (never more than was asked). */
  permissions: InstallationPermissions;
  /** The App's bot: `<slug>[bot]`, `<botUserId>+<slug>[bot]@users.noreply.github.com`. */
  committer: Committer;
}

export type InstallationTokenResult = InstallationTokenGrant | Failure;

/** The failures of a user token that only the user can fix: the ones `fallback: "app"` covers. */
export const FALLBACK_REASONS = ["not_connected", "revoked", "reconnect_required", "no_repo_access"] as const;

/**
 * `POST /v1/users/{userId}/token` with `fallback: "app"` when the user's token could not be
 * given for one of {@link FALLBACK_REASONS}: an installation token, and why.
 */
export interface AppFallbackGrant extends InstallationTokenGrant {
  fallbackReason: (typeof FALLBACK_REASONS)[number];
  /** The user's GitHub identity, where known, for a `Co-authored-by:` trailer. */
  coAuthor?: Committer;
}

/** What `/token` answers: the user's token, an App fallback (only when asked), or a failure. */
export type UserTokenResult = TokenResult | AppFallbackGrant;

/** HTTP status for any reason, contract or capability. */
export function statusOf(reason: Reason): number {
  return reason in REASON_STATUS ? REASON_STATUS[reason as keyof typeof REASON_STATUS] : CAPABILITY_REASON_STATUS[reason as CapabilityReason];
}

/** Formats epoch milliseconds as RFC 3339 UTC with whole seconds and a `Z`. */
export function rfc3339(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace(".000Z", "Z");
}

/**
 * A change of a connection's state, POSTed to `EVENTS_URL` (signed, at least once, in order
 * per user, the same `id` on every retry). An account deletion sends one `deleted` per
 * connection it removed and no `disconnected`.
 */
export type ConnectionEventType = "connected" | "disconnected" | "revoked" | "reconnect_required" | "deleted";

export interface ConnectionEvent {
  /** Unique per event, kept across retries: deduplicate on it. */
  id: string;
  type: ConnectionEventType;
  userId: string;
  appType: string;
  githubUserId?: string;
  /** For `revoked` and `reconnect_required`: the {@link ConnectionReason}. */
  reason?: ConnectionReason;
  /** When the state changed, RFC 3339 UTC. */
  at: string;
}

/** What an audit entry records. */
export type AuditKind =
  | "connected"
  | "disconnected"
  | "deleted"
  | "revoked"
  | "reconnect_required"
  | "refresh"
  | "token_issued"
  | "capability_issued"
  | "capability_revoked"
  | "capability_redeemed";

/** One entry of `GET /v1/users/{userId}/audit`. Never a token, code or secret. */
export interface AuditEntry {
  id: number;
  at: string;
  kind: AuditKind;
  appType: string | null;
  /** Facts of the entry: repository, identity, scope, sessionId, service, refs, outcome, reason, githubUserId. */
  detail: Record<string, string | number | boolean | string[]>;
  /** Hand-outs and fetches of one kind within one minute are one entry; how many it stands for. */
  count: number;
}

export interface AuditPage {
  ok: true;
  entries: AuditEntry[];
  /** Pass as `before` for the next (older) page; absent on the last page. */
  nextBefore?: number;
}
