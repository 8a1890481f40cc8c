/**
 * The git proxy with the real `git` binary: the broker runs in workerd on a real port
 * (test/support/harness.ts), the emulator serves real repositories through `git http-backend`.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRepository, gitHttpBackend, run } from "../emulator/git-backend.ts";
import { GitHubEmulator } from "../emulator/github.ts";
import { remoteOf, gitFails } from "./support.ts";
import { startHarness, type Harness } from "../test/support/harness.ts";
import { APPS } from "../test/support/env.ts";

let harness: Harness;
let root: string;
let work: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "git-repos-"));
  work = mkdtempSync(join(tmpdir(), "git-work-"));
  await createRepository(root, "acme/app", { "README.md": "# app\n" });
  await createRepository(root, "acme/other", { "README.md": "# other\n" });
  const emulator = new GitHubEmulator(Object.values(APPS).map((a) => ({ ...a })), { gitBackend: gitHttpBackend(root) });
  harness = await startHarness(emulator);
  await harness.connect("git-user", 4242, { "acme/app": "push", "acme/other": "push" });
});

afterAll(async () => {
  await harness?.dispose();
});

async function capability(body: Record<string, unknown> = {}) {
  const res = await harness.call("/v1/users/git-user/capabilities", { appType: "standard", repository: "acme/app", sessionId: "agent-1", ...body });
  expect(res.status).toBe(200);
  return (await res.json()) as { capability: string; gitRemoteUrl: string; committer: { name: string; email: string } };
}



describe("git through the proxy", () => {
  it("clone, commit and push as the user; the pushed commit carries the no-reply identity", async () => {
    const cap = await capability();
    const dir = join(work, "clone-1");
    await run("git", ["clone", "-q", remoteOf(cap), dir]);
    expect(readFileSync(join(dir, "README.md"), "utf8")).toBe("# app\n");
    writeFileSync(join(dir, "change.txt"), "from the agent\n");
    await run("git", ["add", "."], dir);
    await run("git", ["-c", `user.name=${cap.committer.name}`, "-c", `user.email=${cap.committer.email}`, "commit", "-q", "-m", "agent change"], dir);
    await run("git", ["push", "-q", "origin", "main"], dir);
    const { stdout } = await run("git", ["--git-dir", join(root, "acme/app.git"), "log", "-1", "--format=%an <%ae>"]);
    expect(stdout.trim()).toBe(`user4242 <4242+user4242@users.noreply.github.com>`);
    expect(cap.committer.email).toBe("4242+user4242@users.noreply.github.com");
  });

  it("the same capability cannot clone another repository: repository_mismatch", async () => {
    const cap = await capability();
    const other = cap.gitRemoteUrl.replace("acme/app.git", "acme/other.git");
    const stderr = await gitFails(["clone", "-q", remoteOf({ gitRemoteUrl: other, capability: cap.capability }), join(work, "clone-other")]);
    expect(stderr).toContain("repository_mismatch");
  });

  it("a pull capability clones but cannot push: insufficient_permission", async () => {
    const cap = await capability({ permission: "pull", sessionId: "reader" });
    const dir = join(work, "clone-pull");
    await run("git", ["clone", "-q", remoteOf(cap), dir]);
    writeFileSync(join(dir, "nope.txt"), "x\n");
    await run("git", ["add", "."], dir);
    await run("git", ["-c", "user.name=x", "-c", "user.email=x@example.com", "commit", "-q", "-m", "nope"], dir);
    expect(await gitFails(["push", "-q", "origin", "main"], dir)).toContain("insufficient_permission");
  });

  it("an expired, a tampered and a revoked-user capability fail", async () => {
    const expired = await capability({ ttlSeconds: 1, sessionId: "short" });
    await new Promise((r) => setTimeout(r, 1200));
    expect(await gitFails(["ls-remote", remoteOf(expired)])).toContain("expired_capability");

    const good = await capability({ sessionId: "tamper" });
    const tampered = good.capability.slice(0, -4) + (good.capability.endsWith("AAAA") ? "BBBB" : "AAAA");
    expect(await gitFails(["ls-remote", remoteOf({ gitRemoteUrl: good.gitRemoteUrl, capability: tampered })])).toContain("invalid_capability");

    await harness.connect("git-revoked", 5151, { "acme/app": "push" });
    const res = await harness.call("/v1/users/git-revoked/capabilities", { appType: "standard", repository: "acme/app", sessionId: "s" });
    const cap = (await res.json()) as { capability: string; gitRemoteUrl: string };
    await run("git", ["ls-remote", remoteOf(cap)]);
    await harness.call("/v1/users/git-revoked/connection?appType=standard", undefined, "DELETE");
    expect(await gitFails(["ls-remote", remoteOf(cap)])).toContain("source_unavailable");
  });

  it("a session keeps pushing across a forced refresh of the user's token by another session", async () => {
    // GitHub's tokens last 50 minutes here, so every request of a session that wants an
    // hour of validity makes the broker refresh, which kills the previous access token.
    harness.emulator.settings.accessTokenExpiresIn = 3000;
    await harness.connect("git-refresh", 6161, { "acme/app": "push" });
    const res = await harness.call("/v1/users/git-refresh/capabilities", { appType: "standard", repository: "acme/app", sessionId: "long-running" });
    const cap = (await res.json()) as { capability: string; gitRemoteUrl: string; committer: { name: string; email: string } };
    const dir = join(work, "clone-refresh");
    await run("git", ["clone", "-q", remoteOf(cap), dir]);
    const forceRefresh = async () => {
      const before = harness.emulator.counts.refresh;
      const other = await harness.call("/v1/users/git-refresh/token", { appType: "standard", repository: "acme/app", minValiditySeconds: 3600 });
      expect(other.status).toBe(200);
      expect(harness.emulator.counts.refresh).toBe(before + 1);
      return ((await other.json()) as { token: string }).token;
    };
    let previous = await forceRefresh();
    for (let i = 0; i < 2; i++) {
      const current = await forceRefresh();
      // The token the other session held a moment ago is dead at GitHub now.
      expect(harness.emulator.accessTokenState(previous)!.alive).toBe(false);
      previous = current;
      writeFileSync(join(dir, `after-refresh-${i}.txt`), "still pushing\n");
      await run("git", ["add", "."], dir);
      await run("git", ["-c", `user.name=${cap.committer.name}`, "-c", `user.email=${cap.committer.email}`, "commit", "-q", "-m", `after refresh ${i}`], dir);
      await run("git", ["pull", "-q", "--rebase", "origin", "main"], dir);
      await run("git", ["push", "-q", "origin", "main"], dir);
    }
    harness.emulator.settings.accessTokenExpiresIn = 28_800;
    const { stdout } = await run("git", ["--git-dir", join(root, "acme/app.git"), "log", "-1", "--format=%s"]);
    expect(stdout.trim()).toBe("after refresh 1");
  });
});
