/**
 * Other people and other accounts: mallory's link opened in alice's browser (refused),
 * "Connect a different account", a session that falls back to the App's bot, revoke on
 * GitHub and reconnect, a restart of `npm start` that keeps the connection, disconnect, and
 * the audit trail page by page.
 */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { BrowserContext, Page } from "playwright-core";
import { beforeAll, expect } from "vitest";
import { run } from "../emulator/git-backend.ts";
import { BROKER, EMULATOR } from "./demo.ts";
import { agentCredential, buttonsShown, readAudit, runShownClone, screenshot, step, type Demo } from "./page.ts";

let page: Page;
let work: string;
let mallory: BrowserContext | undefined;
let malloryPage: Page | undefined;
/** The clone of the session that may fall back to the App. */
let eitherDir = "";

/** Registers the steps in order; they run on the pages `beforeAll` opened. */
export function accountSteps(demo: Demo): void {
  beforeAll(() => {
    page = demo.page;
    work = demo.work;
    eitherDir = join(work, "either");
  });
  const status = () => page.locator("#status").innerText();
  const flash = () => page.locator("#flash").innerText();

  let attackUrl = "";
  step("mallory, in her own browser, starts a connect and keeps the authorize link", "13-mallory", () => malloryPage, async () => {
    mallory = await demo.browser.newContext();
    malloryPage = await mallory.newPage();
    malloryPage.setDefaultTimeout(15_000);
    await malloryPage.goto(`${BROKER}/demo?as=mallory`);
    await malloryPage.locator("#connect").waitFor({ state: "visible" });
    expect((await malloryPage.locator("#demo-user").innerText()) === "mallory", "signed in as mallory").toBe(true);
    const started = (await malloryPage.evaluate(async () => {
      const res = await fetch("/demo/api/connect", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      return res.json();
    })) as { ok: boolean; authorizeUrl?: string };
    expect(started.ok && !!started.authorizeUrl, JSON.stringify(started)).toBe(true);
    attackUrl = started.authorizeUrl!;
  });

  step("The hijack: mallory's link opened in alice's browser (already authorized) is refused, nobody gets alice's GitHub", "14-hijack-refused", () => page, async () => {
    try {
      await hijack(attackUrl);
    } finally {
      await screenshot(malloryPage, "15-mallory-not-connected");
      await mallory?.close();
    }
  });
  /** Opens mallory's authorize link in alice's browser. */
  async function hijack(attackUrl: string): Promise<void> {
    const theirs = malloryPage!;
    await page.goto(attackUrl);
    // GitHub skips the consent screen for a user who already authorized the App.
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#flash[data-result=not_started_here]").waitFor();
    expect((await flash()).includes("not started from this browser. Nothing was connected"), await flash()).toBe(true);
    await page.locator("#login", { hasText: "@octocat" }).waitFor(); // alice keeps her own connection
    await theirs.reload();
    await theirs.locator("#connect").waitFor({ state: "visible" });
    expect((await theirs.locator("#status").innerText()).includes("Not connected"), "mallory is not connected").toBe(true);
    const got = await agentCredential("mallory");
    expect(got.credential === "installation_token" && got.reason === "not_connected", `mallory's agent: ${JSON.stringify(got)}`).toBe(true);
  }

  step("'Connect a different account' shows GitHub's account picker, then connects @hubot", "17-other-account", () => page, async () => {
    await page.click("#connect-other");
    await page.waitForURL(/8788\/login\/oauth\/authorize\?.*prompt=select_account/);
    await page.locator("#account-picker").waitFor();
    await screenshot(page, "16-account-picker");
    await page.click('[data-pick="hubot"]');
    await page.waitForURL(/8788\/login\/oauth\/authorize/);
    await page.locator("#signed-in", { hasText: "@hubot" }).waitFor();
    await page.click("#authorize");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@hubot" }).waitFor();
  });

  const hubot = "hubot <9919+hubot@users.noreply.github.com>";
  /** Who pushed last, as the GitHub emulator recorded it. */
  const lastPusher = async () => ((await (await fetch(`${EMULATOR}/_emulator/pushes`)).json()) as { pushes: { login: string }[] }).pushes.at(-1)?.login;
  const commitAndPush = async (file: string, branch: string, trailer: string) => {
    writeFileSync(join(eitherDir, file), `${file}\n`);
    await run("git", ["add", file], eitherDir);
    await run("git", ["-c", "user.name=hubot", "-c", "user.email=9919+hubot@users.noreply.github.com", "commit", "-q", "-m", `${file}\n\n${trailer}`], eitherDir);
    await run("git", ["push", "-q", "origin", `HEAD:${branch}`], eitherDir).catch((err: { stderr?: string }) => {
      throw new Error(`git push said: ${(err.stderr ?? "").replace(/\s+/g, " ")}`);
    });
  };
  let eitherTrailer = "";
  step("A session that may fall back to the App ('the user, then the App's bot') pushes as @hubot while hubot is connected", "17b-user-or-app-as-user", () => page, async () => {
    await page.selectOption("#cap-identity", "user_or_app");
    await page.click("#issue-cap");
    await page.locator("#cap-result[data-identity=user_or_app]").waitFor();
    const text = await page.locator("#cap-result").innerText();
    const trailer = /Co-authored-by: [^<]+<[^>]+>/.exec(text)?.[0] ?? "";
    expect(trailer === `Co-authored-by: ${hubot}`, text).toBe(true);
    eitherTrailer = trailer;
    await runShownClone((await page.locator("#clone-command").innerText()).replace(/ hello-world$/, " either"), work);
    await commitAndPush("either-1.txt", "agent/either-1", eitherTrailer);
    expect((await lastPusher()) === "hubot", `pushed by ${await lastPusher()}`).toBe(true);
    await page.selectOption("#cap-identity", "user");
  });

  step("Revoke on GitHub (with a way back): the signed webhook turns the card into 'Reconnect'", "19-revoked", () => page, async () => {
    await page.click("#revoke");
    await page.waitForURL(/8788\/settings\/applications/);
    expect(await page.locator("#back").isVisible(), "the settings page has a way back").toBe(true);
    await screenshot(page, "18-github-settings");
    await page.click('[data-revoke="Iv23.emulator-standard:9919"]');
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#flash", { hasText: "answered 202" }).waitFor();
    await page.locator("#reconnect").waitFor({ state: "visible" });
    expect((await page.locator("#reason").innerText()).includes("revoked the App on GitHub"), await status()).toBe(true);
    await buttonsShown(page, ["reconnect", "connect-other"]);
    // The session's capability is still on the page after the round trip to GitHub's settings.
    expect((await page.locator("#cap-result").getAttribute("data-identity")) === "user_or_app", "capability kept").toBe(true);
    expect((await page.locator("#clone-command").innerText()).includes("gcap1."), "clone command kept").toBe(true);
    await page.locator("#cap-note", { hasText: "now pushes as the App's bot" }).waitFor();
    await page.click("#get-token");
    await page.locator("#token-result[data-reason=revoked]").waitFor();
    const refusal = await page.locator("#token-result").innerText();
    expect(refusal === "No token: the user revoked the App on GitHub; they need to reconnect.", `token card: ${refusal}`).toBe(true);
    const got = await agentCredential();
    expect(got.credential === "installation_token" && got.reason === "revoked", JSON.stringify(got)).toBe(true);
  });

  step("After the revocation the same session keeps pushing, now as the App's bot; the commit is still @hubot's, with the trailer", "19b-user-or-app-as-bot", () => page, async () => {
    await commitAndPush("either-2.txt", "agent/either-2", eitherTrailer);
    expect((await lastPusher()) === "acme-coding-agents[bot]", `pushed by ${await lastPusher()}`).toBe(true);
    const log = await run("git", ["log", "-1", "--format=%an <%ae>%n%B"], eitherDir);
    expect(log.stdout.startsWith(hubot) && log.stdout.includes(eitherTrailer), log.stdout).toBe(true);
  });

  step("Reconnect asks for consent again (the grant was revoked) and connects", "20-reconnected", () => page, async () => {
    await page.click("#reconnect");
    await page.waitForURL(/8788\/login\/oauth\/authorize/);
    await page.click("#authorize");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@hubot" }).waitFor();
  });

  step("Restarting npm start keeps the connection: a forced refresh still works", "21-after-restart", () => page, async () => {
    await demo.restart();
    await page.goto(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@hubot" }).waitFor();
    await page.click("#expire");
    await page.locator("#flash", { hasText: "now sees the access token as expired" }).waitFor();
    await page.click("#get-token");
    await page.locator("#refresh-note", { hasText: "Refreshed" }).waitFor();
  });

  step("Disconnect revokes the grant, clears the old token and shows 'Connect GitHub'", "22-disconnected", () => page, async () => {
    await page.click("#disconnect");
    await page.locator("#flash", { hasText: "GitHub grant: revoked" }).waitFor();
    await page.locator("#connect").waitFor({ state: "visible" });
    await buttonsShown(page, ["connect"]);
    const text = await page.locator("#token-result").innerText();
    expect(text === "No token requested yet." && !text.includes("ghu_"), `token card still shows: ${text}`).toBe(true);
  });

  step("The audit trail is bounded: ten rows a page, 'Older' and 'Newest' to move", "23-audit-pages", () => page, async () => {
    await page.goto(`${BROKER}/demo`);
    const { rows, pages } = await readAudit(page);
    expect(pages >= 2, `${rows.length} rows on ${pages} page(s)`).toBe(true);
    expect(rows.at(-1)!.includes("connected"), `oldest row: ${rows.at(-1)}`).toBe(true);
    await page.click("#audit-newest");
    await page.locator("#audit-page", { hasText: "page 1" }).waitFor();
    expect(!(await page.locator("#audit-newest").isVisible()), "no 'Newest' on the newest page").toBe(true);
  });

}
