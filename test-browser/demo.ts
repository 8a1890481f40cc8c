/**
 * The local demo as a newcomer starts it: `npm start` (and, in another terminal, `npm run
 * agent-worker`) in a fresh checkout with the default state directory (`.wrangler`), and
 * nothing set that the README does not tell a newcomer to set.
 *
 * The fresh checkout is a copy of this working tree's files (tracked and untracked, not
 * ignored: what a clone of it would hold) with this checkout's `node_modules` linked in (what
 * `npm install` would make). So the test starts from no state at all, as a newcomer does,
 * without touching this checkout's own `.wrangler`.
 */
import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join, resolve } from "node:path";

export const BROKER = "http://127.0.0.1:8787";
export const EMULATOR = "http://127.0.0.1:8788";
export const GITLAB = "http://127.0.0.1:8790";
export const AGENT = "http://127.0.0.1:8789";

/** A fresh checkout of this working tree, `node_modules` linked; `remove()` deletes it. */
export function freshCheckout(): { dir: string; remove: () => void } {
  const source = resolve(".");
  const dir = mkdtempSync(join(tmpdir(), "broker-checkout-"));
  const listed = spawnSync("git", ["ls-files", "-z", "--cached", "--others", "--exclude-standard"], { cwd: source, encoding: "utf8" });
  if (listed.status !== 0) throw new Error(`git ls-files failed: ${listed.stderr}`);
  for (const file of listed.stdout.split("\0").filter(Boolean)) {
    if (!existsSync(join(source, file))) continue; // deleted in the working tree
    mkdirSync(dirname(join(dir, file)), { recursive: true });
    cpSync(join(source, file), join(dir, file), { verbatimSymlinks: true });
  }
  symlinkSync(join(source, "node_modules"), join(dir, "node_modules"));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** The shell environment minus what the test runner and a developer's own setup add. */
function newcomerEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env };
  for (const key of Object.keys(env)) {
    if (key.startsWith("VITEST") || key === "TEST") delete env[key];
  }
  if (env.NODE_ENV === "test") delete env.NODE_ENV; // vitest's, not the newcomer's
  // Settings a developer may have exported for another checkout: a newcomer has none.
  for (const key of ["LOCAL_STATE_DIR", "WRANGLER_REGISTRY_PATH", "CLOUDFLARE_CF_FETCH_ENABLED", "WRANGLER_LOG"]) delete env[key];
  return env;
}

/** One npm script in its own process group, its output kept for a failure's report. */
export class Service {
  #child: ChildProcess;
  constructor(
    readonly args: string[],
    readonly cwd: string,
    readonly log: { text: string },
  ) {
    this.#child = spawn("npm", args, { cwd, env: newcomerEnv(), stdio: ["ignore", "pipe", "pipe"], detached: true });
    this.#child.stdout!.on("data", (d) => (log.text += d));
    this.#child.stderr!.on("data", (d) => (log.text += d));
  }

  /**
   * Stops the whole process group (npm, node, wrangler, workerd): SIGTERM (as Ctrl-C would),
   * then SIGKILL for whatever is still there after ten seconds. Resolves once none is left.
   */
  async stop(): Promise<void> {
    const group = -this.#child.pid!;
    const alive = () => {
      try {
        process.kill(group, 0);
        return true;
      } catch {
        return false;
      }
    };
    if (!alive()) return;
    process.kill(group, "SIGTERM");
    for (let i = 0; i < 100 && alive(); i++) await sleep(100);
    if (alive()) process.kill(group, "SIGKILL");
    for (let i = 0; i < 50 && alive(); i++) await sleep(100);
    if (alive()) throw new Error(`process group ${-group} (npm ${this.args.join(" ")}) did not stop`);
  }
}

/** Waits until the broker, both emulators and (with `agentToo`) the agent Worker answer. */
export async function waitForDemo(log: { text: string }, agentToo = true): Promise<void> {
  for (let i = 0; i < 240; i++) {
    try {
      // Bounded: a server that accepts and never answers is "not up yet", not a hang.
      const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(5000) });
      const checks = [get(`${BROKER}/healthz`), get(`${EMULATOR}/`), get(`${GITLAB}/`), ...(agentToo ? [get(AGENT)] : [])];
      if ((await Promise.all(checks)).every((r) => r.status < 500)) return;
    } catch {
      /* not up yet */
    }
    await sleep(500);
  }
  throw new Error(`npm start did not serve the demo in two minutes:\n${log.text.slice(-6000)}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}
