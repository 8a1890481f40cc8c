/**
 * `npm run test:e2e`: the local demo, used as a person would, in headless Chromium, and
 * the example agent Worker calling the broker through its service binding.
 *
 * Starts `npm start` (broker + GitHub emulator, fresh Durable Object storage) and the
 * example agent Worker beside it, then drives Debian's Chromium through playwright-core:
 * connect (cancel once, then authorize) → token → forced refresh → revoke on GitHub
 * (signed webhook) → reconnect → disconnect, checking what the page shows at each step
 * and what the agent Worker gets. Screenshots of every state go to artifacts/browser/.
 */
import { spawn } from "node:child_process";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type Page } from "playwright-core";

const BROKER = "http://127.0.0.1:8787";
const ARTIFACTS = "artifacts/browser";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

mkdirSync(ARTIFACTS, { recursive: true });
const stateDir = mkdtempSync(join(tmpdir(), "broker-state-"));
const server = spawn("npm", ["start"], {
  env: { ...process.env, BROKER_STATE_DIR: stateDir },
  stdio: ["ignore", "pipe", "pipe"],
  detached: true,
});
let serverLog = "";
server.stdout!.on("data", (d) => (serverLog += d));
server.stderr!.on("data", (d) => (serverLog += d));
const AGENT = "http://127.0.0.1:8789";
const agent = spawn(
  "wrangler",
  ["dev", "-c", "examples/agent-worker/wrangler.toml", "--port", "8789", "--ip", "127.0.0.1", "--inspector-port", "9231", "--show-interactive-dev-session=false"],
  { env: { ...process.env, WRANGLER_SEND_METRICS: "false" }, stdio: ["ignore", "pipe", "pipe"], detached: true },
);
agent.stdout!.on("data", (d) => (serverLog += d));
agent.stderr!.on("data", (d) => (serverLog += d));

/** What the example agent Worker would push with, for the demo user. */
async function agentCredential(): Promise<{ credential: string; reason?: string; author?: string }> {
  const res = await fetch(`${AGENT}/?user=demo-user&repo=octo-org/hello-world`);
  return (await res.json()) as { credential: string; reason?: string; author?: string };
}

let passed = 0;
let failed = 0;
async function step(name: string, page: Page, fn: () => Promise<void>, shot: string) {
  try {
    await fn();
    passed++;
    console.log(`ok   ${name}`);
  } catch (err) {
    failed++;
    console.log(`FAIL ${name}: ${(err as Error).message}`);
  }
  await page.screenshot({ path: join(ARTIFACTS, `${shot}.png`), fullPage: true });
}

function expect(cond: boolean, message: string) {
  if (!cond) throw new Error(message);
}

/** Exactly these card buttons are visible, the others are not. */
async function buttonsShown(page: Page, shown: string[]) {
  for (const id of ["connect", "reconnect", "disconnect", "revoke"]) {
    const visible = await page.locator(`#${id}`).isVisible();
    expect(visible === shown.includes(id), `#${id} should be ${shown.includes(id) ? "shown" : "hidden"}`);
  }
}

async function waitForBroker() {
  for (let i = 0; i < 240; i++) {
    try {
      const [b, e, a] = await Promise.all([fetch(`${BROKER}/demo`), fetch("http://127.0.0.1:8788/settings/applications"), fetch(AGENT)]);
      if (b.ok && e.ok && a.ok) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`npm start did not serve the demo in two minutes:\n${serverLog}`);
}

async function main() {
  await waitForBroker();
  console.log("npm start serves the demo");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const page = await browser.newPage();
  page.setDefaultTimeout(15_000);
  const status = () => page.locator("#status").innerText();

  await step("the example agent Worker falls back to the installation token for a user not connected", page, async () => {
    const got = await agentCredential();
    expect(got.credential === "installation_token" && got.reason === "not_connected", JSON.stringify(got));
  }, "00-start");

  await step("a new user sees 'Connect GitHub'", page, async () => {
    await page.goto(`${BROKER}/demo`);
    await page.locator("#connect").waitFor({ state: "visible" });
    expect((await status()).includes("Not connected"), `status: ${await status()}`);
    await buttonsShown(page, ["connect"]);
  }, "01-not-connected");

  await step("Cancel on GitHub's consent page comes back as access_denied", page, async () => {
    await page.click("#connect");
    await page.waitForURL(/127\.0\.0\.1:8788\/login\/oauth\/authorize/);
    await page.screenshot({ path: join(ARTIFACTS, "02-consent.png"), fullPage: true });
    await page.click("#cancel");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#flash", { hasText: "access_denied" }).waitFor();
    expect(await page.locator("#connect").isVisible(), "Connect button should still be shown");
  }, "03-cancelled");

  await step("Authorize connects: 'Connected as @octocat' with both expiries", page, async () => {
    await page.click("#connect");
    await page.waitForURL(/8788\/login\/oauth\/authorize/);
    await page.click("#authorize");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@octocat" }).waitFor();
    const details = await page.locator("#details").innerText();
    expect(/Token valid until .+, refresh token until .+/.test(details), `details: ${details}`);
    await buttonsShown(page, ["disconnect", "revoke"]);
  }, "04-connected");

  let firstToken = "";
  await step("Get a token: the agent's token and the user's no-reply identity", page, async () => {
    await page.click("#get-token");
    await page.locator("#token-result[data-ok=true]").waitFor();
    const text = await page.locator("#token-result").innerText();
    expect(text.includes("commits as The Octocat <583231+octocat@users.noreply.github.com>"), text);
    firstToken = (await page.locator("#token-result").getAttribute("data-token")) ?? "";
    expect(firstToken.startsWith("ghu_"), `token prefix ${firstToken}`);
    const got = await agentCredential();
    expect(got.credential === "user_token" && got.author === "The Octocat <583231+octocat@users.noreply.github.com>", JSON.stringify(got));
  }, "05-token");

  await step("After the access token expires, the next token is a refreshed one", page, async () => {
    await page.click("#expire");
    await page.locator("#flash", { hasText: "expired" }).waitFor();
    await page.click("#get-token");
    await page.waitForFunction((prev) => {
      const el = document.getElementById("token-result");
      return el?.dataset.ok === "true" && el.dataset.token !== prev;
    }, firstToken);
  }, "06-refreshed");

  await step("Revoke on GitHub: the signed webhook turns the card into 'Reconnect'", page, async () => {
    await page.click("#revoke");
    await page.waitForURL(/8788\/settings\/applications/);
    await page.click('[data-revoke="Iv23.emulator-standard:583231"]');
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#flash", { hasText: "answered 202" }).waitFor();
    await page.locator("#reconnect").waitFor({ state: "visible" });
    expect((await page.locator("#reason").innerText()).includes("revoked the App on GitHub"), await status());
    await buttonsShown(page, ["reconnect"]);
    await page.click("#get-token");
    await page.locator("#token-result", { hasText: "No token: revoked" }).waitFor();
    const got = await agentCredential();
    expect(got.credential === "installation_token" && got.reason === "revoked", JSON.stringify(got));
  }, "07-revoked");

  await step("Reconnect brings the connection back", page, async () => {
    await page.click("#reconnect");
    await page.waitForURL(/8788\/login\/oauth\/authorize/);
    await page.click("#authorize");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@octocat" }).waitFor();
    await page.click("#get-token");
    await page.locator("#token-result[data-ok=true]").waitFor();
  }, "08-reconnected");

  await step("Disconnect revokes the grant and shows 'Connect GitHub' again", page, async () => {
    await page.click("#disconnect");
    await page.locator("#flash", { hasText: "GitHub grant: revoked" }).waitFor();
    await page.locator("#connect").waitFor({ state: "visible" });
    await buttonsShown(page, ["connect"]);
  }, "09-disconnected");

  await browser.close();
}

try {
  await main();
} catch (err) {
  failed++;
  console.log(`FAIL ${(err as Error).message}`);
} finally {
  for (const child of [server, agent]) {
    try {
      process.kill(-child.pid!, "SIGTERM");
    } catch {
      /* already gone */
    }
  }
  rmSync(stateDir, { recursive: true, force: true });
}
console.log(`screenshots in ${ARTIFACTS}/`);
console.log(`e2e: ${passed} passed, ${failed} failed`);
// Same keys as vitest's JSON report, for scripts/summary.mjs.
writeFileSync("artifacts/e2e.json", JSON.stringify({ numPassedTests: passed, numFailedTests: failed }));
process.exit(failed === 0 ? 0 : 1);
