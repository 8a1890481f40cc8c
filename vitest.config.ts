import { cloudflareTest } from "@cloudflare/vitest-plugin";
import { Response as MiniflareResponse } from "miniflare";
import { defineConfig, type Plugin } from "vitest/config";
import { GitHubEmulator } from "./src/emulator/github.ts";
import { APPS, TEST_BINDINGS } from "./test/env.ts";

/**
 * The GitHub emulator runs here, in the vitest process, and Miniflare's `outboundService`
 * sends it every `fetch` the Worker makes, the Durable Objects' included (a test proves
 * that). The tests drive it through its `/_emulator/` control routes.
 */
const emulator = new GitHubEmulator(Object.values(APPS).map((a) => ({ ...a })));

async function toEmulator(request: Request): Promise<Response> {
  const res = await emulator.fetch(request);
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
  plugins: [
    sqlAsText(),
    cloudflareTest({
      wrangler: { configPath: "./wrangler.toml" },
      miniflare: {
        bindings: {
          ...TEST_BINDINGS,
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
    include: ["test/**/*.test.ts"],
    // One emulator is shared by all test files, so files run one at a time.
    fileParallelism: false,
    testTimeout: 30_000,
    // The broker's structured log lines are asserted on where they matter (console spies);
    // printed, they would bury the test report.
    onConsoleLog: (log) => !log.startsWith('{"event"'),
  },
});
