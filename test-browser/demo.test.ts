/**
 * `npm run test:e2e`: the local demo, used as people would, in headless Chromium, with the
 * example agent Worker calling the broker through its service binding.
 *
 * `beforeAll` starts `npm start` and `npm run agent-worker` in a fresh checkout (./demo.ts) and
 * opens alice's browser (Debian's Chromium through playwright-core); `afterAll` stops both
 * process groups, on failure too. The steps, in order, on one page: the agent before alice
 * has connected; sign in to GitHub, cancel, connect, token (a refused one stays shown), forced
 * refresh (./steps-connect.ts); a session capability whose `git clone` is run for real, its
 * push, its `gh` block, revoking it, the audit trail, a bad branch pattern
 * (./steps-capability.ts); GitLab (./steps-gitlab.ts); mallory's link opened in alice's
 * browser, "Connect a different account", the App's bot fallback, revoke on GitHub,
 * reconnect, a restart of `npm start` that keeps the connection, disconnect, the audit trail
 * page by page (./steps-accounts.ts). Screenshots of every state go to artifacts/browser/.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { afterAll, beforeAll, describe } from "vitest";
import { freshCheckout, Service, waitForDemo } from "./demo.ts";
import { ARTIFACTS, outcome, type Demo } from "./page.ts";
import { accountSteps } from "./steps-accounts.ts";
import { capabilitySteps } from "./steps-capability.ts";
import { connectSteps } from "./steps-connect.ts";
import { gitlabSteps } from "./steps-gitlab.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
// Without Chromium there is nothing to drive: a skip that says so, or under CI a failure.
const noBrowser = !existsSync(CHROMIUM) && process.env.CI !== "true";
if (noBrowser) console.log(`browser test skipped: no Chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

describe.skipIf(noBrowser)("the local demo in Chromium", () => {
  const demo = {} as Demo;
  const log = { text: "" };
  let checkout: ReturnType<typeof freshCheckout> | undefined;
  let server: Service | undefined;
  let agent: Service | undefined;

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`no Chromium at ${CHROMIUM}: under CI the browser test must run (apt-get install chromium)`);
    mkdirSync(ARTIFACTS, { recursive: true });
    demo.work = mkdtempSync(join(tmpdir(), "e2e-git-"));
    checkout = freshCheckout();
    const dir = checkout.dir;
    server = new Service(["start"], dir, log);
    agent = new Service(["run", "agent-worker"], dir, log);
    demo.restart = async () => {
      await server!.stop();
      server = new Service(["start"], dir, log);
      await waitForDemo(log, false);
    };
    await waitForDemo(log);
    console.log("npm start serves the demo; the example agent Worker is up");
    demo.browser = await chromium.launch({
      executablePath: CHROMIUM,
      args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    });
    demo.page = await (await demo.browser.newContext()).newPage();
    demo.page.setDefaultTimeout(15_000);
  });

  afterAll(async () => {
    await demo.browser?.close().catch(() => undefined);
    await Promise.all([server?.stop(), agent?.stop()]);
    checkout?.remove();
    if (demo.work) rmSync(demo.work, { recursive: true, force: true });
    if (outcome.failed || !demo.page) console.log(`--- npm start / agent output ---\n${log.text.slice(-6000)}`);
    console.log(`screenshots in ${ARTIFACTS}/`);
  });

  connectSteps(demo);
  capabilitySteps(demo);
  gitlabSteps(demo);
  accountSteps(demo);
});
