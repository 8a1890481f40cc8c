/**
 * Alice connects GitHub: the agent before she has, the page while not connected, GitHub's
 * sign-in and consent (cancelled, then authorized), tickets that are not valid, a forged
 * state, a token and a forced refresh.
 */
import type { Page } from "playwright-core";
import { beforeAll, expect } from "vitest";
import { BROKER } from "./demo.ts";
import { agentCredential, buttonsShown, screenshot, step, type Demo } from "./page.ts";

let page: Page;
let work: string;

/** Registers the steps in order; they run on the pages `beforeAll` opened. */
export function connectSteps(demo: Demo): void {
  beforeAll(() => {
    page = demo.page;
    work = demo.work;
  });
  const status = () => page.locator("#status").innerText();
  const flash = () => page.locator("#flash").innerText();

  step("the example agent Worker falls back to the installation token for a user not connected", "00-start", () => page, async () => {
    const got = await agentCredential();
    expect(got.credential === "installation_token" && got.reason === "not_connected", JSON.stringify(got)).toBe(true);
  });

  step("alice, new, sees 'Connect GitHub'; 'Expire' does not claim success while not connected", "01-not-connected", () => page, async () => {
    await page.goto(`${BROKER}/demo`);
    await page.locator("#connect").waitFor({ state: "visible" });
    expect((await page.locator("#demo-user").innerText()) === "alice", "signed in as alice").toBe(true);
    expect((await status()).includes("Not connected"), `status: ${await status()}`).toBe(true);
    await buttonsShown(page, ["connect"]);
    await page.click("#expire");
    await page.locator("#flash", { hasText: "Nothing to expire" }).waitFor();
    expect(!(await flash()).includes("now sees the access token as expired"), await flash()).toBe(true);
    // A refused "Get a token" stays shown after the page has re-read the connection.
    const reread = (async () => {
      await page.waitForResponse((r) => r.url().endsWith("/demo/api/token"));
      await page.waitForResponse((r) => r.url().endsWith("/demo/api/audit"));
    })();
    await page.click("#get-token");
    await reread;
    const refused = await page.locator("#token-result").innerText();
    expect(refused === "No token: this user has not connected GitHub.", `token card: ${refused}`).toBe(true);
  });

  step("GitHub asks who is signed in, then shows the App by name; Cancel comes back in words", "04-cancelled", () => page, async () => {
    await page.click("#connect");
    await page.waitForURL(/8788\/login\?/);
    await screenshot(page, "02-github-sign-in");
    await page.click('[data-sign-in="octocat"]');
    await page.waitForURL(/8788\/login\/oauth\/authorize/);
    const heading = await page.locator("h1").innerText();
    expect(heading.includes("Acme Coding Agents") && !heading.includes("Iv23"), `consent heading: ${heading}`).toBe(true);
    expect((await page.locator("#signed-in").innerText()).includes("@octocat"), "signed in as @octocat").toBe(true);
    await screenshot(page, "03-consent");
    await page.click("#cancel");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#flash", { hasText: "you cancelled" }).waitFor();
    expect(!(await flash()).includes("access_denied"), `raw code shown: ${await flash()}`).toBe(true);
    await page.locator("#connect").waitFor({ state: "visible" }); // once the page has read the connection
  });

  step("Authorize, then the web app confirms as alice: 'Connected as @octocat'", "05-connected", () => page, async () => {
    await page.click("#connect");
    await page.waitForURL(/8788\/login\/oauth\/authorize/);
    await page.click("#authorize");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@octocat" }).waitFor();
    expect((await flash()).includes("confirmed the connection as alice"), await flash()).toBe(true);
    const details = await page.locator("#details").innerText();
    expect(/Access token valid until .+; refresh token until .+/.test(details), `details: ${details}`).toBe(true);
    await buttonsShown(page, ["connect-other", "disconnect", "revoke"]);
  });

  step("An unknown connection ticket is 'expired or already used', never an attack", "05b-unknown-ticket", () => page, async () => {
    // With a connect started in this browser (its cookie set) ...
    await page.evaluate(async () => {
      await fetch("/demo/api/connect", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    });
    await page.goto(`${BROKER}/demo/return?github_connect=confirm&connect_ticket=${"A".repeat(22)}`);
    await page.locator("#flash[data-result=ticket_not_valid]").waitFor();
    expect((await flash()).startsWith("This connection link expired or was already used."), await flash()).toBe(true);
    // ... and without one (an old tab, a link from elsewhere): covers both, accuses nobody.
    await page.goto(`${BROKER}/demo/return?github_connect=confirm&connect_ticket=${"B".repeat(22)}`);
    await page.locator("#flash[data-result=not_started_here]").waitFor();
    const text = await flash();
    expect(text.includes("expired, was already used, or was not started from this browser") && !/someone else|do not trust|attack/i.test(text), text).toBe(true);
    await page.locator("#login", { hasText: "@octocat" }).waitFor(); // nothing changed
  });

  step("A forged state gets a styled page that says what happened, with a link back to the app", "05d-back-from-bad-state", () => page, async () => {
    const res = await page.goto(`${BROKER}/oauth/callback?code=x&state=forged`);
    expect(res?.status() === 400, `status ${res?.status()}`).toBe(true);
    expect((await page.locator("h1").innerText()) === "This connection link is not valid", await page.locator("h1").innerText()).toBe(true);
    expect(await page.locator(".card").isVisible(), "styled").toBe(true);
    await screenshot(page, "05c-bad-state-page");
    await page.click("#back");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@octocat" }).waitFor();
  });

  let firstToken = "";
  step("Get a token: the agent's token and the user's no-reply identity", "06-token", () => page, async () => {
    await page.click("#get-token");
    await page.locator("#token-result[data-ok=true]").waitFor();
    const text = await page.locator("#token-result").innerText();
    expect(text.includes("commits as The Octocat <583231+octocat@users.noreply.github.com>"), text).toBe(true);
    firstToken = (await page.locator("#token-result").getAttribute("data-token")) ?? "";
    expect(firstToken.startsWith("ghu_"), `token prefix ${firstToken}`).toBe(true);
    expect(!(await page.locator("#refresh-note").isVisible()), "no refresh happened, none claimed").toBe(true);
    const got = await agentCredential();
    expect(got.credential === "user_token" && got.author === "The Octocat <583231+octocat@users.noreply.github.com>", JSON.stringify(got)).toBe(true);
  });

  step("After the access token expires, the next token is a refreshed one, and the page says so", "07-refreshed", () => page, async () => {
    await page.click("#expire");
    await page.locator("#flash", { hasText: "now sees the access token as expired" }).waitFor();
    await page.click("#get-token");
    await page.locator("#refresh-note", { hasText: "Refreshed" }).waitFor();
    const token = (await page.locator("#token-result").getAttribute("data-token")) ?? "";
    expect(token.startsWith("ghu_") && token !== firstToken, "a new access token").toBe(true);
    expect(!(await flash()).includes("now sees the access token as expired"), `stale message: ${await flash()}`).toBe(true);
  });

}
