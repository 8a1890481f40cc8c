/**
 * `POST /v1/installations/token`, transport-free: the HTTP route and the `BrokerApi` RPC
 * method both call {@link getInstallationToken}, which validates the body; the Worker's own
 * callers (the fallback of a user token, capabilities that act as the App) call
 * {@link installationToken} with input they have validated already. Either way the
 * installation actor of the repository's owner answers (see ./actor.ts for why the owner names it).
 */
import { callActor, installationActor } from "../actors";
import { withConfig, type BrokerConfig } from "../config";
import { failure, type InstallationTokenResult } from "../contract";
import { providerOf } from "../providers";
import { parseAppType, parseMinValidity, parseRepository, type Parsed } from "../validate";
import type { InstallationTokenInput } from "./actor";
import { parsePermissions } from "./permissions";

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

/** The body of `POST /v1/installations/token`. */
export function parseInstallationTokenRequest(config: BrokerConfig, body: unknown): Parsed<InstallationTokenInput> {
  const fields = body && typeof body === "object" && !Array.isArray(body) ? (body as Record<string, unknown>) : {};
  const app = parseAppType(config, fields.appType);
  if (!app.ok) return app;
  // A caller's mistake, not the operator's: installation tokens exist for GitHub Apps only.
  if (!providerOf(config, app.value).installations) return failure("invalid_request", `${app.value.appType} is not a GitHub App: installation tokens are a GitHub App feature`);
  const repository = parseRepository(config, fields.repository);
  if (!repository.ok) return repository;
  const permissions = parsePermissions(fields.permissions);
  if (!permissions.ok) return permissions;
  const minValidity = parseMinValidity(fields.minValiditySeconds);
  if (!minValidity.ok) return minValidity;
  return { ok: true, value: { appType: app.value.appType, repository: repository.value, permissions: permissions.value, minValiditySeconds: minValidity.value } };
}
