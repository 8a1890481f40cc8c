/**
 * Git smart-HTTP for the GitHub emulator, in Node: real bare repositories on disk served by
 * `git http-backend` (CGI), so tests and the benchmark use the real `git` client end to end.
 */
import { spawn } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { Readable } from "node:stream";
import type { EmulatorUser, GitBackend } from "./github.ts";

/** A backend for the bare repositories under `root` (`root/owner/name.git`). */
export function gitHttpBackend(root: string): GitBackend {
  return async (request: Request, _repository: string, pathInfo: string, user: EmulatorUser) => {
    const url = new URL(request.url);
    const child = spawn("git", ["http-backend"], {
      env: {
        PATH: process.env.PATH ?? "/usr/bin:/bin",
        GIT_PROJECT_ROOT: root,
        GIT_HTTP_EXPORT_ALL: "1",
        PATH_INFO: pathInfo,
        REQUEST_METHOD: request.method,
        QUERY_STRING: url.search.slice(1),
        CONTENT_TYPE: request.headers.get("content-type") ?? "",
        HTTP_CONTENT_ENCODING: request.headers.get("content-encoding") ?? "",
        GIT_PROTOCOL: request.headers.get("git-protocol") ?? "",
        REMOTE_USER: user.login,
        REMOTE_ADDR: "127.0.0.1",
        // Pushes are allowed: the emulator checked the user's permission already.
        GIT_CONFIG_COUNT: "1",
        GIT_CONFIG_KEY_0: "http.receivepack",
        GIT_CONFIG_VALUE_0: "true",
      },
      stdio: ["pipe", "pipe", "pipe"],
    });
    if (request.body) Readable.fromWeb(request.body as never).pipe(child.stdin);
    else child.stdin.end();
    child.stderr.resume();
    return cgiResponse(child.stdout);
  };
}

/** Reads CGI headers (up to the blank line) and streams the rest as the body. */
function cgiResponse(stdout: Readable): Promise<Response> {
  return new Promise((resolve, reject) => {
    let head = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = Buffer.concat([head, chunk]);
      const end = head.indexOf("\r\n\r\n");
      const endLf = head.indexOf("\n\n");
      const cut = end >= 0 ? end : endLf;
      if (cut < 0) return;
      stdout.off("data", onData);
      stdout.pause();
      const sep = end >= 0 ? 4 : 2;
      const headers = new Headers();
      let status = 200;
      for (const line of head.subarray(0, cut).toString("latin1").split(/\r?\n/)) {
        const i = line.indexOf(":");
        if (i < 0) continue;
        const name = line.slice(0, i).trim();
        const value = line.slice(i + 1).trim();
        if (name.toLowerCase() === "status") status = Number.parseInt(value, 10);
        else headers.append(name, value);
      }
      const rest = head.subarray(cut + sep);
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          if (rest.length) controller.enqueue(new Uint8Array(rest));
          stdout.on("data", (c: Buffer) => controller.enqueue(new Uint8Array(c)));
          stdout.on("end", () => controller.close());
          stdout.on("error", (e) => controller.error(e));
          stdout.resume();
        },
      });
      resolve(new Response(status === 204 || status === 304 ? null : body, { status, headers }));
    };
    stdout.on("data", onData);
    stdout.on("error", reject);
    stdout.on("end", () => {
      if (head.indexOf("\n\n") < 0 && head.indexOf("\r\n\r\n") < 0) reject(new Error(`git http-backend: no headers (${head.toString()})`));
    });
  });
}

/**
 * Creates `root/owner/name.git` (bare) with one commit containing `files`, unless a complete
 * one is there already. Idempotent and crash-safe: the repository is built under a temporary
 * name and renamed into place only once its `main` exists, so a seed interrupted at any point
 * leaves either nothing or a whole repository, and an incomplete one (from an older version
 * that seeded in place) is rebuilt, never served empty.
 */
export async function createRepository(root: string, repository: string, files: Record<string, string | Uint8Array>): Promise<string> {
  const bare = resolve(root, `${repository}.git`);
  if (await hasMain(bare)) return bare;
  const building = `${bare}.building`;
  const work = `${bare}.seed`;
  for (const dir of [building, work]) rmSync(dir, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  await run("git", ["init", "-q", "--bare", "-b", "main", building]);
  await run("git", ["init", "-q", "-b", "main", work]);
  for (const [name, content] of Object.entries(files)) writeFileSync(join(work, name), content);
  await run("git", ["add", "."], work);
  await run("git", ["-c", "user.name=Seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "initial"], work);
  await run("git", ["push", "-q", building, "main"], work);
  rmSync(bare, { recursive: true, force: true });
  renameSync(building, bare);
  rmSync(work, { recursive: true, force: true });
  return bare;
}

/** Whether `bare` is a repository whose `main` branch exists. */
async function hasMain(bare: string): Promise<boolean> {
  if (!existsSync(bare)) return false;
  try {
    await run("git", ["--git-dir", bare, "rev-parse", "-q", "--verify", "refs/heads/main"]);
    return true;
  } catch {
    return false;
  }
}

/** Runs a command; resolves with stdout and stderr, rejects (with both) on a non-zero exit. */
export function run(cmd: string, args: string[], cwd?: string, env: Record<string, string> = {}): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, GIT_TERMINAL_PROMPT: "0", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => (code === 0 ? resolve({ stdout, stderr }) : reject(Object.assign(new Error(`${cmd} ${args.join(" ")}: exit ${code}\n${stderr}`), { stdout, stderr }))));
  });
}
