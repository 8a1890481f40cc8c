/**
 * The branch policy with the real `git` binary through the proxy: allowed pushes land;
 * pushes to another branch, a tag, a deletion, and a push mixing an allowed and a forbidden
 * ref are refused whole, with one `! [remote rejected]` line per ref in git's own output, and
 * the repository's refs are exactly what they were (`git ls-remote` before and after).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRepository, gitHttpBackend, run } from "../emulator/git-backend.ts";
import { GitHubEmulator } from "../emulator/github.ts";
import { APPS } from "../test/support/env.ts";
import { remoteOf } from "./support.ts";
import { startHarness, type Harness } from "../test/support/harness.ts";

let harness: Harness;
let root: string;
let work: string;
let bare: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "policy-repos-"));
  work = mkdtempSync(join(tmpdir(), "policy-work-"));
  bare = await createRepository(root, "acme/app", { "README.md": "# app\n" });
  const emulator = new GitHubEmulator(Object.values(APPS).map((a) => ({ ...a })), { gitBackend: gitHttpBackend(root) });
  harness = await startHarness(emulator);
  await harness.connect("policy-user", 7373, { "acme/app": "push" });
});

afterAll(async () => {
  await harness?.dispose();
});

let sessions = 0;
async function capability(body: Record<string, unknown>) {
  const res = await harness.call("/v1/users/policy-user/capabilities", { appType: "standard", repository: "acme/app", sessionId: `s${++sessions}`, ...body });
  expect(res.status).toBe(200);
  return (await res.json()) as { capability: string; gitRemoteUrl: string; branches: string[]; allowDelete: boolean };
}

/** A clone through the proxy with one new commit on top of main. */
async function cloneWithCommit(cap: { capability: string; gitRemoteUrl: string }, name: string, bytes = 0): Promise<string> {
  const u = new URL(cap.gitRemoteUrl);
  u.username = "x-capability";
  u.password = cap.capability;
  const dir = join(work, name);
  await run("git", ["clone", "-q", u.toString(), dir]);
  writeFileSync(join(dir, `${name}.txt`), bytes ? randomBytes(bytes) : `${name}\n`);
  await run("git", ["add", "."], dir);
  await run("git", ["-c", "user.name=Agent", "-c", "user.email=agent@example.com", "commit", "-q", "-m", name], dir);
  return dir;
}

/** The repository's refs, read on disk, not through anything under test. */
async function refs(): Promise<string> {
  return (await run("git", ["ls-remote", bare])).stdout;
}

/** Runs a push that must fail; returns git's stderr. */
async function refusedPush(dir: string, args: string[]): Promise<string> {
  try {
    await run("git", ["push", "--porcelain", "origin", ...args], dir);
  } catch (err) {
    const e = err as { stdout: string; stderr: string };
    return e.stdout + e.stderr;
  }
  throw new Error(`git push ${args.join(" ")} succeeded`);
}

async function humanPush(dir: string, args: string[]): Promise<string> {
  try {
    await run("git", ["push", "origin", ...args], dir);
  } catch (err) {
    return (err as { stderr: string }).stderr;
  }
  throw new Error(`git push ${args.join(" ")} succeeded`);
}

describe("branch policy through the proxy, with the real git", () => {
  it("a push to an allowed branch lands", async () => {
    const cap = await capability({ branches: ["agent/*"] });
    expect(cap).toMatchObject({ branches: ["agent/*"], allowDelete: false });
    const dir = await cloneWithCommit(cap, "allowed");
    await run("git", ["push", "-q", "origin", "HEAD:agent/one"], dir);
    expect(await refs()).toMatch(/refs\/heads\/agent\/one/);
  });

  it("a push to main is refused with git's own words, and nothing changes", async () => {
    const cap = await capability({ branches: ["agent/*"] });
    const dir = await cloneWithCommit(cap, "to-main");
    const before = await refs();
    const stderr = await humanPush(dir, ["main"]);
    expect(stderr).toContain(" ! [remote rejected] main -> main (branch not allowed for this session: agent/*)");
    expect(stderr).toContain("remote: The broker refused this push: this session may push to agent/* and may not delete refs.");
    expect(await refs()).toBe(before);
  });

  it("a tag is refused unless a pattern starts with refs/tags/; then it lands", async () => {
    const cap = await capability({ branches: ["**"] });
    const dir = await cloneWithCommit(cap, "tagging");
    await run("git", ["tag", "v1.0"], dir);
    const before = await refs();
    expect(await humanPush(dir, ["v1.0"])).toContain(" ! [remote rejected] v1.0 -> v1.0 (tags are not allowed for this session)");
    expect(await refs()).toBe(before);

    const tagger = await capability({ branches: ["refs/tags/v*"] });
    await run("git", ["remote", "set-url", "origin", remoteOf(tagger)], dir);
    await run("git", ["push", "-q", "origin", "v1.0"], dir);
    expect(await refs()).toMatch(/refs\/tags\/v1\.0/);
  });

  it("a deletion is refused without allowDelete, and allowed with it", async () => {
    const setup = await capability({ branches: ["agent/*"] });
    const dir = await cloneWithCommit(setup, "deleting");
    await run("git", ["push", "-q", "origin", "HEAD:agent/doomed"], dir);
    const before = await refs();
    expect(await humanPush(dir, [":agent/doomed"])).toContain(" ! [remote rejected] agent/doomed (deleting refs is not allowed for this session)");
    expect(await refs()).toBe(before);

    const deleter = await capability({ branches: ["agent/*"], allowDelete: true });
    await run("git", ["remote", "set-url", "origin", remoteOf(deleter)], dir);
    // allowDelete does not widen the patterns: main still cannot go.
    expect(await humanPush(dir, [":main"])).toContain("[remote rejected] main (branch not allowed for this session: agent/*)");
    await run("git", ["push", "-q", "origin", ":agent/doomed"], dir);
    expect(await refs()).not.toMatch(/agent\/doomed/);
  });

  it("one allowed and one forbidden ref: refused whole, one legible line per ref", async () => {
    const cap = await capability({ branches: ["agent/*"] });
    const dir = await cloneWithCommit(cap, "mixed");
    const before = await refs();
    const out = await refusedPush(dir, ["HEAD:agent/two", "HEAD:main"]);
    expect(out).toContain("!\tHEAD:refs/heads/agent/two\t[remote rejected] (push refused as a whole: another ref is not allowed)");
    expect(out).toContain("!\tHEAD:refs/heads/main\t[remote rejected] (branch not allowed for this session: agent/*)");
    expect(await refs()).toBe(before);
  });

  it("a large push (chunked, after git's probe) to a forbidden branch is refused legibly; to an allowed one it lands", async () => {
    const cap = await capability({ branches: ["agent/*"] });
    const dir = await cloneWithCommit(cap, "large", 4 * 1024 * 1024);
    const before = await refs();
    expect(await humanPush(dir, ["main"])).toContain(" ! [remote rejected] main -> main (branch not allowed for this session: agent/*)");
    expect(await refs()).toBe(before);
    await run("git", ["push", "-q", "origin", "HEAD:agent/large"], dir);
    const { stdout } = await run("git", ["--git-dir", bare, "rev-parse", "agent/large"]);
    const { stdout: local } = await run("git", ["rev-parse", "HEAD"], dir);
    expect(stdout).toBe(local);
  });

  it("a capability without branches may push any branch, but no tag and no deletion", async () => {
    const cap = await capability({});
    expect(cap).toMatchObject({ branches: ["**"], allowDelete: false });
    const dir = await cloneWithCommit(cap, "default");
    await run("git", ["push", "-q", "origin", "HEAD:feature/deep/branch"], dir);
    expect(await humanPush(dir, [":feature/deep/branch"])).toContain("(deleting refs is not allowed for this session)");
  });

  it("SHA-256 repositories: the 64-hex commands are read and judged the same way", async () => {
    const bare256 = join(root, "acme/sha.git");
    const seed = join(work, "sha-seed");
    await run("git", ["init", "-q", "--bare", "--object-format=sha256", "-b", "main", bare256]);
    await run("git", ["init", "-q", "--object-format=sha256", "-b", "main", seed]);
    writeFileSync(join(seed, "README.md"), "# sha\n");
    await run("git", ["add", "."], seed);
    await run("git", ["-c", "user.name=Seed", "-c", "user.email=seed@example.com", "commit", "-q", "-m", "initial"], seed);
    await run("git", ["push", "-q", bare256, "main"], seed);
    await harness.connect("policy-sha", 7474, { "acme/sha": "push" });
    const res = await harness.call("/v1/users/policy-sha/capabilities", { appType: "standard", repository: "acme/sha", sessionId: "sha", branches: ["agent/*"] });
    const cap = (await res.json()) as { capability: string; gitRemoteUrl: string };
    const dir = await cloneWithCommit(cap, "sha-clone");
    const before = (await run("git", ["ls-remote", bare256])).stdout;
    expect(before).toMatch(/^[0-9a-f]{64}\t/);
    expect(await humanPush(dir, ["main"])).toContain(" ! [remote rejected] main -> main (branch not allowed for this session: agent/*)");
    expect((await run("git", ["ls-remote", bare256])).stdout).toBe(before);
    await run("git", ["push", "-q", "origin", "HEAD:agent/sha"], dir);
    expect((await run("git", ["ls-remote", bare256])).stdout).toMatch(/refs\/heads\/agent\/sha/);
  });

  it("the user's audit trail lists every push with its refs, forwarded or refused, and no credential", async () => {
    const cap = await capability({ branches: ["agent/*"] });
    const dir = await cloneWithCommit(cap, "audited");
    await run("git", ["push", "-q", "origin", "HEAD:agent/audited"], dir);
    await refusedPush(dir, ["HEAD:main"]);
    const page = (await (await harness.call("/v1/users/policy-user/audit?limit=20", undefined, "GET")).json()) as {
      entries: { kind: string; detail: Record<string, unknown> }[];
    };
    const pushes = page.entries.filter((e) => e.kind === "capability_redeemed" && e.detail.service === "git-receive-pack" && e.detail.refs);
    expect(pushes[0]!.detail).toMatchObject({ repository: "acme/app", refs: ["refs/heads/main"], outcome: "refused" });
    expect(pushes[1]!.detail).toMatchObject({ repository: "acme/app", refs: ["refs/heads/agent/audited"], outcome: "forwarded" });
    expect(JSON.stringify(page)).not.toMatch(/gh[usr]_|gcap1\./);
  });

  it("junk patterns are refused when the capability is issued", async () => {
    for (const branches of [["a//b"], ["../main"], "agent/*", [], ["x y"]]) {
      const res = await harness.call("/v1/users/policy-user/capabilities", { appType: "standard", repository: "acme/app", sessionId: "junk", branches });
      expect(res.status).toBe(400);
      expect(await res.json()).toMatchObject({ ok: false, reason: "invalid_request" });
    }
  });
});

