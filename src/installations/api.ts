/**
 * `POST /v1/installations/token`, transport-free: the HTTP route and the `BrokerApi` RPC
 * method both call {@link getInstallationToken}. Validates the input and asks the
 * installation actor of the repository's owner (see ./actor.ts for why the owner names it).
 */
import { callActor } from "../api";
import { loadConfig, misconfigured } from "../config";
import { failure, type InstallationTokenResult } from "../contract";
import { ConfigError } from "../crypto";
import { providerOf } from "../providers";
import { parseAppType, parseMinValidity, parseRepository } from "../validate";
import type { InstallationActor } from "./actor";
import { parsePermissions } from "./permissions";

/** The installation actor for `owner` (any case) of the App `appType`. */
export function installationActor(env: Env, appType: string, owner: string): DurableObjectStub<InstallationActor> {
  return env.INSTALLATION_ACTOR.get(env.INSTALLATION_ACTOR.idFromName(`${appType}/${owner.toLowerCase()}`));
}

/** An installation token for one repository, scoped to `permissions` (the contract's default when absent). */
export async function getInstallationToken(env: Env, body: unknown): Promise<InstallationTokenResult> {
  try {
    const config = loadConfig(env);
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
    const owner = repository.value.split("/")[0]!;
    return await callActor(
      async (): Promise<InstallationTokenResult> =>
        await installationActor(env, app.value.appType, owner).token({
          appType: app.value.appType,
          repository: repository.value,
          permissions: permissions.value,
          minValiditySeconds: minValidity.value,
        }),
    );
  } catch (err) {
    if (err instanceof ConfigError) return misconfigured(err);
    throw err;
  }
}
