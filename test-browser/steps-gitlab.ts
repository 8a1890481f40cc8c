/**
 * GitLab beside GitHub: its consent screen, a token and a capability for a nested-group
 * project (its clone run for real), a refusal in words, disconnect.
 */
import { readFileSync, rmSync } from "node:fs";
import { join } from "node:path";
import type { Page } from "playwright-core";
import { beforeAll, expect } from "vitest";
import { BROKER } from "./demo.ts";
import { runShownClone, screenshot, step, type Demo } from "./page.ts";

let page: Page;
let work: string;

/** Registers the steps in order; they run on the pages `beforeAll` opened. */
export function gitlabSteps(demo: Demo): void {
  beforeAll(() => {
    page = demo.page;
    work = demo.work;
  });
  const flash = () => page.locator("#flash").innerText();

  let gitlabClone = "";
  step("Connect GitLab: GitLab's consent screen names the application and its scopes, and the web app confirms", "12c-gitlab-connected", () => page, async () => {
    await page.goto(`${BROKER}/demo`);
    await page.locator("#gl-connect", { hasText: "Connect GitLab" }).waitFor({ state: "visible" });
    expect((await page.locator("#gl-status").innerText()).includes("Not connected"), await page.locator("#gl-status").innerText()).toBe(true);
    await page.click("#gl-connect");
    await page.waitForURL(/8790\/oauth\/authorize\?/);
    expect((await page.locator("#gitlab-app-name").innerText()) === "Acme Coding Agents", "the application by name").toBe(true);
    const scopes = await page.locator("#gitlab-scopes").innerText();
    expect(["read_user", "write_repository", "api"].every((s) => scopes.includes(s)), `scopes: ${scopes}`).toBe(true);
    await screenshot(page, "12b-gitlab-consent");
    await page.click('[data-gitlab-authorize="octo-gl"]');
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#gl-login", { hasText: "@octo-gl" }).waitFor();
    expect((await flash()).includes("GitLab connected as @octo-gl") && (await flash()).includes("as alice"), await flash()).toBe(true);
    await page.locator("#login", { hasText: "@octocat" }).waitFor(); // the GitHub connection is untouched
  });

  step("GitLab token and capability for a nested-group project: GitLab's no-reply identity, and the shown clone runs", "12d-gitlab-token", () => page, async () => {
    await page.click("#gl-get-token");
    await page.locator("#gl-result[data-ok=true]").waitFor();
    const text = await page.locator("#gl-result").innerText();
    expect(text.includes("commits as Octo on GitLab <4101-octo-gl@users.noreply.127.0.0.1>"), text).toBe(true);
    await page.click("#gl-issue-cap");
    await page.locator("#gl-clone").waitFor({ state: "visible" });
    gitlabClone = await page.locator("#gl-clone").innerText();
    expect(/@127\.0\.0\.1:8787\/git\/gitlab\/acme\/platform\/api\.git api$/.test(gitlabClone.trim()), "GitLab clone command shape").toBe(true);
    await runShownClone(gitlabClone, work);
    expect(readFileSync(join(work, "api", "README.md"), "utf8").startsWith("# API"), "cloned the GitLab project").toBe(true);
    await page.fill("#gl-repository", "acme/platform/docs");
    await page.click("#gl-issue-cap");
    await page.locator("#gl-result[data-ok=false]").waitFor();
    const refused = await page.locator("#gl-result").innerText();
    expect(refused === "No capability: the GitLab account cannot reach that repository with that permission.", refused).toBe(true);
    await page.fill("#gl-repository", "acme/platform/api");
  });

  step("Disconnect GitLab revokes the token at GitLab; the session's clone command is refused", "12e-gitlab-disconnected", () => page, async () => {
    await page.click("#gl-disconnect");
    await page.locator("#flash", { hasText: "GitLab token: revoked" }).waitFor();
    await page.locator("#gl-connect", { hasText: "Connect GitLab" }).waitFor({ state: "visible" });
    rmSync(join(work, "api"), { recursive: true, force: true });
    let refused = "";
    await runShownClone(gitlabClone, work).catch((err: { stderr?: string }) => (refused = err.stderr ?? "failed"));
    expect(refused.includes("source_unavailable"), `git said: ${refused}`).toBe(true);
    expect((await page.locator("#gl-result").innerText()).startsWith("Nested groups"), "the card's old results went with the connection").toBe(true);
    await page.locator("#audit tbody tr", { hasText: "disconnected (GitLab)" }).first().waitFor();
    const row = await page.locator("#audit tbody tr", { hasText: "disconnected (GitLab)" }).first().innerText();
    expect(row.includes("GitLab user id: 4101") && !row.includes("githubUserId"), `audit row: ${row}`).toBe(true);
  });

}
