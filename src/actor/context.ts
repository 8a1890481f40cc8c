/**
 * What one actor call works with: who, which App, the configuration, the keyring and a
 * GitHub client, built once per call. Configuration problems become `app_misconfigured`
 * here, so no module below has to care.
 */
import { loadConfig, misconfigured, type AppConfig, type BrokerConfig } from "../config";
import { failure, type Failure } from "../contract";
import { ConfigError, loadKeyring, type Keyring } from "../crypto";
import { GitHubClient } from "../github";

/** The configuration, keys and GitHub client, without a user (the alarm has none). */
export interface ServiceContext {
  config: BrokerConfig;
  keyring: Keyring;
  github: GitHubClient;
}

/** A call on behalf of one user and one App. */
export interface CallContext extends ServiceContext {
  userId: string;
  app: AppConfig;
}

export async function serviceContext(env: Env): Promise<{ ok: true; value: ServiceContext } | Failure> {
  try {
    const config = loadConfig(env);
    const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
    return { ok: true, value: { config, keyring, github: new GitHubClient(config) } };
  } catch (err) {
    if (err instanceof ConfigError) return misconfigured(err);
    throw err;
  }
}

export async function callContext(env: Env, userId: string, appType: string): Promise<{ ok: true; value: CallContext } | Failure> {
  const service = await serviceContext(env);
  if (!service.ok) return service;
  const app = service.value.config.apps.get(appType);
  if (!app) return failure("invalid_request", "unknown appType");
  return { ok: true, value: { ...service.value, userId, app } };
}
