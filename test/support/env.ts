/**
 * The configuration the tests run with (shared by vitest.config.ts, which runs in Node,
 * and the tests, which run in workerd). Test-only keys: never use them anywhere else.
 */
export const EMULATOR_URL = "http://github.emulator";
export const EMULATOR_API_URL = "http://api.github.emulator";
export const PUBLIC_BASE_URL = "https://broker.test";
/** The GitHub-shaped surface's host (src/surface/): the same Worker, dispatched on `Host`. */
export const AGENT_HOST = "agent.broker.test";
export const RETURN_ORIGIN = "https://app.test";

export const APPS = {
  standard: {
    clientId: "Iv23.test-standard",
    clientSecret: "test-secret-standard",
    webhookSecret: "whsec-standard",
    // Installation tokens (the App's bot): see test/support/app-keys.ts for the private keys.
    appId: 1001,
    slug: "broker-standard",
    botUserId: 41898282,
  },
  lite: {
    clientId: "Iv23.test-lite",
    clientSecret: "test-secret-lite",
    webhookSecret: "whsec-lite",
    appId: 1002,
    slug: "broker-lite",
    botUserId: 41898283,
  },
} as const;

/** `GITHUB_APPS` as the broker reads it. */
export const GITHUB_APPS_JSON = JSON.stringify(
  Object.fromEntries(
    Object.entries(APPS).map(([appType, a]) => [appType, { clientId: a.clientId, appId: a.appId, slug: a.slug, botUserId: a.botUserId }]),
  ),
);

/** Two AES keys: `k2` (primary) encrypts; `k1` still decrypts, as after a rotation. */
export const KEY_K1 = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=";
export const KEY_K2 = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

/** The GitLab emulator's instance (emulator/gitlab.ts), and its one OAuth application. */
export const GITLAB_URL = "http://gitlab.emulator";
export const GITLAB_APP = { clientId: "gl-test-client", clientSecret: "gl-test-secret" } as const;

export const INTERNAL_API_TOKEN = "test-internal-api-token";
/** The platform's event receiver (emulator/event-receiver.ts, served by the outbound service). */
export const EVENTS_URL = "http://events.receiver/hook";
export const EVENTS_SIGNING_KEY = "test-events-signing-key";
export const STATE_SIGNING_KEY = "test-state-signing-key-0123456789";

export const TEST_BINDINGS: Record<string, string> = {
  GITHUB_APPS: GITHUB_APPS_JSON,
  GITHUB_CLIENT_SECRET_STANDARD: APPS.standard.clientSecret,
  GITHUB_CLIENT_SECRET_LITE: APPS.lite.clientSecret,
  // A comma-separated list, as during a webhook secret rotation.
  GITHUB_WEBHOOK_SECRET_STANDARD: `${APPS.standard.webhookSecret},whsec-standard-next`,
  GITHUB_WEBHOOK_SECRET_LITE: APPS.lite.webhookSecret,
  GITLAB_APPS: JSON.stringify({ gitlab: { clientId: GITLAB_APP.clientId, baseUrl: GITLAB_URL } }),
  GITLAB_CLIENT_SECRET_GITLAB: GITLAB_APP.clientSecret,
  GITHUB_WEB_URL: EMULATOR_URL,
  // A different host than the web URL: the broker must keep OAuth and REST calls apart.
  GITHUB_API_URL: EMULATOR_API_URL,
  PUBLIC_BASE_URL,
  AGENT_HOST,
  ALLOWED_RETURN_ORIGINS: RETURN_ORIGIN,
  TOKEN_ENCRYPTION_KEYS: `k2:${KEY_K2},k1:${KEY_K1}`,
  STATE_SIGNING_KEY,
  INTERNAL_API_TOKEN,
  EVENTS_URL,
  EVENTS_SIGNING_KEY,
  // Short, so hang tests are quick; far above the emulator's few milliseconds even on a busy CI machine.
  GITHUB_TIMEOUT_MS: "1000",
};
