#!/usr/bin/env node
/**
 * `npm start`: the broker and the GitHub emulator, locally, with Durable Object storage on
 * disk (.wrangler/state). Needs no secret from you: .dev.vars is created from
 * .dev.vars.example on first run (demo values that only work with the emulator).
 *
 *   broker    http://127.0.0.1:8787   (demo page: /demo)
 *   emulator  http://127.0.0.1:8788   (GitHub's OAuth and REST endpoints, consent page)
 */
import { spawn } from "node:child_process";
import { copyFileSync, existsSync } from "node:fs";

// BROKER_STATE_DIR: where Durable Object storage lives (the browser test uses a fresh one).
const STATE_DIR = process.env.BROKER_STATE_DIR || ".wrangler/state";
const BROKER = "http://127.0.0.1:8787";
const EMULATOR = "http://127.0.0.1:8788";

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("Created .dev.vars from .dev.vars.example (local demo secrets).");
}

const env = { ...process.env, WRANGLER_SEND_METRICS: "false", WRANGLER_LOG: process.env.WRANGLER_LOG ?? "warn" };
const common = ["--ip", "127.0.0.1", "--show-interactive-dev-session=false"];
const children = [
  spawn("wrangler", ["dev", "-c", "emulator/wrangler.toml", "--port", "8788", "--inspector-port", "9230", ...common], { env, stdio: "inherit" }),
  spawn("wrangler", ["dev", "-c", "wrangler.toml", "--port", "8787", "--inspector-port", "9229", "--persist-to", STATE_DIR, ...common], {
    env,
    stdio: "inherit",
  }),
];

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill("SIGTERM");
  setTimeout(() => process.exit(code), 1500).unref();
}
for (const child of children) child.on("exit", (code) => stop(code ?? 1));
process.on("SIGINT", () => stop(0));
process.on("SIGTERM", () => stop(0));

async function waitFor(url) {
  for (let i = 0; i < 240; i++) {
    if (stopping) return false;
    try {
      await fetch(url);
      return true;
    } catch {
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  return false;
}

if ((await waitFor(`${BROKER}/healthz`)) && (await waitFor(`${EMULATOR}/`))) {
  console.log(`\n  Token broker is running. Open ${BROKER}/demo\n  (GitHub emulator at ${EMULATOR}; Ctrl-C stops both.)\n`);
} else if (!stopping) {
  console.error("The broker or the emulator did not start in two minutes.");
  stop(1);
}
