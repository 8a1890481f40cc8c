/**
 * The broker's runtime for the crash soak, from the side that survives: bundles
 * test/crash/worker.ts once, starts `runtime-child.ts` as the leader of its own process
 * group, and kills that whole group (Node, Miniflare and workerd) with SIGKILL, then starts
 * it again on the same storage directory and port.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { bundleEntry } from "../support/harness.ts";

export interface RuntimeOptions {
  dir: string;
  port: number;
  bindings: Record<string, string>;
}

/** Bundles the soak's Worker to `<dir>/worker.js`; returns the path. */
export async function bundleWorker(dir: string): Promise<string> {
  const code = await bundleEntry("test/crash/worker.ts", ["cloudflare:*", "node:*"]);
  const path = join(dir, "worker.js");
  writeFileSync(path, code);
  return path;
}

export class Runtime {
  readonly #options: RuntimeOptions & { script: string; persist: string };
  #child: ChildProcess | null = null;
  #exited: Promise<void> = Promise.resolve();
  /** Milliseconds from spawn to `ready`, one entry per start. */
  readonly startTimes: number[] = [];
  kills = 0;

  constructor(options: RuntimeOptions & { script: string }) {
    this.#options = { ...options, persist: join(options.dir, "state") };
  }

  get url(): string {
    return `http://127.0.0.1:${this.#options.port}`;
  }

  /** Where Miniflare keeps the Durable Objects' SQLite files. */
  get persistDir(): string {
    return this.#options.persist;
  }

  get running(): boolean {
    return this.#child !== null;
  }

  /** Starts the runtime and waits until it serves requests. */
  async start(): Promise<void> {
    if (this.#child) throw new Error("runtime already running");
    const started = Date.now();
    const { script, port, persist, bindings } = this.#options;
    const child = spawn(process.execPath, ["test/crash/runtime-child.ts", JSON.stringify({ script, port, persist, bindings })], {
      detached: true,
      stdio: ["ignore", "pipe", "pipe"],
    });
    this.#child = child;
    this.#exited = new Promise((resolve) => child.once("exit", () => resolve()));
    let stderr = "";
    child.stderr!.on("data", (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    await new Promise<void>((resolve, reject) => {
      let out = "";
      const onData = (d: Buffer) => {
        out += d.toString();
        if (out.includes("ready ")) {
          child.stdout!.off("data", onData);
          child.stdout!.resume();
          resolve();
        }
      };
      child.stdout!.on("data", onData);
      child.once("exit", (code) => reject(new Error(`runtime exited (${code}) before it was ready: ${stderr}`)));
    });
    this.startTimes.push(Date.now() - started);
  }

  /** SIGKILL to the whole process group; resolves once the leader is gone. */
  async kill(): Promise<void> {
    const child = this.#child;
    if (!child?.pid) return;
    this.#child = null;
    try {
      process.kill(-child.pid, "SIGKILL");
    } catch {
      // already gone
    }
    this.kills++;
    await this.#exited;
  }
}
