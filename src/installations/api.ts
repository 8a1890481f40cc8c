/**
 * `POST /v1/installations/token`, transport-free: the HTTP route and the `BrokerApi` RPC
 * method both call {@link getInstallationToken}, which parses the body (http/requests.ts); the Worker's own
 * callers (the fallback of a user token, capabilities that act as the App) call
 * {@link installationToken} with input they have validated already. Either way the
 * installation actor of the repository's owner answers (see ./actor.ts for why the owner names it).
 */
import { callActor, installationActor } from "../actors";
import { withConfig } from "../config";
import type { InstallationTokenResult } from "../contract";
import { parseInstallationTokenRequest } from "../http/requests";
import type { InstallationTokenInput } from "./actor";

/** An installation token for one repository, scoped to `permissions` (the contract's default when absent). */
export function getInstallationToken(env: Env, body: unknown): Promise<InstallationTokenResult> {
  return withConfig(env, async (config) => {
    const input = parseInstallationTokenRequest(config, body);
    return input.ok ? installationToken(env, input.value) : input;
  });
}

/** The installation token for validated input (an App with installations, a GitHub `owner/name`, canonical permissions). */
export function installationToken(env: Env, input: InstallationTokenInput): Promise<InstallationTokenResult> {
  const owner = input.repository.split("/")[0]!;
  return callActor(async (): Promise<InstallationTokenResult> => await installationActor(env, input.appType, owner).token(input));
}
