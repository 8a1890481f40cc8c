/**
 * The broker in workerd, driven from Node: bundles a Worker entry (test/support/harness-entry.ts,
 * the production entry with the egress stand-in; the benchmark passes bench/worker.ts), runs it
 * in Miniflare with SQLite-backed Durable Objects, and sends every outbound fetch to a
 * {@link GitHubEmulator} in this process. Used by the tests that need a real HTTP server (the
 * real `git` client) and by the benchmark.
 */
import { build } from "esbuild";
import { createServer } from "node:net";
import { convertV4MiniflareOptions, Miniflare, Response as MfResponse, type Request as MfRequest } from "miniflare";
import { GitHubEmulator } from "../../emulator/github.ts";
import type { GitLabEmulator, GitLabUser } from "../../emulator/gitlab.ts";
import { APP_IDENTITIES, APP_KEY_BINDINGS } from "./app-keys.ts";
import { GITLAB_APP, APPS, GITHUB_APPS_JSON, INTERNAL_API_TOKEN, KEY_K1, KEY_K2, RETURN_ORIGIN, STATE_SIGNING_KEY } from "./env.ts";

export const EMULATOR_ORIGIN = "http://github.harness";
/** The GitLab instance of the harness's `gitlab` App, when a GitLab emulator is given. */
export const GITLAB_HARNESS_ORIGIN = "http://gitlab.harness";

export interface Harness {
  url: URL;
  emulator: GitHubEmulator;
  /** The origin the broker knows GitHub by: {@link EMULATOR_ORIGIN}, or the `githubOrigin` given to {@link startHarness}. */
  githubOrigin: string;
  /** Structured log lines the broker wrote (counted, not printed). */
  logLines(): number;
  /** An internal-API call with the bearer token (and any extra headers). */
  call(path: string, body?: unknown, method?: string, extraHeaders?: Record<string, string>): Promise<Response>;
  /** Connects a user through the real flow: connect → consent → callback → confirm. */
  connect(userId: string, githubId: number, repos?: Record<string, "push" | "pull">): Promise<void>;
  /** The same for the `gitlab` App (needs the GitLab emulator given to {@link startHarness}). */
  connectGitLab(userId: string, user: GitLabUser): Promise<void>;
  dispose(): Promise<void>;
}

/** Bundles a Worker entry the way wrangler does for workerd (the `.sql` migrations as text). */
export async function bundleEntry(entry: string, external: string[] = ["cloudflare:*"]): Promise<string> {
  const result = await build({
    entryPoints: [entry],
    bundle: true,
    format: "esm",
    platform: "neutral",
    target: "es2024",
    conditions: ["workerd", "worker", "browser"],
    mainFields: ["browser", "module", "main"],
    external,
    loader: { ".sql": "text" },
    write: false,
    logLevel: "error",
  });
  return result.outputFiles[0]!.text;
}

/** The entry the tests run: the production entry and the egress stand-in, nothing else. */
export const TEST_ENTRY = "test/support/harness-entry.ts";

/**
 * The broker's configuration for a run against the emulators: GitHub (web and API) at
 * `github`, the broker itself at `publicBaseUrl`, each GitHub call bounded by `timeoutMs`.
 */
export function brokerBindings(github: string, publicBaseUrl: string, timeoutMs: string): Record<string, string> {
  return {
    GITHUB_APPS: GITHUB_APPS_JSON,
    ...(APP_KEY_BINDINGS as Record<string, string>),
    GITHUB_CLIENT_SECRET_STANDARD: APPS.standard.clientSecret,
    GITHUB_CLIENT_SECRET_LITE: APPS.lite.clientSecret,
    GITHUB_WEBHOOK_SECRET_STANDARD: APPS.standard.webhookSecret!,
    GITHUB_WEBHOOK_SECRET_LITE: APPS.lite.webhookSecret!,
    GITHUB_WEB_URL: github,
    GITHUB_API_URL: github,
    PUBLIC_BASE_URL: publicBaseUrl,
    ALLOWED_RETURN_ORIGINS: RETURN_ORIGIN,
    TOKEN_ENCRYPTION_KEYS: `k2:${KEY_K2},k1:${KEY_K1}`,
    STATE_SIGNING_KEY,
    INTERNAL_API_TOKEN,
    GITHUB_TIMEOUT_MS: timeoutMs,
  };
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      const port = typeof address === "object" && address ? address.port : 0;
      server.close(() => resolve(port));
    });
  });
}

/** A Worker entry other than {@link TEST_ENTRY}, with the Durable Object classes it adds (binding → class). */
export interface HarnessEntry {
  path: string;
  durableObjects?: Record<string, string>;
}

/**
 * Starts the broker. `bindings` adds to or overrides the test configuration (e.g. `AGENT_HOST`
 * for the GitHub-shaped surface), `port` chooses its port (default: a free one), `entry` the
 * Worker it bundles (default {@link TEST_ENTRY}).
 *
 * By default every outbound fetch of the broker goes through Miniflare's outbound bridge into
 * this process, to `emulator.fetch`. `githubOrigin` (the emulator already served over HTTP at
 * that origin, `emulator/serve.ts`) makes the broker reach it over plain HTTP instead, as a
 * deployment reaches GitHub: the benchmark compares a proxied clone or push with a direct one
 * to the same server, so the bridge's hop (~9 ms a request here) is not counted against the
 * broker. Not with `gitlab`, which needs the bridge.
 *
 * `direct` serves the Worker on workerd's own HTTP socket (Miniflare's `unsafeDirectSockets`)
 * instead of behind Miniflare's entry Worker, a development-only layer that re-dispatches
 * every request through JavaScript (~390 µs of CPU a request here, twice a bare Durable
 * Object call): the benchmark measures the broker as workerd runs it in production.
 */
export async function startHarness(
  emulator = new GitHubEmulator(Object.values(APPS).map((a) => ({ ...a }))),
  gitlab?: GitLabEmulator,
  options: { bindings?: Record<string, string>; port?: number; entry?: HarnessEntry; githubOrigin?: string; direct?: boolean } = {},
): Promise<Harness> {
  if (options.githubOrigin && gitlab) throw new Error("githubOrigin and a GitLab emulator do not go together");
  const githubOrigin = options.githubOrigin ?? EMULATOR_ORIGIN;
  const entry = options.entry ?? { path: TEST_ENTRY };
  const extraObjects = Object.fromEntries(Object.entries(entry.durableObjects ?? {}).map(([binding, className]) => [binding, { className, useSQLite: true }]));
  let logLines = 0;
  // Installation tokens: the emulator verifies the Apps' JWTs with their public keys.
  for (const identity of APP_IDENTITIES) emulator.installations.registerApp(identity);
  // The port the broker answers on: Miniflare's entry, or with `direct` workerd's own socket
  // (Miniflare's entry then listens on another port nobody calls).
  const port = options.port ?? (await freePort());
  const entryPort = options.direct ? await freePort() : port;
  const mf = new Miniflare(
    convertV4MiniflareOptions({
      modules: [{ type: "ESModule", path: "worker.js", contents: await bundleEntry(entry.path) }],
      compatibilityDate: "2026-11-01",
      host: "127.0.0.1",
      port: entryPort,
      ...(options.direct ? { unsafeDirectSockets: [{ host: "127.0.0.1", port }] } : {}),
      durableObjects: {
        USER_ACTOR: { className: "UserActor", useSQLite: true },
        IDENTITY_INDEX: { className: "IdentityIndex", useSQLite: true },
        INSTALLATION_ACTOR: { className: "InstallationActor", useSQLite: true },
        ...extraObjects,
      },
      // Metrics on, as in production: the hot path is measured with its data points.
      analyticsEngineDatasets: { METRICS: { dataset: "token_broker" } },
      bindings: {
        ...brokerBindings(githubOrigin, `http://127.0.0.1:${port}`, "10000"),
        ...options.bindings,
        // A `gitlab` App on the GitLab emulator, when one is given (test-node/gitlab-git.test.ts).
        ...(gitlab ? { GITLAB_APPS: JSON.stringify({ gitlab: { clientId: GITLAB_APP.clientId, baseUrl: GITLAB_HARNESS_ORIGIN } }), GITLAB_CLIENT_SECRET_GITLAB: GITLAB_APP.clientSecret } : {}),
      },
      // The broker's structured logs would go to Cloudflare's log pipeline: count them.
      handleStructuredLogs: () => {
        logLines++;
      },
      ...(options.githubOrigin
        ? {}
        : {
            outboundService: async (request: MfRequest) => {
              const toGitLab = gitlab && new URL(request.url).origin === GITLAB_HARNESS_ORIGIN;
              const res = toGitLab ? await gitlab.fetch(request as unknown as Request) : await emulator.fetch(request as unknown as Request);
              return new MfResponse(res.body as never, { status: res.status, headers: [...res.headers] });
            },
          }),
    }),
  );
  const url = options.direct ? await mf.unsafeGetDirectURL() : await mf.ready;
  const headers = { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" };
  const call = (path: string, body?: unknown, method = "POST", extraHeaders?: Record<string, string>) =>
    fetch(new URL(path, url), { method, headers: extraHeaders ? { ...headers, ...extraHeaders } : headers, body: body === undefined ? undefined : JSON.stringify(body), redirect: "manual" });

  /** The two-phase connect as a browser and the web app would drive it, after `consent` gave the code. */
  async function confirmFlow(userId: string, appType: string, consent: (authorize: URL) => string): Promise<void> {
    const res = await call(`/v1/users/${userId}/connect`, { appType, returnTo: `${RETURN_ORIGIN}/done` });
    const authorize = new URL(((await res.json()) as { authorizeUrl: string }).authorizeUrl);
    const code = consent(authorize);
    const back = await fetch(new URL(`/oauth/callback?code=${code}&state=${authorize.searchParams.get("state")}`, url), { redirect: "manual" });
    const ticket = new URL(back.headers.get("location") ?? "x:").searchParams.get("connect_ticket");
    if (!ticket) throw new Error(`callback answered ${back.status} without a ticket`);
    const confirmed = await call(`/v1/users/${userId}/connect/confirm`, { ticket });
    if (confirmed.status !== 200) throw new Error(`confirm answered ${confirmed.status}: ${await confirmed.text()}`);
  }

  async function connect(userId: string, githubId: number, repos: Record<string, "push" | "pull"> = { "acme/app": "push" }) {
    emulator.addUser({ id: githubId, login: `user${githubId}`, name: null, repos });
    await confirmFlow(userId, "standard", (authorize) =>
      emulator.authorize({ clientId: APPS.standard.clientId, userId: githubId, redirectUri: authorize.searchParams.get("redirect_uri")!, codeChallenge: authorize.searchParams.get("code_challenge") }),
    );
  }

  async function connectGitLab(userId: string, gitlabUser: GitLabUser) {
    if (!gitlab) throw new Error("startHarness was given no GitLab emulator");
    gitlab.addUser(gitlabUser);
    await confirmFlow(userId, "gitlab", (authorize) =>
      gitlab.authorize({ clientId: GITLAB_APP.clientId, userId: gitlabUser.id, redirectUri: authorize.searchParams.get("redirect_uri")!, codeChallenge: authorize.searchParams.get("code_challenge") }).code,
    );
  }

  return { url, emulator, githubOrigin, logLines: () => logLines, call, connect, connectGitLab, dispose: () => mf.dispose() };
}
