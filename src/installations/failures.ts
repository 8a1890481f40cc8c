/**
 * What the installation actor answers when GitHub says no: GitHub's App errors as the
 * contract's reasons. GitHub's own text goes to the log, never to the caller.
 */
import type { AppConfig } from "../config";
import { failure, type Failure } from "../contract";
import { logEvent } from "../log";
import type { AppCallError } from "./github-app";

/** The App is not installed on the repository's owner, not on the repository, or suspended. */
export function notInstalled(): Failure {
  return failure("not_installed", "The App is not installed on this repository, or its installation is suspended.");
}

/** An App call's failure as the contract's. GitHub's text goes to the log, never the caller. */
export function appFailure(app: Pick<AppConfig, "appType">, e: AppCallError): Failure {
  logEvent({ event: "installation_github", appType: app.appType, outcome: e.kind, detail: e.detail });
  switch (e.kind) {
    case "app_misconfigured":
      return failure("app_misconfigured", "GitHub rejected the App's JWT: check the App's private key and client id.");
    case "unprocessable":
      return failure("no_repo_access", "The App's installation does not grant these permissions on this repository.");
    case "rate_limited":
      return failure("rate_limited", "GitHub rate-limited the App.", e.retryAfterSeconds);
    case "unavailable":
      return failure("github_unavailable", "GitHub could not be reached; try again.", e.retryAfterSeconds);
    default:
      return failure("github_unavailable", "GitHub gave an unexpected answer; try again.", 5);
  }
}
