/**
 * The egress handler with the real `git` and `gh`, as they run in a sandbox: a clean
 * environment holding only a placeholder token, `HTTPS_PROXY` pointing at a test-only
 * intercepting proxy (test/support/intercepting-proxy.ts: what `interceptHttps` does in
 * Cloudflare Containers) that decrypts each request to github.com and api.github.com and hands
 * it to the SAME handler a platform installs (`brokerEgress` from src/egress.ts).
 *
 * The handler's broker is a thin adapter standing in for the service binding: it sends each
 * request to the harness's broker (test/support/harness.ts, workerd), whose `/_harness/egress`
 * route calls the real `BrokerApi.egress`. The broker here is configured with the emulator's
 * host for GitHub (as production is with github.com), so the adapter puts that host in the URL.
 */
import { spawn } from "node:child_process";
import { mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRepository, gitHttpBackend } from "../emulator/git-backend.ts";
import { GitHubEmulator } from "../emulator/github.ts";
import { brokerEgress, type EgressBroker } from "../src/egress.ts";
import { APPS, INTERNAL_API_TOKEN } from "../test/support/env.ts";
import { harnessBroker } from "../test/support/egress-adapter.ts";
import { startHarness, type Harness } from "../test/support/harness.ts";
import { GH_MISSING } from "../emulator/tls-front.ts";
import { startInterceptingProxy, type InterceptingProxy } from "../test/support/intercepting-proxy.ts";

const CONTAINER = "a1".repeat(32);
const PLACEHOLDER = "egress-placeholder";

let harness: Harness;
let proxy: InterceptingProxy;
let root: string;
let work: string;
let capability: string;
/** The platform's trusted storage (the Container object's, in examples/sandbox). */
const issued = new Map<string, string>();


/** The sandbox's environment: nothing but the placeholder, the proxy and its CA. */
function sandboxEnv(home: string): Record<string, string> {
  return {
    PATH: process.env.PATH ?? "/usr/bin:/bin",
    HOME: home,
    GH_TOKEN: PLACEHOLDER,
    GH_CONFIG_DIR: join(home, ".config/gh"),
    GH_NO_UPDATE_NOTIFIER: "1",
    GH_PROMPT_DISABLED: "1",
    GIT_TERMINAL_PROMPT: "0",
    GIT_CONFIG_NOSYSTEM: "1",
    HTTPS_PROXY: proxy.url,
    https_proxy: proxy.url,
    GIT_SSL_CAINFO: proxy.caFile,
    SSL_CERT_FILE: proxy.caFile,
  };
}

/** Runs a command in the sandbox; never throws: the exit code and output are the result. */
function sandbox(cmd: string, args: string[], cwd: string, home: string): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env: sandboxEnv(home) });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (d) => (stdout += d));
    child.stderr.on("data", (d) => (stderr += d));
    child.on("close", (code) => resolve({ code: code ?? -1, stdout, stderr }));
  });
}

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "egress-repos-"));
  work = mkdtempSync(join(tmpdir(), "egress-work-"));
  await createRepository(root, "acme/app", { "README.md": "# app\n" });
  await createRepository(root, "acme/other", { "README.md": "# other\n" });
  const emulator = new GitHubEmulator(Object.values(APPS).map((a) => ({ ...a })), { gitBackend: gitHttpBackend(root) });
  harness = await startHarness(emulator);
  await harness.connect("egress-user", 5151, { "acme/app": "push", "acme/other": "push" });
  const handler = brokerEgress<{ broker: EgressBroker }>({ broker: (env) => env.broker, capabilityFor: (ctx) => issued.get(ctx.containerId) ?? null });
  const platformEnv = { broker: harnessBroker(harness.url) };
  proxy = await startInterceptingProxy(["github.com", "api.github.com"], (request) => handler(request, platformEnv, { containerId: CONTAINER }));
  // The platform, at container start: a capability bound to the container, kept outside it.
  const res = await harness.call("/v1/users/egress-user/capabilities", { appType: "standard", repository: "acme/app", sessionId: "sandbox-1", branches: ["agent/*"], containerId: CONTAINER });
  expect(res.status).toBe(200);
  capability = ((await res.json()) as { capability: string }).capability;
  issued.set(CONTAINER, capability);
});

afterAll(async () => {
  await proxy?.close();
  await harness?.dispose();
});

describe("git and gh in a sandbox that holds nothing", () => {
  it("git clone https://github.com/{bound} works with only a placeholder; a push goes within branches only", async () => {
    const home = mkdtempSync(join(work, "home-"));
    const clone = await sandbox("git", ["clone", "-q", "https://github.com/acme/app.git", "app"], home, home);
    expect(clone.stderr).toBe("");
    expect(clone.code).toBe(0);
    const dir = join(home, "app");
    expect(readFileSync(join(dir, "README.md"), "utf8")).toBe("# app\n");
    writeFileSync(join(dir, "change.txt"), "from the sandbox\n");
    await sandbox("git", ["add", "."], dir, home);
    expect((await sandbox("git", ["-c", "user.name=Agent", "-c", "user.email=agent@example.com", "commit", "-q", "-m", "change"], dir, home)).code).toBe(0);
    const pushed = await sandbox("git", ["push", "-q", "origin", "HEAD:refs/heads/agent/egress"], dir, home);
    expect(pushed.stderr).toBe("");
    expect(pushed.code).toBe(0);
    const main = await sandbox("git", ["push", "-q", "origin", "HEAD:main"], dir, home);
    expect(main.code).not.toBe(0);
    expect(main.stderr).toContain("branch not allowed for this session: agent/*");
    expect(proxy.seen.some((s) => s.startsWith("github.com POST /acme/app.git/git-receive-pack"))).toBe(true);
  });

  it("another repository and another host are refused", async () => {
    const home = mkdtempSync(join(work, "home-"));
    const other = await sandbox("git", ["clone", "-q", "https://github.com/acme/other.git", "other"], home, home);
    expect(other.code).not.toBe(0);
    expect(other.stderr).toContain("repository_mismatch");
    const elsewhere = await sandbox("git", ["clone", "-q", "https://example.com/acme/app.git", "elsewhere"], home, home);
    expect(elsewhere.code).not.toBe(0);
    expect(proxy.refused).toContain("example.com:443");
  });

  it.skipIf(GH_MISSING !== null)("gh talks to api.github.com through the handler: the bound repository; another one and a path off the surface are refused", async () => {
    const home = mkdtempSync(join(work, "home-"));
    const repo = await sandbox("gh", ["api", "repos/acme/app", "--jq", ".full_name"], home, home);
    expect(repo.stderr).toBe("");
    expect(repo.stdout.trim()).toBe("acme/app");
    const other = await sandbox("gh", ["api", "repos/acme/other"], home, home);
    expect(other.code).not.toBe(0);
    expect(other.stdout + other.stderr).toContain("repository_mismatch");
    const off = await sandbox("gh", ["api", "orgs/acme/repos"], home, home);
    expect(off.code).not.toBe(0);
    expect(off.stdout + off.stderr).toContain("operation_not_allowed");
  });

  it.skipIf(GH_MISSING !== null)("gh pr create opens a pull request from the sandbox", async () => {
    const home = mkdtempSync(join(work, "home-"));
    await sandbox("git", ["clone", "-q", "https://github.com/acme/app.git", "app"], home, home);
    const pr = await sandbox("gh", ["pr", "create", "--repo", "acme/app", "--head", "agent/egress", "--base", "main", "--title", "t", "--body", "b"], join(home, "app"), home);
    expect(pr.code).toBe(0);
    expect(pr.stdout).toMatch(/\/acme\/app\/pull\/\d+/);
  });

  it("red team: every value the sandbox can read is refused by the public proxies and the internal API", async () => {
    const home = mkdtempSync(join(work, "home-"));
    await sandbox("git", ["clone", "-q", "https://github.com/acme/app.git", "app"], home, home);
    const dir = join(home, "app");
    // What the sandbox can read: its environment, its git configuration, every file it has.
    const values = new Set<string>(Object.values(sandboxEnv(home)));
    const config = await sandbox("git", ["config", "--list", "--show-origin"], dir, home);
    for (const line of config.stdout.split("\n")) for (const part of line.split(/[\s=]+/)) if (/^[\x21-\x7e]+$/.test(part)) values.add(part);
    const files = listFiles(home);
    let everything = `${config.stdout}\n${Object.values(sandboxEnv(home)).join("\n")}`;
    for (const file of files) {
      const text = readFileSync(file, "latin1");
      everything += text;
      // Token-shaped words (printable, 8-200 characters): what a credential would look like.
      for (const word of text.split(/[\s"'=:@]+/)) if (/^[\x21-\x7e]{8,200}$/.test(word)) values.add(word);
    }
    // Nothing in the sandbox is, or contains, the capability or a token.
    expect(everything).not.toContain(capability);
    expect(everything).not.toMatch(/gcapc?1\.|ghu_|ghs_|ghr_/);
    expect(values.size).toBeGreaterThan(10);
    const refusedStatuses = new Set<number>();
    for (const value of values) {
      const basic = `Basic ${btoa(`x-access-token:${value}`)}`;
      const attempts = [
        fetch(new URL("/git/acme/app.git/info/refs?service=git-upload-pack", harness.url), { headers: { authorization: basic } }),
        fetch(new URL("/api/repos/acme/app/pulls", harness.url), { headers: { authorization: `Bearer ${value}` } }),
        fetch(new URL("/v1/users/egress-user/connection?appType=standard", harness.url), { headers: { authorization: `Bearer ${value}` } }),
        fetch(new URL("/v1/users/egress-user/token", harness.url), { method: "POST", headers: { authorization: `Bearer ${value}`, "content-type": "application/json" }, body: '{"appType":"standard","repository":"acme/app"}' }),
      ];
      for (const res of await Promise.all(attempts)) {
        await res.arrayBuffer();
        refusedStatuses.add(res.status);
        expect(res.status, value).toBeGreaterThanOrEqual(400);
      }
    }
    expect([...refusedStatuses].every((s) => s === 401 || s === 404)).toBe(true);
    // The attempts can succeed: the internal API's own bearer token and the capability itself would
    // (so these refusals are not a broken harness). The bound capability is still refused on the public proxy.
    expect((await fetch(new URL("/v1/users/egress-user/connection?appType=standard", harness.url), { headers: { authorization: `Bearer ${INTERNAL_API_TOKEN}` } })).status).toBe(200);
    const bound = await fetch(new URL("/git/acme/app.git/info/refs?service=git-upload-pack", harness.url), { headers: { authorization: `Basic ${btoa(`x:${capability}`)}` } });
    expect(bound.status).toBe(401);
  });
});

function listFiles(dir: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    const stat = statSync(path);
    if (stat.isDirectory()) out.push(...listFiles(path));
    else if (stat.size < 1_000_000) out.push(path);
  }
  return out;
}
