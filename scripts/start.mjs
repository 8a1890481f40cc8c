#!/usr/bin/env node
/**
 * `npm start`: the broker (dev entry, with the demo) and the GitHub emulator, locally. Needs
 * no secret and no GitHub: .dev.vars is created from .dev.vars.example on first run (demo
 * values that only work with the emulator).
 *
 *   broker    http://127.0.0.1:8787   wrangler dev -c wrangler.local.toml (demo page: /demo)
 *   emulator  http://127.0.0.1:8788   Node (emulator/local.ts): GitHub's OAuth, REST, git, consent pages
 *   gitlab    http://127.0.0.1:8790   the same process: a GitLab instance (OAuth, consent, API, git)
 *
 * - State survives a restart: Durable Objects in `<state>/state`, the emulator's tokens,
 *   grants and repositories in `<state>/emulator` (`<state>` is `.wrangler`, or
 *   `LOCAL_STATE_DIR`). So a connection made yesterday still works today.
 * - A private wrangler dev registry per run (`WRANGLER_REGISTRY_PATH`, a fresh temporary
 *   directory unless you set one), so two checkouts never reach each other's broker. Run the
 *   example agent Worker against this broker with the path printed at start-up.
 * - The broker's log lines (one JSON object each, src/log.ts) are printed readably; offline
 *   `Request.cf` lookups are switched off.
 */
import { spawn } from "node:child_process";
import { appendFileSync, copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";

const STATE = process.env.LOCAL_STATE_DIR || ".wrangler";
const BROKER = "http://127.0.0.1:8787";
const EMULATOR = "http://127.0.0.1:8788";
const GITLAB = "http://127.0.0.1:8790";
const OWN_REGISTRY = !process.env.WRANGLER_REGISTRY_PATH;
const REGISTRY = process.env.WRANGLER_REGISTRY_PATH || mkdtempSync(join(tmpdir(), "wrangler-registry-"));

if (!existsSync(".dev.vars")) {
  copyFileSync(".dev.vars.example", ".dev.vars");
  console.log("Created .dev.vars from .dev.vars.example (local demo secrets).");
} else {
  // A checkout from before a new demo secret (GitLab's) gets it added, nothing else touched.
  const keys = (text) => new Set(text.split("\n").map((l) => /^([A-Z0-9_]+)=/.exec(l)?.[1]).filter(Boolean));
  const have = keys(readFileSync(".dev.vars", "utf8"));
  const missing = readFileSync(".dev.vars.example", "utf8").split("\n").filter((l) => { const k = /^([A-Z0-9_]+)=/.exec(l)?.[1]; return k && !have.has(k); });
  if (missing.length) appendFileSync(".dev.vars", `\n${missing.join("\n")}\n`);
}

const env = {
  ...process.env,
  WRANGLER_SEND_METRICS: "false",
  WRANGLER_REGISTRY_PATH: REGISTRY,
  // No fetch of https://workers.cloudflare.com/cf.json: offline it only prints stack traces.
  CLOUDFLARE_CF_FETCH_ENABLED: "false",
};

const emulator = spawn(process.execPath, ["--disable-warning=ExperimentalWarning", "emulator/local.ts", "--port", "8788", "--gitlab-port", "8790", "--dir", join(STATE, "emulator"), "--broker", BROKER], {
  env,
  stdio: ["ignore", "pipe", "pipe"],
});
const broker = spawn(
  "wrangler",
  ["dev", "-c", "wrangler.local.toml", "--ip", "127.0.0.1", "--port", "8787", "--inspector-port", "9229", "--persist-to", join(STATE, "state"), "--show-interactive-dev-session=false"],
  { env, stdio: ["ignore", "pipe", "pipe"] },
);
const children = [emulator, broker];
for (const child of children) {
  for (const stream of [child.stdout, child.stderr]) createInterface({ input: stream }).on("line", (line) => print(line));
}

/** Wrangler's own chatter that says nothing to someone running the demo. */
const NOISE = [/^\s*$/, /⛅️ wrangler \d/, /collects anonymous telemetry/, /Your types might be out of date/, /GET \/healthz 200/, /^─+$/, /Your Worker has access to the following bindings/, /^env\.\w+ \(/, /^Binding\s+Resource/, /Using vars defined in/, /Using secrets defined in/, /^\s+(env\.|Durable Object|Environment Variable)/, /Ready on http/, /Starting local server/, /Reloading local server/, /Local server updated/, /Update available/, /npm install --save-dev wrangler/];

/** One line of output, with the broker's JSON log lines made readable. */
function print(line) {
  const at = line.indexOf('{"event"');
  if (at >= 0) {
    try {
      console.log(formatEvent(JSON.parse(line.slice(at))));
      return;
    } catch {
      /* not one of ours after all */
    }
  }
  if (NOISE.some((re) => re.test(line))) return;
  console.log(line);
}

function formatEvent(e) {
  const time = new Date().toTimeString().slice(0, 8);
  const who = [e.userId, e.appType].filter(Boolean).join("/");
  const rest = Object.entries(e)
    .filter(([k]) => !["event", "level", "userId", "appType", "outcome", "durationMs", "detail"].includes(k))
    .map(([k, v]) => `${k}=${v}`);
  const parts = [`${time} [broker] ${e.level === "error" ? "ERROR " : e.level === "warn" ? "WARN " : ""}${e.event}`, who, e.outcome, e.durationMs !== undefined ? `${e.durationMs}ms` : "", ...rest, e.detail ? `(${e.detail})` : ""];
  return parts.filter(Boolean).join("  ");
}

let stopping = false;
function stop(code = 0) {
  if (stopping) return;
  stopping = true;
  for (const child of children) child.kill("SIGTERM");
  setTimeout(() => {
    if (OWN_REGISTRY) rmSync(REGISTRY, { recursive: true, force: true });
    process.exit(code);
  }, 1500).unref();
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

if ((await waitFor(`${BROKER}/healthz`)) && (await waitFor(`${EMULATOR}/`)) && (await waitFor(`${GITLAB}/`))) {
  console.log(`
  Token broker is running. Open ${BROKER}/demo
  GitHub emulator at ${EMULATOR}, GitLab emulator at ${GITLAB}. Ctrl-C stops all; state is kept in ${STATE}/.
  Example agent Worker beside it:
    WRANGLER_REGISTRY_PATH=${REGISTRY} npx wrangler dev -c examples/agent-worker/wrangler.toml --port 8789
`);
} else if (!stopping) {
  console.error("The broker or the emulator did not start in two minutes.");
  stop(1);
}
