/**
 * The broker's configuration, read from the Worker's `env` once per isolate.
 * Names and meanings are fixed by the contract (docs/configuration.md).
 */
import { failure, type Failure } from "./contract";
import { ConfigError } from "./crypto";
import { logEvent } from "./log";

/** Which provider serves an App (src/providers/ implements each). */
export type ProviderKind = "github" | "gitlab";

/** One configured App: a GitHub App (`GITHUB_APPS`) or a GitLab OAuth application (`GITLAB_APPS`). */
export interface AppConfig {
  appType: string;
  /** Which provider serves it; the actor works the same either way (providers/provider.ts). */
  provider: ProviderKind;
  /** GitLab only: the instance's origin (`https://gitlab.com`, a self-managed host), no trailing slash. */
  baseUrl?: string;
  /** GitLab only: the OAuth `scope`, space-separated (default {@link GITLAB_DEFAULT_SCOPES}). */
  scopes?: string;
  clientId: string;
  /** `GITHUB_CLIENT_SECRET_<APPTYPE>` (`GITLAB_CLIENT_SECRET_<APPTYPE>`); empty when unset (the App then answers `app_misconfigured`). */
  clientSecret: string;
  /** `GITHUB_WEBHOOK_SECRET_<APPTYPE>`, split on commas (several during a rotation). */
  webhookSecrets: string[];
  /** `GITHUB_APPS[*].appId`: the App's numeric id (informational; the App JWT uses the client id). */
  appId?: string;
  /** `GITHUB_APPS[*].slug`: the bot's login is `<slug>[bot]`. Needed for installation tokens. */
  slug?: string;
  /** `GITHUB_APPS[*].botUserId`: the bot user's numeric id (`GET /users/<slug>[bot]`). */
  botUserId?: string;
  /**
   * `GITHUB_APP_PRIVATE_KEY_<APPTYPE>` (PEM, PKCS#1 or PKCS#8); empty or absent when unset, which
   * turns installation tokens off for this App. Read only by src/installations/app-jwt.ts.
   */
  privateKey?: string;
}

export interface BrokerConfig {
  apps: ReadonlyMap<string, AppConfig>;
  /** `GITHUB_WEB_URL` without a trailing slash: authorize and token endpoints. */
  webUrl: string;
  /** `GITHUB_API_URL` without a trailing slash. */
  apiUrl: string;
  /** `PUBLIC_BASE_URL` without a trailing slash. */
  publicBaseUrl: string;
  /** The callback GitHub redirects to: `${publicBaseUrl}/oauth/callback`. */
  callbackUrl: string;
  allowedReturnOrigins: ReadonlySet<string>;
  /** Bound on every call to GitHub (`GITHUB_TIMEOUT_MS`, default 10 000). */
  githubTimeoutMs: number;
  /**
   * `AGENT_HOST`, lower-cased (`host` or `host:port`): the host on which the Worker answers
   * GitHub's own URL shapes for session capabilities (src/surface/); `null` when unset.
   */
  agentHost: string | null;
}

/** The environment as the broker reads it: vars, secrets and bindings by name. */
export type BrokerEnv = Env & Record<string, unknown>;

/**
 * The answer to a broken configuration: logged for the operator (the message names the
 * setting, never its value), reported to the caller as `app_misconfigured`.
 */
export function misconfigured(err: ConfigError): Failure {
  logEvent({ event: "config_error", level: "error", detail: err.message });
  return failure("app_misconfigured", "The broker is misconfigured; an operator has to fix it.");
}

/** {@link misconfigured} for a thrown {@link ConfigError}; `null` for anything else. */
export function configFailure(err: unknown): Failure | null {
  return err instanceof ConfigError ? misconfigured(err) : null;
}

/** `fn`'s answer; a {@link ConfigError} it throws is {@link misconfigured}, anything else is thrown on. */
export async function catchingConfigErrors<T>(fn: () => T | Promise<T>): Promise<T | Failure> {
  try {
    return await fn();
  } catch (err) {
    const failed = configFailure(err);
    if (failed) return failed;
    throw err;
  }
}

/** Runs `fn` with the parsed configuration; a broken configuration is the operator's problem ({@link misconfigured}). */
export function withConfig<T>(env: Env, fn: (config: BrokerConfig) => Promise<T | Failure>): Promise<T | Failure> {
  return catchingConfigErrors(() => fn(loadConfig(env)));
}

const APP_TYPE = /^[a-z][a-z0-9_]{0,31}$/;

/** What a GitLab App asks for unless `GITLAB_APPS[*].scopes` says otherwise: identity, git push, the projects API. */
export const GITLAB_DEFAULT_SCOPES = "read_user write_repository api";

const cache = new WeakMap<object, BrokerConfig>();

/** Parses the configuration; throws {@link ConfigError} with an operator-readable message. */
export function loadConfig(env: Env): BrokerConfig {
  let config = cache.get(env);
  if (!config) {
    config = parse(env as BrokerEnv);
    cache.set(env, config);
  }
  return config;
}

function parse(env: BrokerEnv): BrokerConfig {
  let appsJson: unknown;
  try {
    appsJson = typeof env.GITHUB_APPS === "string" ? JSON.parse(env.GITHUB_APPS) : env.GITHUB_APPS;
  } catch {
    throw new ConfigError("GITHUB_APPS is not valid JSON");
  }
  if (!appsJson || typeof appsJson !== "object") throw new ConfigError("GITHUB_APPS must be an object");
  const apps = new Map<string, AppConfig>();
  for (const [appType, value] of Object.entries(appsJson as Record<string, unknown>)) {
    const clientId = (value as { clientId?: unknown } | null)?.clientId;
    if (!APP_TYPE.test(appType) || typeof clientId !== "string" || !clientId) {
      throw new ConfigError(`GITHUB_APPS: entry "${appType}" needs a lowercase name and a clientId`);
    }
    const suffix = appType.toUpperCase();
    const { appId, slug, botUserId } = installationFields(appType, value as Record<string, unknown>);
    apps.set(appType, {
      appType,
      clientId,
      provider: "github",
      clientSecret: str(env[`GITHUB_CLIENT_SECRET_${suffix}`]),
      webhookSecrets: str(env[`GITHUB_WEBHOOK_SECRET_${suffix}`])
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean),
      appId,
      slug,
      botUserId,
      privateKey: str(env[`GITHUB_APP_PRIVATE_KEY_${suffix}`]),
    });
  }
  parseGitLabApps(env, apps);
  const publicBaseUrl = parsePublicBaseUrl(env.PUBLIC_BASE_URL);
  const timeout = Number(str(env.GITHUB_TIMEOUT_MS) || 10_000);
  return {
    apps,
    webUrl: trimSlash(str(env.GITHUB_WEB_URL) || "https://github.com"),
    apiUrl: trimSlash(str(env.GITHUB_API_URL) || "https://api.github.com"),
    publicBaseUrl,
    callbackUrl: `${publicBaseUrl}/oauth/callback`,
    allowedReturnOrigins: new Set(
      str(env.ALLOWED_RETURN_ORIGINS)
        .split(",")
        .map((s) => s.trim())
        .filter(Boolean)
        .map(originOf),
    ),
    githubTimeoutMs: Number.isFinite(timeout) && timeout > 0 ? timeout : 10_000,
    agentHost: parseAgentHost(env.AGENT_HOST),
  };
}

/**
 * `GITLAB_APPS` `{"<appType>": {"clientId", "baseUrl", "scopes"?}}` into the same map: an
 * appType names one App whatever its provider, so a name in both lists is an error.
 */
function parseGitLabApps(env: BrokerEnv, apps: Map<string, AppConfig>): void {
  if (env.GITLAB_APPS === undefined || env.GITLAB_APPS === "") return;
  let json: unknown;
  try {
    json = typeof env.GITLAB_APPS === "string" ? JSON.parse(env.GITLAB_APPS) : env.GITLAB_APPS;
  } catch {
    throw new ConfigError("GITLAB_APPS is not valid JSON");
  }
  if (!json || typeof json !== "object") throw new ConfigError("GITLAB_APPS must be an object");
  for (const [appType, value] of Object.entries(json as Record<string, unknown>)) {
    const entry = (value ?? {}) as { clientId?: unknown; baseUrl?: unknown; scopes?: unknown };
    if (!APP_TYPE.test(appType) || typeof entry.clientId !== "string" || !entry.clientId) {
      throw new ConfigError(`GITLAB_APPS: entry "${appType}" needs a lowercase name and a clientId`);
    }
    if (apps.has(appType)) throw new ConfigError(`GITLAB_APPS: "${appType}" is already a GitHub App`);
    let baseUrl: string;
    try {
      const url = new URL(typeof entry.baseUrl === "string" && entry.baseUrl ? entry.baseUrl : "https://gitlab.com");
      if ((url.protocol !== "https:" && url.protocol !== "http:") || url.username || url.password || url.search) throw new Error();
      baseUrl = trimSlash(url.origin + url.pathname);
    } catch {
      throw new ConfigError(`GITLAB_APPS: entry "${appType}" has a baseUrl that is not an http(s) URL`);
    }
    if (entry.scopes !== undefined && (typeof entry.scopes !== "string" || !/^[a-z_]+( [a-z_]+)*$/.test(entry.scopes))) {
      throw new ConfigError(`GITLAB_APPS: entry "${appType}" has scopes that are not space-separated scope names`);
    }
    apps.set(appType, {
      appType,
      provider: "gitlab",
      baseUrl,
      scopes: (entry.scopes as string | undefined) ?? GITLAB_DEFAULT_SCOPES,
      clientId: entry.clientId,
      clientSecret: str(env[`GITLAB_CLIENT_SECRET_${appType.toUpperCase()}`]),
      webhookSecrets: [],
    });
  }
}

/** The optional installation-token fields of one `GITHUB_APPS` entry, checked. */
function installationFields(appType: string, entry: Record<string, unknown>): { appId?: string; slug?: string; botUserId?: string } {
  const id = (name: string): string | undefined => {
    const v = entry[name];
    if (v === undefined) return undefined;
    const s = typeof v === "number" ? String(v) : v;
    if (typeof s !== "string" || !/^[1-9][0-9]{0,19}$/.test(s)) throw new ConfigError(`GITHUB_APPS: ${appType}.${name} must be a positive integer`);
    return s;
  };
  const slug = entry.slug;
  if (slug !== undefined && (typeof slug !== "string" || !/^[a-z0-9][a-z0-9-]{0,33}$/.test(slug))) {
    throw new ConfigError(`GITHUB_APPS: ${appType}.slug must be the App's slug (lowercase letters, digits, hyphens)`);
  }
  return { appId: id("appId"), slug: slug as string | undefined, botUserId: id("botUserId") };
}

function originOf(s: string): string {
  try {
    return new URL(s).origin;
  } catch {
    throw new ConfigError(`ALLOWED_RETURN_ORIGINS: "${s}" is not an origin`);
  }
}

function str(v: unknown): string {
  return typeof v === "string" ? v : "";
}

function trimSlash(s: string): string {
  return s.replace(/\/+$/, "");
}

/**
 * `PUBLIC_BASE_URL`: this Worker's public origin, required. No default: a deployment that
 * forgot it would send GitHub a callback on some other host, and every connect would fail
 * at the provider instead of here.
 */
function parsePublicBaseUrl(value: unknown): string {
  const raw = trimSlash(str(value).trim());
  let url: URL | null = null;
  try {
    url = raw ? new URL(raw) : null;
  } catch {
    url = null;
  }
  if (!url || (url.protocol !== "https:" && url.protocol !== "http:") || url.username || url.password || url.search || url.hash) {
    throw new ConfigError("PUBLIC_BASE_URL must be this Worker's public origin, e.g. https://broker.example.com");
  }
  return raw;
}

/** `AGENT_HOST`: a host name (and port), nothing else; unset or empty turns the surface off. */
function parseAgentHost(value: unknown): string | null {
  const host = str(value).trim().toLowerCase();
  if (!host) return null;
  if (!/^[a-z0-9.-]{1,253}(:\d{1,5})?$/.test(host)) throw new ConfigError("AGENT_HOST must be a host name, optionally with :port");
  return host;
}
