/**
 * `POST /v1/installations/token`, transport-free: the HTTP route and the `BrokerApi` RPC
 * method both call {@link getInstallationToken}, which parses the body (http/requests.ts); the Worker's own
 * callers (the fallback of a user token, capabilities that act as the App) call
 * {@link installationToken} with input they have validated already. Either way the
 * installation actor of the repository's owner answers (see ./actor.ts for why the owner names it).
 */
import { callActor, installationActor } from "../actors";
import { withConfig } from "../config";
import type { Failure, InstallationTokenGrant, InstallationTokenResult } from "../contract";
import { parseInstallationTokenRequest } from "../http/requests";
import { parseJsonText, type JsonText } from "../json-text";
import type { InstallationTokenInput } from "./actor";

/** What {@link getInstallationToken} answers: a grant as the actor's JSON text, or a failure. */
export type InstallationTokenAnswer = JsonText<InstallationTokenGrant> | Failure;

/**
 * An installation token for one repository, scoped to `permissions` (the contract's default
 * when absent). A grant stays the JSON text the actor sent (the HTTP answer as it is); RPC
 * callers parse it ({@link installationTokenResult}).
 */
export function getInstallationToken(env: Env, body: unknown): Promise<InstallationTokenAnswer> {
  return withConfig(env, async (config) => {
    const input = parseInstallationTokenRequest(config, body);
    if (!input.ok) return input;
    return callActor(async () => await actorFor(env, input.value).tokenText(input.value));
  });
}

/** {@link getInstallationToken}'s answer as the contract's result. */
export function installationTokenResult(answer: InstallationTokenAnswer): InstallationTokenResult {
  return typeof answer === "string" ? parseJsonText(answer) : answer;
}

/** The installation token for validated input (an App with installations, a GitHub `owner/name`, canonical permissions). */
export function installationToken(env: Env, input: InstallationTokenInput): Promise<InstallationTokenResult> {
  return callActor(async (): Promise<InstallationTokenResult> => await actorFor(env, input).token(input));
}

/** The installation actor that answers for the input's repository: its owner's. */
function actorFor(env: Env, input: InstallationTokenInput) {
  return installationActor(env, input.appType, input.repository.split("/")[0]!);
}
