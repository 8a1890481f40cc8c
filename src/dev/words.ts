/**
 * Human words for every code the demo can show: each failure reason, each connection reason,
 * each callback error, and the demo's own outcomes. Typed as a `Record` over the unions in
 * contract.ts, so a new reason code fails the type check until it has words here.
 *
 * Written for GitHub; the page says them for GitLab by {@link forProvider}. `invalid_request`
 * is followed by the broker's own message, which names the field at fault (the repository,
 * a branch pattern, ...), so the words never guess which one it was.
 */
import type { CallbackErrorCode, ConnectionReason, Reason } from "../contract";

/** The demo's own outcomes of the web app's confirmation step (`/demo/return`). */
export type DemoOutcome = "connected" | "not_started_here" | "ticket_not_valid" | "disconnected";

export const WORDS: Record<Reason | ConnectionReason | CallbackErrorCode | DemoOutcome, string> = {
  // contract reasons
  invalid_request: "the request was not valid",
  unauthorized: "the caller is not allowed to use the broker's API",
  not_connected: "this user has not connected GitHub",
  revoked: "the user revoked the App on GitHub; they need to reconnect",
  reconnect_required: "GitHub no longer accepts the stored tokens; the user needs to reconnect",
  no_repo_access: "the GitHub account cannot reach that repository with that permission",
  not_installed: "the App is not installed on that repository",
  rate_limited: "GitHub is rate-limiting this user; try again shortly",
  github_unavailable: "GitHub could not be reached; nothing was changed, try again",
  app_misconfigured: "the broker's GitHub App settings are wrong; an operator has to fix them",
  invalid_ticket: "this connection link expired or was already used; nothing was connected",
  exchange_failed: "GitHub refused to complete the connection",
  broker_unavailable: "the broker was briefly unavailable; try again",
  internal_error: "the broker hit an internal error",
  // capability reasons
  invalid_capability: "the session capability is unknown or was revoked",
  expired_capability: "the session capability has expired",
  repository_mismatch: "the session capability is for another repository",
  insufficient_permission: "the session capability only allows reading",
  invalid_upstream_request: "that request is not allowed through the proxy",
  branch_not_allowed: "that branch is outside the session's branches",
  operation_not_allowed: "that call is not among what a session may do",
  source_unavailable: "the user's GitHub connection behind this capability is gone",
  // connection reasons
  user_revoked: "you revoked the App on GitHub",
  refresh_token_expired: "the refresh token expired (about six months without use)",
  refresh_token_rejected: "GitHub no longer accepts the stored refresh token",
  undecryptable: "the stored tokens could not be decrypted",
  no_refresh_token: "GitHub issued no refresh token (the App must expire user tokens)",
  // callback errors
  access_denied: "you cancelled on GitHub's consent screen; nothing was connected",
  invalid_state: "the connection link was not valid or was already used; start again",
  expired_state: "the connection link expired (10 minutes); start again",
  // demo outcomes
  connected: "GitHub connected",
  // The broker cannot tell an expired or used ticket from another user's: both are
  // `invalid_ticket`. This browser did not start a connect (no cookie), so the link came from
  // elsewhere or from an old tab: said without accusing anyone.
  not_started_here:
    "This connection link expired, was already used, or was not started from this browser. Nothing was connected and your account is unchanged. Only finish connections you started here yourself; click Connect to start one.",
  ticket_not_valid: "This connection link expired or was already used. Nothing was connected; click Connect again.",
  disconnected: "Disconnected",
};

/**
 * The same words for another provider: "GitHub" becomes its name and "the App" GitLab's
 * "application", so the GitLab card speaks like the GitHub one without a second table.
 */
export function forProvider(text: string, provider: string): string {
  if (provider === "GitHub") return text;
  return text.replaceAll("GitHub", provider).replace(/\bthe App\b/g, "the application");
}
