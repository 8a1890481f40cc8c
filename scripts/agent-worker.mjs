#!/usr/bin/env node
/**
 * `npm run agent-worker`: the example agent Worker (examples/agent-worker/) on
 * http://127.0.0.1:8789, beside a running `npm start`, calling the broker through its service
 * binding. Sets what `wrangler dev` needs for that and nothing else:
 *
 * - `WRANGLER_REGISTRY_PATH`: the dev registry `npm start` uses (`<state>/dev-registry`,
 *   `<state>` being `.wrangler` or `LOCAL_STATE_DIR`), without which the binding finds no
 *   broker and every call answers `broker_unreachable`;
 * - `CLOUDFLARE_CF_FETCH_ENABLED=false`: no fetch of https://workers.cloudflare.com/cf.json,
 *   which offline only prints stack traces;
 * - its own inspector port, since `npm start`'s broker holds wrangler's default one;
 * - the client it imports by package name (`dist/`), built first if it is missing (`npm
 *   install` builds it; a checkout whose install skipped scripts has none).
 *
 * Try it: http://127.0.0.1:8789/?user=alice&repo=octo-org/hello-world
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync } from "node:fs";
import { join, resolve } from "node:path";

const STATE = process.env.LOCAL_STATE_DIR || ".wrangler";
const REGISTRY = resolve(process.env.WRANGLER_REGISTRY_PATH || join(STATE, "dev-registry"));

if (!existsSync("dist/client.js")) {
  console.log("Building the client (dist/) the example imports: npm run build");
  const built = spawnSync("npm", ["run", "build"], { stdio: "inherit" });
  if (built.status !== 0) process.exit(built.status ?? 1);
}

const child = spawn(
  "wrangler",
  ["dev", "-c", "examples/agent-worker/wrangler.toml", "--ip", "127.0.0.1", "--port", "8789", "--inspector-port", "9231", "--show-interactive-dev-session=false", ...process.argv.slice(2)],
  {
    stdio: "inherit",
    env: { ...process.env, WRANGLER_REGISTRY_PATH: REGISTRY, CLOUDFLARE_CF_FETCH_ENABLED: "false", WRANGLER_SEND_METRICS: "false" },
  },
);
console.log(`Example agent Worker: http://127.0.0.1:8789/?user=alice&repo=octo-org/hello-world (dev registry ${REGISTRY})`);
for (const signal of ["SIGINT", "SIGTERM"]) process.on(signal, () => child.kill(signal));
child.on("exit", (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
