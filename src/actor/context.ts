/**
 * What one actor call works with: who, which App, the configuration, the keyring and the
 * provider of the call's App, built once per call. Configuration problems become
 * `app_misconfigured` here, so no module below has to care.
 */
import { catchingConfigErrors, loadConfig, type AppConfig, type BrokerConfig } from "../config";
import { failure, type Failure } from "../contract";
import { loadKeyring, type Keyring } from "../crypto";
import { providerOf, type Provider } from "../providers";

/** The configuration, keys and providers, without a user (the alarm has none). */
export interface ServiceContext {
  config: BrokerConfig;
  keyring: Keyring;
  /** The provider of any configured App, one per App (the grant revoker and the alarm serve every App). */
  providerFor(app: AppConfig): Provider;
}

/** A call on behalf of one user and one App. */
export interface CallContext extends ServiceContext {
  userId: string;
  app: AppConfig;
  /** The provider of `app`: what the actor's modules call for tokens, identity and permissions. */
  provider: Provider;
}

export async function serviceContext(env: Env): Promise<{ ok: true; value: ServiceContext } | Failure> {
  return catchingConfigErrors(async () => {
    const config = loadConfig(env);
    const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
    const providers = new Map<string, Provider>();
    const forApp = (app: AppConfig): Provider => {
      let p = providers.get(app.appType);
      if (!p) providers.set(app.appType, (p = providerOf(config, app)));
      return p;
    };
    return { ok: true as const, value: { config, keyring, providerFor: forApp } };
  });
}

export async function callContext(env: Env, userId: string, appType: string): Promise<{ ok: true; value: CallContext } | Failure> {
  const service = await serviceContext(env);
  if (!service.ok) return service;
  const app = service.value.config.apps.get(appType);
  if (!app) return failure("invalid_request", "unknown appType");
  return { ok: true, value: { ...service.value, userId, app, provider: service.value.providerFor(app) } };
}
