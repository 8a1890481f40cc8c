/**
 * A `user_or_app` session with the real `git` binary: it pushes as the user; the user revokes
 * the App on GitHub mid-session (GitHub's signed webhook reaches the broker); the next push
 * goes through as the App's bot, and the commit is still authored by the user with the
 * `Co-authored-by:` trailer the session was given.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { CapabilityGrant } from "../src/contract.ts";
import { createRepository, gitHttpBackend, run } from "../emulator/git-backend.ts";
import { GitHubEmulator } from "../emulator/github.ts";
import { APPS } from "../test/support/env.ts";
import { remoteOf } from "./support.ts";
import { startHarness, type Harness } from "../test/support/harness.ts";

let harness: Harness;
let root: string;
let work: string;

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "identity-repos-"));
  work = mkdtempSync(join(tmpdir(), "identity-work-"));
  await createRepository(root, "acme/app", { "README.md": "# app\n" });
  const emulator = new GitHubEmulator(Object.values(APPS).map((a) => ({ ...a })), { gitBackend: gitHttpBackend(root) });
  harness = await startHarness(emulator);
  // GitHub delivers the App's webhooks to the broker's public URL.
  emulator.apps.get(APPS.standard.clientId)!.webhookUrl = new URL("/webhooks/github/standard", harness.url).toString();
  emulator.installations.addInstallation({ id: 9301, clientId: APPS.standard.clientId, account: "acme", repositories: ["acme/app"], permissions: { contents: "write", pull_requests: "write" } });
  await harness.connect("identity-user", 9191, { "acme/app": "push" });
});

afterAll(async () => {
  await harness?.dispose();
});


/** Whose token the proxy used for an `info/refs` of the session's remote. */
async function proxiedIdentity(grant: CapabilityGrant): Promise<string | null> {
  const res = await fetch(`${grant.gitRemoteUrl}/info/refs?service=git-receive-pack`, { headers: { authorization: `Basic ${btoa(`x:${grant.capability}`)}` } });
  await res.arrayBuffer();
  expect(res.status).toBe(200);
  return res.headers.get("x-broker-identity");
}

async function commitAndPush(dir: string, grant: CapabilityGrant, file: string): Promise<void> {
  writeFileSync(join(dir, file), `${file}\n`);
  await run("git", ["add", "."], dir);
  const message = `${file}\n\nCo-authored-by: ${grant.coAuthor!.name} <${grant.coAuthor!.email}>`;
  await run("git", ["-c", `user.name=${grant.committer.name}`, "-c", `user.email=${grant.committer.email}`, "commit", "-q", "-m", message], dir);
  await run("git", ["push", "-q", "origin", "main"], dir);
}

async function headCommit(): Promise<{ author: string; body: string }> {
  const gitDir = join(root, "acme/app.git");
  const author = (await run("git", ["--git-dir", gitDir, "log", "-1", "--format=%an <%ae>"])).stdout.trim();
  const body = (await run("git", ["--git-dir", gitDir, "log", "-1", "--format=%B"])).stdout.trim();
  return { author, body };
}

describe("user_or_app with the real git client", () => {
  it("pushes as the user, then as the bot after the user revokes mid-session; the user stays the author", async () => {
    const res = await harness.call("/v1/users/identity-user/capabilities", { appType: "standard", repository: "acme/app", sessionId: "agent", identity: "user_or_app" });
    expect(res.status).toBe(200);
    const grant = (await res.json()) as CapabilityGrant;
    const user = { name: "user9191", email: "9191+user9191@users.noreply.github.com" };
    expect(grant).toMatchObject({ identity: "user_or_app", committer: user, coAuthor: user });

    const dir = join(work, "session");
    await run("git", ["clone", "-q", remoteOf(grant), dir]);
    expect(await proxiedIdentity(grant)).toBe("user");
    await commitAndPush(dir, grant, "first.txt");
    expect(harness.emulator.pushes.at(-1)).toEqual({ repository: "acme/app", login: "user9191" });

    // The user revokes the App in their GitHub settings; GitHub sends the signed webhook.
    const delivered = await harness.emulator.revokeAndNotify(APPS.standard.clientId, 9191);
    expect(delivered.status).toBe(202);
    const view = await (await harness.call("/v1/users/identity-user/connection?appType=standard", undefined, "GET")).json();
    expect(view).toMatchObject({ status: "revoked" });

    // The same session, the same remote, the same capability: the push goes through as the bot.
    expect(await proxiedIdentity(grant)).toBe("app");
    await commitAndPush(dir, grant, "second.txt");
    expect(harness.emulator.pushes.at(-1)).toEqual({ repository: "acme/app", login: "broker-standard[bot]" });
    const head = await headCommit();
    expect(head.author).toBe(`${user.name} <${user.email}>`);
    expect(head.body).toContain(`Co-authored-by: ${user.name} <${user.email}>`);
  });

  it("a user capability of the same revoked user is refused: only user_or_app hands over", async () => {
    await harness.connect("identity-strict", 9292, { "acme/app": "push" });
    const res = await harness.call("/v1/users/identity-strict/capabilities", { appType: "standard", repository: "acme/app", sessionId: "strict" });
    const grant = (await res.json()) as CapabilityGrant;
    expect(grant.identity).toBe("user");
    await harness.emulator.revokeAndNotify(APPS.standard.clientId, 9292);
    let stderr = "";
    try {
      await run("git", ["ls-remote", remoteOf(grant)]);
    } catch (err) {
      stderr = (err as { stderr: string }).stderr;
    }
    expect(stderr).toContain("source_unavailable");
  });
});
