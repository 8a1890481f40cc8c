/**
 * A session capability: the shown `git clone` run for real, a push and a refused one, the
 * `gh` block pasted into a terminal, revoking it, the audit trail, refusals in words, and the
 * example agent Worker getting one through the packaged client.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { beforeAll, expect } from "vitest";
import { run } from "../emulator/git-backend.ts";
import { AGENT } from "./demo.ts";
import { readAudit, runShownClone, step, type Demo } from "./page.ts";

let page: Page;
let work: string;

/** Registers the steps in order; they run on the pages `beforeAll` opened. */
export function capabilitySteps(demo: Demo): void {
  beforeAll(() => {
    page = demo.page;
    work = demo.work;
  });

  let cloneCommand = "";
  step("Session card: issue a capability and see the exact git clone command", "08-capability-issued", () => page, async () => {
    await page.click("#issue-cap");
    await page.locator("#cap-result[data-state=issued]").waitFor();
    cloneCommand = await page.locator("#clone-command").innerText();
    expect(/^git clone http:\/\/x:gcap1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+@127\.0\.0\.1:8787\/git\/octo-org\/hello-world\.git hello-world$/.test(cloneCommand.trim()), "clone command shape").toBe(true);
  });

  step("The shown git clone command, run for real, clones the repository through the broker", "09-cloned", () => page, async () => {
    await runShownClone(cloneCommand, work);
    const readme = readFileSync(join(work, "hello-world", "README.md"), "utf8");
    expect(readme.startsWith("# Hello World"), readme).toBe(true);
    const log = await run("git", ["log", "-1", "--format=%s"], join(work, "hello-world"));
    expect(log.stdout.trim() === "initial", log.stdout).toBe(true);
  });

  step("With the same capability the session pushes to agent/*, and a push to main is refused by the branch policy", "09b-pushed", () => page, async () => {
    expect((await page.locator("#cap-result").innerText()).includes("may push to agent/*"), await page.locator("#cap-result").innerText()).toBe(true);
    const dir = join(work, "hello-world");
    writeFileSync(join(dir, "NOTES.md"), "written by the e2e agent\n");
    await run("git", ["add", "NOTES.md"], dir);
    await run("git", ["-c", "user.name=The Octocat", "-c", "user.email=583231+octocat@users.noreply.github.com", "commit", "-q", "-m", "agent work"], dir);
    await run("git", ["push", "-q", "origin", "HEAD:agent/demo"], dir);
    let refused = "";
    await run("git", ["push", "origin", "HEAD:main"], dir).catch((err: { stderr?: string }) => (refused = err.stderr ?? "failed"));
    expect(refused.includes("branch not allowed for this session: agent/*"), `git said: ${refused}`).toBe(true);
    const remote = await run("git", ["ls-remote", "origin"], dir);
    expect(/refs\/heads\/agent\/demo/.test(remote.stdout), "agent/demo was pushed").toBe(true);
  });

  step("The session card's git and gh block, pasted into a terminal, clones, pushes a branch, opens a PR, comments and reads the checks", "09c-gh", () => page, async () => {
    const block = await page.locator("#agent-commands").innerText();
    expect(block.includes("GH_ENTERPRISE_TOKEN=gcap1.") && block.includes("gh pr create"), `block: ${block.slice(0, 200)}`).toBe(true);
    // A terminal of its own: an empty home, nothing set but what the block exports.
    const home = mkdtempSync(join(tmpdir(), "e2e-gh-"));
    const shell = await run("bash", ["-e", "-c", block], home, { HOME: home, GH_CONFIG_DIR: join(home, ".gh"), GH_PROMPT_DISABLED: "1", GH_NO_UPDATE_NOTIFIER: "1", NO_COLOR: "1" }).catch((err: { stdout?: string; stderr?: string }) => err);
    const out = `${shell.stdout ?? ""}${shell.stderr ?? ""}`;
    expect(/https:\/\/localhost:8443\/octo-org\/hello-world\/pull\/\d+\n/.test(shell.stdout ?? ""), `gh pr create: ${out.slice(-600)}`).toBe(true);
    expect(/#issuecomment-\d+/.test(shell.stdout ?? ""), `gh pr comment: ${out.slice(-600)}`).toBe(true);
    expect(/^lint\tpass/m.test(shell.stdout ?? ""), `gh pr checks: ${out.slice(-600)}`).toBe(true);
    rmSync(home, { recursive: true, force: true });
  });

  step("Revoke the capability: the same command is refused (invalid_capability)", "10-capability-revoked", () => page, async () => {
    await page.click("#revoke-cap");
    await page.locator("#cap-result[data-state=revoked]").waitFor();
    expect(!(await page.locator("#clone-command").isVisible()), "the revoked command is no longer shown").toBe(true);
    rmSync(join(work, "hello-world"), { recursive: true, force: true });
    let refused = "";
    await runShownClone(cloneCommand, work).catch((err: { stderr?: string }) => (refused = err.stderr ?? "failed"));
    expect(refused.includes("invalid_capability"), `git said: ${refused}`).toBe(true);
    expect(!existsSync(join(work, "hello-world", "README.md")), "nothing cloned").toBe(true);
  });

  step("The audit table lists what was done with alice's identity: connect, tokens, the capability and its push, newest first", "10b-audit-trail", () => page, async () => {
    await page.reload();
    await page.locator("#audit tbody tr").first().waitFor();
    const headers = await page.locator("#audit thead th").allTextContents();
    expect(JSON.stringify(headers) === JSON.stringify(["When", "What", "Details", "Times"]), `columns: ${headers.join(" | ")}`).toBe(true);
    const { rows } = await readAudit(page);
    const text = rows.join("\n");
    for (const what of ["connected", "token issued", "capability issued", "capability redeemed", "capability revoked", "refs/heads/agent/demo"]) {
      expect(text.includes(what), `audit shows ${what}: ${text.slice(0, 400)}`).toBe(true);
    }
    expect(rows[0]!.includes("capability revoked"), `newest first: ${rows[0]}`).toBe(true);
    expect(!/gh[usr]_|gcap1\./.test(text), "no credential in the audit trail").toBe(true);
  });

  step("A capability beyond the user's permission is refused in words (push on a pull-only repository)", "11-capability-refused", () => page, async () => {
    await page.fill("#cap-repository", "octo-org/docs");
    await page.selectOption("#cap-permission", "push");
    await page.click("#issue-cap");
    await page.locator("#cap-result[data-state=refused]").waitFor();
    const text = await page.locator("#cap-result").innerText();
    expect(text.includes("cannot reach that repository") && !text.includes("no_repo_access"), text).toBe(true);
    await page.fill("#cap-repository", "octo-org/hello-world");
  });

  step("A bad branch pattern is blamed on the pattern, not on the repository", "11b-bad-branch-pattern", () => page, async () => {
    await page.fill("#cap-branches", "feature/my branch");
    await page.click("#issue-cap");
    // The card already shows the previous refusal: wait for this one's words.
    await page.locator("#cap-result[data-state=refused]", { hasText: "branches must be" }).waitFor();
    const text = await page.locator("#cap-result").innerText();
    expect(text.includes("branches must be") && !text.includes("repository"), text).toBe(true);
    await page.fill("#cap-branches", "agent/*");
  });

  step("The example agent Worker gets a capability remote through the packaged client and clones with it", "12-agent-capability", () => page, async () => {
    const res = await fetch(`${AGENT}/capability?user=alice&repo=octo-org/hello-world`);
    const body = (await res.json()) as { remote?: string; reason?: string };
    expect(res.status === 200 && !!body.remote, JSON.stringify({ status: res.status, reason: body.reason })).toBe(true);
    await run("git", ["clone", "-q", body.remote!, "agent-clone"], work);
    expect(existsSync(join(work, "agent-clone", "README.md")), "agent clone has README.md").toBe(true);
  });

}
