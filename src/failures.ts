/**
 * Where a failure gets its contract reason: every provider error kind and every unusable
 * connection state maps to exactly one {@link Failure}, in exhaustive switches, so a new
 * error kind is a compile error here instead of silently becoming an outage. (How a failure
 * becomes an HTTP response is `http/respond.ts`.) The reasons are the contract's whatever
 * the provider; the messages name it (`who`: "GitHub", "GitLab").
 */
import { FALLBACK_REASONS, failure, type Failure } from "./contract";
import type { ProviderError } from "./providers/provider";

/** A provider error met while using the user's token (refresh, `/user`, a repository check). */
export function providerFailure(error: ProviderError, who: string): Failure {
  switch (error.kind) {
    case "rate_limited":
      return failure("rate_limited", `${who} rate-limited the user's token.`, error.retryAfterSeconds);
    case "app_misconfigured":
      return failure("app_misconfigured", `${who} rejected the App's client credentials; the user's tokens are kept.`);
    case "unavailable":
      return failure("github_unavailable", `${who} did not answer in time; the stored tokens are untouched.`, error.retryAfterSeconds);
    case "bad_grant":
      return failure("reconnect_required", `${who} rejected the user's authorization; they need to reconnect.`);
    case "unauthorized":
      return failure("reconnect_required", `${who} no longer accepts the user's token; they need to reconnect.`);
    case "not_found":
      return failure("no_repo_access", `${who} refused the user's token for this resource.`);
    case "forbidden":
      return error.ssoUrl ? ssoFailure(error.ssoUrl) : failure("no_repo_access", `${who} refused the user's token for this resource.`);
    case "invalid_request":
      // The caller's request, not the user's access: never a reason to fall back to the App.
      return failure("invalid_request", `${who} refused the request as invalid (for example a permission it does not know).`);
    default:
      return unreachable(error);
  }
}

/**
 * `no_repo_access` because the organisation enforces SAML SSO and the user's authorization
 * is not approved for it: `ssoUrl` is where the person approves it (GitHub's own page).
 */
export function ssoFailure(ssoUrl: string): Failure {
  return {
    ...failure("no_repo_access", "The organisation enforces SAML single sign-on; the user must authorize this App for it at ssoUrl, then try again."),
    ssoUrl,
  };
}

/** A provider error met while finishing a connect (`connect/confirm`). */
export function exchangeFailure(error: ProviderError, who: string): Failure {
  switch (error.kind) {
    case "bad_grant":
      return failure("exchange_failed", `${who} refused the authorization code (expired, used, or issued for another verifier).`);
    case "unauthorized":
    case "not_found":
    case "forbidden":
    case "invalid_request":
      return failure("exchange_failed", `${who} refused the new token when reading the user's identity.`);
    case "rate_limited":
    case "unavailable":
      return failure("github_unavailable", `${who} did not answer in time; start the connect again.`, error.retryAfterSeconds);
    case "app_misconfigured":
      return failure("app_misconfigured", `${who} rejected the App's client credentials.`);
    default:
      return unreachable(error);
  }
}

/** The connection changed (a refresh, a reconnect, a disconnect) under every attempt at an answer: retryable at once. */
export const CONNECTION_CHANGED: Failure = failure("github_unavailable", "The connection changed while the broker was answering; try again.", 1);

/** A connect ticket that cannot confirm: unknown, used, expired, or another user's (they are told apart to no one). */
export const INVALID_TICKET: Failure = failure("invalid_ticket", "The connect ticket is unknown, used, expired, or was issued for another user.");

/** A capability the actor does not hold, or not for this container: told apart to no one. */
export const UNKNOWN_CAPABILITY: Failure = failure("invalid_capability", "Unknown or revoked capability.");

/** The connection changed under every round of a lifecycle step (a reconnect, a disconnect): retryable at once. */
export const CONNECTION_KEPT_CHANGING: Failure = failure("github_unavailable", "The connection kept changing; try again.", 1);

/** The broker's own bug (an unhandled throw): logged where it happened, never described to the caller. */
export const INTERNAL_ERROR: Failure = failure("internal_error", "The broker hit an internal error; it was logged.");

/** A path that names an App the configuration does not have. */
export const UNKNOWN_APP_TYPE: Failure = failure("invalid_request", "Unknown appType.");

/** A call that names another user than the one the actor serves (a caller's bug, never served). */
export const OWNER_MISMATCH: Failure = failure("invalid_request", "userId does not match this actor");

/** A stored value names an encryption key the broker no longer holds: the operator's to fix. */
export function missingKeyFailure(): Failure {
  return failure(
    "app_misconfigured",
    "A stored value is sealed under an encryption key that TOKEN_ENCRYPTION_KEYS no longer holds; the tokens are kept until the key is back.",
  );
}

function unreachable(value: never): never {
  throw new Error(`unhandled case: ${JSON.stringify(value)}`);
}

/** The failure for a connection that cannot give a token, or `null` when it is connected. */
export function unusableFailure(row: { status: string; access_token: string | null } | null, who: string): Failure | null {
  if (!row) return failure("not_connected", `The user has not connected this ${who} App.`);
  if (row.status === "revoked") return failure("revoked", `The user revoked the App's authorization on ${who}; they need to reconnect.`);
  if (row.status === "reconnect_required" || row.access_token === null) {
    return failure("reconnect_required", `The user's ${who} connection expired or was rejected; they need to reconnect.`);
  }
  return null;
}

/** `f`'s reason when it is one the App may stand in for ({@link FALLBACK_REASONS}), else `null`. */
export function fallbackReasonOf(f: Failure): (typeof FALLBACK_REASONS)[number] | null {
  return (FALLBACK_REASONS as readonly string[]).includes(f.reason) ? (f.reason as (typeof FALLBACK_REASONS)[number]) : null;
}
