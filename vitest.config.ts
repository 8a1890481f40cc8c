import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Response as MiniflareResponse } from "miniflare";
import { defineConfig, type Plugin } from "vitest/config";
import { createRepository, gitHttpBackend } from "./emulator/git-backend.ts";
import { gitRefs } from "./emulator/git-refs.ts";
import { EventReceiver } from "./emulator/event-receiver.ts";
import { GitHubEmulator } from "./emulator/github.ts";
import { GitLabEmulator } from "./emulator/gitlab.ts";
import { APP_IDENTITIES, APP_KEY_BINDINGS } from "./test/support/app-keys.ts";
import { APPS, EVENTS_URL, GITLAB_APP, GITLAB_URL, TEST_BINDINGS } from "./test/support/env.ts";

/**
 * Two projects:
 * - `workers`: the broker's tests, inside workerd (the vitest Workers pool). The GitHub
 *   emulator runs here, in the vitest process, and Miniflare's `outboundService` sends it
 *   every `fetch` the Worker makes, the Durable Objects' included (a test proves that). Its
 *   git endpoints serve real repositories through `git http-backend`.
 * - `node`: tests that need the broker on a real port (the real `git` client), through
 *   test/support/harness.ts.
 */
// A quiet report: wrangler's "Using secrets defined in .dev.vars" (the demo's file, which the
// test bindings override anyway) and Vite's warnings about dependencies' source maps are noise.
process.env.WRANGLER_LOG ??= "warn";

const gitRoot = mkdtempSync(join(tmpdir(), "emulator-git-"));
await createRepository(gitRoot, "acme/app", { "README.md": "# app\n" });
await createRepository(gitRoot, "acme/other", { "README.md": "# other\n" });
const emulator = new GitHubEmulator(
  Object.values(APPS).map((a) => ({ ...a })),
  { gitBackend: gitHttpBackend(gitRoot), gitRefs: gitRefs(gitRoot) },
);
for (const identity of APP_IDENTITIES) emulator.installations.registerApp(identity);

const events = new EventReceiver();
await createRepository(gitRoot, "acme/platform/api", { "README.md": "# api\n" });
// One arrival order and one set of holds across both emulators (the interleaving explorer).
const gitlab = new GitLabEmulator([{ ...GITLAB_APP }], { gitBackend: gitHttpBackend(gitRoot), arrivals: emulator.arrivals() });

/** Routes by host: the event receiver, the GitLab emulator, else the GitHub emulator. */
async function toEmulator(request: Request): Promise<Response> {
  const host = new URL(request.url).host;
  const res = host === new URL(EVENTS_URL).host ? await events.fetch(request) : host === new URL(GITLAB_URL).host ? await gitlab.fetch(request) : await emulator.fetch(request);
  return new MiniflareResponse(res.body as never, { status: res.status, headers: [...res.headers] }) as unknown as Response;
}

/** Imports `*.sql` as text, as wrangler's `Text` rule does in the real build. */
function sqlAsText(): Plugin {
  return {
    name: "sql-as-text",
    transform(code, id) {
      if (id.endsWith(".sql")) return { code: `export default ${JSON.stringify(code)};`, map: null };
    },
  };
}

export default defineConfig({
  test: {
    // The broker's structured log lines are asserted on where they matter (console spies);
    // printed, they would bury the test report.
    onConsoleLog: (log: string) => process.env.SHOW_LOGS === "1" || !log.startsWith('{"event"'),
    projects: [
      {
        logLevel: "error",
        plugins: [
          sqlAsText(),
          cloudflareTest({
            // The production entry plus the explorer's hold points (test/support/entry.ts).
            main: "./test/support/entry.ts",
            wrangler: { configPath: "./wrangler.toml" },
            miniflare: {
              bindings: {
                ...TEST_BINDINGS,
                // Generated per run (test/support/app-keys.ts): standard PKCS#1, lite PKCS#8.
                ...APP_KEY_BINDINGS,
                // The soak's size and length: `SOAK_SECONDS=300 npm test` for a long run.
                SOAK_SECONDS: process.env.SOAK_SECONDS ?? "15",
                SOAK_USERS: process.env.SOAK_USERS ?? "12",
                SOAK_SESSIONS: process.env.SOAK_SESSIONS ?? "3",
              },
              outboundService: toEmulator,
            },
          }),
        ],
        test: {
          name: "workers",
          include: ["test/**/*.test.ts"],
          // One emulator is shared by all test files, so files run one at a time.
          fileParallelism: false,
          testTimeout: 30_000,
        },
      },
      {
        test: {
          name: "node",
          include: ["test-node/**/*.test.ts"],
          environment: "node",
          fileParallelism: false,
          testTimeout: 120_000,
          hookTimeout: 120_000,
        },
      },
    ],
  },
});
