/**
 * `npm run test:e2e`: the local demo, used as people would, in headless Chromium, with the
 * example agent Worker calling the broker through its service binding.
 *
 * Starts `npm start` (broker + GitHub emulator, fresh state) and, with `npm run agent-worker`
 * as its header says, the example agent Worker beside it (both on the state directory's dev
 * registry), then drives Debian's Chromium through playwright-core. Alice's browser: sign in
 * to GitHub, cancel, connect, token (a refused one stays shown), forced refresh, a session
 * capability whose `git clone` command is run for real, revoke it, a bad branch pattern; the
 * audit trail page by page; mallory's browser starts a connect and the link is opened in
 * alice's browser (the hijack the two-phase connect refuses, in words that accuse nobody);
 * unknown tickets and a forged state; "Connect a different account" through GitHub's account
 * picker; revoke on GitHub (signed webhook), the capability still shown after the round trip;
 * reconnect; a restart of `npm start` that keeps the connection; disconnect. GitLab beside
 * it: connect through GitLab's consent screen, a token and a capability for a nested-group
 * project (its clone run for real), a refusal in words, disconnect. Screenshots
 * of every state go to artifacts/browser/.
 */
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { run } from "../emulator/git-backend.ts";

const BROKER = "http://127.0.0.1:8787";
const EMULATOR = "http://127.0.0.1:8788";
const GITLAB = "http://127.0.0.1:8790";
const AGENT = "http://127.0.0.1:8789";
const ARTIFACTS = "artifacts/browser";
const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";

mkdirSync(ARTIFACTS, { recursive: true });
const stateDir = mkdtempSync(join(tmpdir(), "broker-state-"));
const work = mkdtempSync(join(tmpdir(), "e2e-git-"));
// Nothing the README does not tell a newcomer to set: npm start and npm run agent-worker set the
// dev registry and the offline switches themselves.
const childEnv: NodeJS.ProcessEnv = { ...process.env, LOCAL_STATE_DIR: stateDir, WRANGLER_SEND_METRICS: "false" };
delete childEnv.WRANGLER_REGISTRY_PATH;
delete childEnv.CLOUDFLARE_CF_FETCH_ENABLED;
let serverLog = "";

function startServer(): ChildProcess {
  const child = spawn("npm", ["start"], { env: childEnv, stdio: ["ignore", "pipe", "pipe"], detached: true });
  child.stdout!.on("data", (d) => (serverLog += d));
  child.stderr!.on("data", (d) => (serverLog += d));
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  const exited = new Promise((resolve) => child.once("exit", resolve));
  try {
    process.kill(-child.pid!, "SIGTERM");
  } catch {
    return;
  }
  await Promise.race([exited, new Promise((r) => setTimeout(r, 5000))]);
}

let server = startServer();
const agent = spawn("npm", ["run", "agent-worker"], { env: childEnv, stdio: ["ignore", "pipe", "pipe"], detached: true });
agent.stdout!.on("data", (d) => (serverLog += d));
agent.stderr!.on("data", (d) => (serverLog += d));

/** What the example agent Worker would push with, for a demo user. */
async function agentCredential(user = "alice"): Promise<{ credential: string; reason?: string; author?: string }> {
  const res = await fetch(`${AGENT}/?user=${user}&repo=octo-org/hello-world`);
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
    console.log(`FAIL ${name}: ${(err as Error).message.split("\n")[0]}`);
  }
  await screenshot(page, shot);
}

async function screenshot(page: Page, name: string) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true }).catch(() => undefined);
}

function expect(cond: boolean, message: string) {
  if (!cond) throw new Error(message);
}

/** Exactly these connection buttons are visible, the others are not. */
async function buttonsShown(page: Page, shown: string[]) {
  for (const id of ["connect", "reconnect", "connect-other", "disconnect", "revoke"]) {
    const visible = await page.locator(`#${id}`).isVisible();
    expect(visible === shown.includes(id), `#${id} should be ${shown.includes(id) ? "shown" : "hidden"}`);
  }
}

async function waitForServers(agentToo = true) {
  for (let i = 0; i < 240; i++) {
    try {
      // Bounded: a server that accepts and never answers is "not up yet", not a hang.
      const get = (url: string) => fetch(url, { signal: AbortSignal.timeout(5000) });
      const checks = [get(`${BROKER}/healthz`), get(`${EMULATOR}/`), get(`${GITLAB}/`), ...(agentToo ? [get(AGENT)] : [])];
      if ((await Promise.all(checks)).every((r) => r.status < 500)) return;
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 500));
  }
  throw new Error(`npm start did not serve the demo in two minutes:\n${serverLog}`);
}

/**
 * Every row of the demo's audit table, newest first, read a page at a time through "Older";
 * each page holds one to ten rows. Leaves the table on its last page.
 */
async function readAudit(page: Page): Promise<{ rows: string[]; pages: number }> {
  await page.locator("#audit-page", { hasText: "page 1" }).waitFor();
  const rows: string[] = [];
  for (let n = 1; ; n++) {
    await page.locator("#audit-page", { hasText: `page ${n}` }).waitFor();
    const onPage = await page.locator("#audit tbody tr").allTextContents();
    expect(onPage.length >= 1 && onPage.length <= 10, `page ${n} has ${onPage.length} rows`);
    rows.push(...onPage);
    if (!(await page.locator("#audit-older").isVisible())) return { rows, pages: n };
    expect(n < 50, "the audit pages end");
    await page.click("#audit-older");
  }
}

/** Runs the shell-free `git clone <url> <dir>` the page shows, in `cwd`. */
async function runShownClone(command: string, cwd: string): Promise<void> {
  const parts = command.trim().split(/\s+/);
  expect(parts[0] === "git" && parts[1] === "clone" && parts.length === 4, `unexpected command: ${command.replace(/gcap1\.[^@]+/, "gcap1.…")}`);
  await run("git", parts.slice(1), cwd);
}

async function main() {
  await waitForServers();
  console.log("npm start serves the demo; the example agent Worker is up");
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  });
  const alice: BrowserContext = await browser.newContext();
  const page = await alice.newPage();
  page.setDefaultTimeout(15_000);
  const status = () => page.locator("#status").innerText();
  const flash = () => page.locator("#flash").innerText();

  await step("the example agent Worker falls back to the installation token for a user not connected", page, async () => {
    const got = await agentCredential();
    expect(got.credential === "installation_token" && got.reason === "not_connected", JSON.stringify(got));
  }, "00-start");

  await step("alice, new, sees 'Connect GitHub'; 'Expire' does not claim success while not connected", page, async () => {
    await page.goto(`${BROKER}/demo`);
    await page.locator("#connect").waitFor({ state: "visible" });
    expect((await page.locator("#demo-user").innerText()) === "alice", "signed in as alice");
    expect((await status()).includes("Not connected"), `status: ${await status()}`);
    await buttonsShown(page, ["connect"]);
    await page.click("#expire");
    await page.locator("#flash", { hasText: "Nothing to expire" }).waitFor();
    expect(!(await flash()).includes("now sees the access token as expired"), await flash());
    // A refused "Get a token" stays shown after the page has re-read the connection.
    const reread = (async () => {
      await page.waitForResponse((r) => r.url().endsWith("/demo/api/token"));
      await page.waitForResponse((r) => r.url().endsWith("/demo/api/audit"));
    })();
    await page.click("#get-token");
    await reread;
    const refused = await page.locator("#token-result").innerText();
    expect(refused === "No token: this user has not connected GitHub.", `token card: ${refused}`);
  }, "01-not-connected");

  await step("GitHub asks who is signed in, then shows the App by name; Cancel comes back in words", page, async () => {
    await page.click("#connect");
    await page.waitForURL(/8788\/login\?/);
    await screenshot(page, "02-github-sign-in");
    await page.click('[data-sign-in="octocat"]');
    await page.waitForURL(/8788\/login\/oauth\/authorize/);
    const heading = await page.locator("h1").innerText();
    expect(heading.includes("Acme Coding Agents") && !heading.includes("Iv23"), `consent heading: ${heading}`);
    expect((await page.locator("#signed-in").innerText()).includes("@octocat"), "signed in as @octocat");
    await screenshot(page, "03-consent");
    await page.click("#cancel");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#flash", { hasText: "you cancelled" }).waitFor();
    expect(!(await flash()).includes("access_denied"), `raw code shown: ${await flash()}`);
    await page.locator("#connect").waitFor({ state: "visible" }); // once the page has read the connection
  }, "04-cancelled");

  await step("Authorize, then the web app confirms as alice: 'Connected as @octocat'", page, async () => {
    await page.click("#connect");
    await page.waitForURL(/8788\/login\/oauth\/authorize/);
    await page.click("#authorize");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@octocat" }).waitFor();
    expect((await flash()).includes("confirmed the connection as alice"), await flash());
    const details = await page.locator("#details").innerText();
    expect(/Access token valid until .+; refresh token until .+/.test(details), `details: ${details}`);
    await buttonsShown(page, ["connect-other", "disconnect", "revoke"]);
  }, "05-connected");

  await step("An unknown connection ticket is 'expired or already used', never an attack", page, async () => {
    // With a connect started in this browser (its cookie set) ...
    await page.evaluate(async () => {
      await fetch("/demo/api/connect", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    });
    await page.goto(`${BROKER}/demo/return?github_connect=confirm&connect_ticket=${"A".repeat(22)}`);
    await page.locator("#flash[data-result=ticket_not_valid]").waitFor();
    expect((await flash()).startsWith("This connection link expired or was already used."), await flash());
    // ... and without one (an old tab, a link from elsewhere): covers both, accuses nobody.
    await page.goto(`${BROKER}/demo/return?github_connect=confirm&connect_ticket=${"B".repeat(22)}`);
    await page.locator("#flash[data-result=not_started_here]").waitFor();
    const text = await flash();
    expect(text.includes("expired, was already used, or was not started from this browser") && !/someone else|do not trust|attack/i.test(text), text);
    await page.locator("#login", { hasText: "@octocat" }).waitFor(); // nothing changed
  }, "05b-unknown-ticket");

  await step("A forged state gets a styled page that says what happened, with a link back to the app", page, async () => {
    const res = await page.goto(`${BROKER}/oauth/callback?code=x&state=forged`);
    expect(res?.status() === 400, `status ${res?.status()}`);
    expect((await page.locator("h1").innerText()) === "This connection link is not valid", await page.locator("h1").innerText());
    expect(await page.locator(".card").isVisible(), "styled");
    await screenshot(page, "05c-bad-state-page");
    await page.click("#back");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@octocat" }).waitFor();
  }, "05d-back-from-bad-state"); 

  let firstToken = "";
  await step("Get a token: the agent's token and the user's no-reply identity", page, async () => {
    await page.click("#get-token");
    await page.locator("#token-result[data-ok=true]").waitFor();
    const text = await page.locator("#token-result").innerText();
    expect(text.includes("commits as The Octocat <583231+octocat@users.noreply.github.com>"), text);
    firstToken = (await page.locator("#token-result").getAttribute("data-token")) ?? "";
    expect(firstToken.startsWith("ghu_"), `token prefix ${firstToken}`);
    expect(!(await page.locator("#refresh-note").isVisible()), "no refresh happened, none claimed");
    const got = await agentCredential();
    expect(got.credential === "user_token" && got.author === "The Octocat <583231+octocat@users.noreply.github.com>", JSON.stringify(got));
  }, "06-token");

  await step("After the access token expires, the next token is a refreshed one, and the page says so", page, async () => {
    await page.click("#expire");
    await page.locator("#flash", { hasText: "now sees the access token as expired" }).waitFor();
    await page.click("#get-token");
    await page.locator("#refresh-note", { hasText: "Refreshed" }).waitFor();
    const token = (await page.locator("#token-result").getAttribute("data-token")) ?? "";
    expect(token.startsWith("ghu_") && token !== firstToken, "a new access token");
    expect(!(await flash()).includes("now sees the access token as expired"), `stale message: ${await flash()}`);
  }, "07-refreshed");

  let cloneCommand = "";
  await step("Session card: issue a capability and see the exact git clone command", page, async () => {
    await page.click("#issue-cap");
    await page.locator("#cap-result[data-state=issued]").waitFor();
    cloneCommand = await page.locator("#clone-command").innerText();
    expect(/^git clone http:\/\/x:gcap1\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+@127\.0\.0\.1:8787\/git\/octo-org\/hello-world\.git hello-world$/.test(cloneCommand.trim()), "clone command shape");
  }, "08-capability-issued");

  await step("The shown git clone command, run for real, clones the repository through the broker", page, async () => {
    await runShownClone(cloneCommand, work);
    const readme = readFileSync(join(work, "hello-world", "README.md"), "utf8");
    expect(readme.startsWith("# Hello World"), readme);
    const log = await run("git", ["log", "-1", "--format=%s"], join(work, "hello-world"));
    expect(log.stdout.trim() === "initial", log.stdout);
  }, "09-cloned");

  await step("With the same capability the session pushes to agent/*, and a push to main is refused by the branch policy", page, async () => {
    expect((await page.locator("#cap-result").innerText()).includes("may push to agent/*"), await page.locator("#cap-result").innerText());
    const dir = join(work, "hello-world");
    writeFileSync(join(dir, "NOTES.md"), "written by the e2e agent\n");
    await run("git", ["add", "NOTES.md"], dir);
    await run("git", ["-c", "user.name=The Octocat", "-c", "user.email=583231+octocat@users.noreply.github.com", "commit", "-q", "-m", "agent work"], dir);
    await run("git", ["push", "-q", "origin", "HEAD:agent/demo"], dir);
    let refused = "";
    await run("git", ["push", "origin", "HEAD:main"], dir).catch((err: { stderr?: string }) => (refused = err.stderr ?? "failed"));
    expect(refused.includes("branch not allowed for this session: agent/*"), `git said: ${refused}`);
    const remote = await run("git", ["ls-remote", "origin"], dir);
    expect(/refs\/heads\/agent\/demo/.test(remote.stdout), "agent/demo was pushed");
  }, "09b-pushed");

  await step("The session card's git and gh block, pasted into a terminal, clones, pushes a branch, opens a PR, comments and reads the checks", page, async () => {
    const block = await page.locator("#agent-commands").innerText();
    expect(block.includes("GH_ENTERPRISE_TOKEN=gcap1.") && block.includes("gh pr create"), `block: ${block.slice(0, 200)}`);
    // A terminal of its own: an empty home, nothing set but what the block exports.
    const home = mkdtempSync(join(tmpdir(), "e2e-gh-"));
    const shell = await run("bash", ["-e", "-c", block], home, { HOME: home, GH_CONFIG_DIR: join(home, ".gh"), GH_PROMPT_DISABLED: "1", GH_NO_UPDATE_NOTIFIER: "1", NO_COLOR: "1" }).catch((err: { stdout?: string; stderr?: string }) => err);
    const out = `${shell.stdout ?? ""}${shell.stderr ?? ""}`;
    expect(/https:\/\/localhost:8443\/octo-org\/hello-world\/pull\/\d+\n/.test(shell.stdout ?? ""), `gh pr create: ${out.slice(-600)}`);
    expect(/#issuecomment-\d+/.test(shell.stdout ?? ""), `gh pr comment: ${out.slice(-600)}`);
    expect(/^lint\tpass/m.test(shell.stdout ?? ""), `gh pr checks: ${out.slice(-600)}`);
    rmSync(home, { recursive: true, force: true });
  }, "09c-gh");

  await step("Revoke the capability: the same command is refused (invalid_capability)", page, async () => {
    await page.click("#revoke-cap");
    await page.locator("#cap-result[data-state=revoked]").waitFor();
    expect(!(await page.locator("#clone-command").isVisible()), "the revoked command is no longer shown");
    rmSync(join(work, "hello-world"), { recursive: true, force: true });
    let refused = "";
    await runShownClone(cloneCommand, work).catch((err: { stderr?: string }) => (refused = err.stderr ?? "failed"));
    expect(refused.includes("invalid_capability"), `git said: ${refused}`);
    expect(!existsSync(join(work, "hello-world", "README.md")), "nothing cloned");
  }, "10-capability-revoked");

  await step("The audit table lists what was done with alice's identity: connect, tokens, the capability and its push, newest first", page, async () => {
    await page.reload();
    await page.locator("#audit tbody tr").first().waitFor();
    const headers = await page.locator("#audit thead th").allTextContents();
    expect(JSON.stringify(headers) === JSON.stringify(["When", "What", "Details", "Times"]), `columns: ${headers.join(" | ")}`);
    const { rows } = await readAudit(page);
    const text = rows.join("\n");
    for (const what of ["connected", "token issued", "capability issued", "capability redeemed", "capability revoked", "refs/heads/agent/demo"]) {
      expect(text.includes(what), `audit shows ${what}: ${text.slice(0, 400)}`);
    }
    expect(rows[0]!.includes("capability revoked"), `newest first: ${rows[0]}`);
    expect(!/gh[usr]_|gcap1\./.test(text), "no credential in the audit trail");
  }, "10b-audit-trail");

  await step("A capability beyond the user's permission is refused in words (push on a pull-only repository)", page, async () => {
    await page.fill("#cap-repository", "octo-org/docs");
    await page.selectOption("#cap-permission", "push");
    await page.click("#issue-cap");
    await page.locator("#cap-result[data-state=refused]").waitFor();
    const text = await page.locator("#cap-result").innerText();
    expect(text.includes("cannot reach that repository") && !text.includes("no_repo_access"), text);
    await page.fill("#cap-repository", "octo-org/hello-world");
  }, "11-capability-refused");

  await step("A bad branch pattern is blamed on the pattern, not on the repository", page, async () => {
    await page.fill("#cap-branches", "feature/my branch");
    await page.click("#issue-cap");
    // The card already shows the previous refusal: wait for this one's words.
    await page.locator("#cap-result[data-state=refused]", { hasText: "branches must be" }).waitFor();
    const text = await page.locator("#cap-result").innerText();
    expect(text.includes("branches must be") && !text.includes("repository"), text);
    await page.fill("#cap-branches", "agent/*");
  }, "11b-bad-branch-pattern");

  await step("The example agent Worker gets a capability remote through the packaged client and clones with it", page, async () => {
    const res = await fetch(`${AGENT}/capability?user=alice&repo=octo-org/hello-world`);
    const body = (await res.json()) as { remote?: string; reason?: string };
    expect(res.status === 200 && !!body.remote, JSON.stringify({ status: res.status, reason: body.reason }));
    await run("git", ["clone", "-q", body.remote!, "agent-clone"], work);
    expect(existsSync(join(work, "agent-clone", "README.md")), "agent clone has README.md");
  }, "12-agent-capability");

  let gitlabClone = "";
  await step("Connect GitLab: GitLab's consent screen names the application and its scopes, and the web app confirms", page, async () => {
    await page.goto(`${BROKER}/demo`);
    await page.locator("#gl-connect", { hasText: "Connect GitLab" }).waitFor({ state: "visible" });
    expect((await page.locator("#gl-status").innerText()).includes("Not connected"), await page.locator("#gl-status").innerText());
    await page.click("#gl-connect");
    await page.waitForURL(/8790\/oauth\/authorize\?/);
    expect((await page.locator("#gitlab-app-name").innerText()) === "Acme Coding Agents", "the application by name");
    const scopes = await page.locator("#gitlab-scopes").innerText();
    expect(["read_user", "write_repository", "api"].every((s) => scopes.includes(s)), `scopes: ${scopes}`);
    await screenshot(page, "12b-gitlab-consent");
    await page.click('[data-gitlab-authorize="octo-gl"]');
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#gl-login", { hasText: "@octo-gl" }).waitFor();
    expect((await flash()).includes("GitLab connected as @octo-gl") && (await flash()).includes("as alice"), await flash());
    await page.locator("#login", { hasText: "@octocat" }).waitFor(); // the GitHub connection is untouched
  }, "12c-gitlab-connected");

  await step("GitLab token and capability for a nested-group project: GitLab's no-reply identity, and the shown clone runs", page, async () => {
    await page.click("#gl-get-token");
    await page.locator("#gl-result[data-ok=true]").waitFor();
    const text = await page.locator("#gl-result").innerText();
    expect(text.includes("commits as Octo on GitLab <4101-octo-gl@users.noreply.127.0.0.1>"), text);
    await page.click("#gl-issue-cap");
    await page.locator("#gl-clone").waitFor({ state: "visible" });
    gitlabClone = await page.locator("#gl-clone").innerText();
    expect(/@127\.0\.0\.1:8787\/git\/gitlab\/acme\/platform\/api\.git api$/.test(gitlabClone.trim()), "GitLab clone command shape");
    await runShownClone(gitlabClone, work);
    expect(readFileSync(join(work, "api", "README.md"), "utf8").startsWith("# API"), "cloned the GitLab project");
    await page.fill("#gl-repository", "acme/platform/docs");
    await page.click("#gl-issue-cap");
    await page.locator("#gl-result[data-ok=false]").waitFor();
    const refused = await page.locator("#gl-result").innerText();
    expect(refused === "No capability: the GitLab account cannot reach that repository with that permission.", refused);
    await page.fill("#gl-repository", "acme/platform/api");
  }, "12d-gitlab-token");

  await step("Disconnect GitLab revokes the token at GitLab; the session's clone command is refused", page, async () => {
    await page.click("#gl-disconnect");
    await page.locator("#flash", { hasText: "GitLab token: revoked" }).waitFor();
    await page.locator("#gl-connect", { hasText: "Connect GitLab" }).waitFor({ state: "visible" });
    rmSync(join(work, "api"), { recursive: true, force: true });
    let refused = "";
    await runShownClone(gitlabClone, work).catch((err: { stderr?: string }) => (refused = err.stderr ?? "failed"));
    expect(refused.includes("source_unavailable"), `git said: ${refused}`);
    expect((await page.locator("#gl-result").innerText()).startsWith("Nested groups"), "the card's old results went with the connection");
    await page.locator("#audit tbody tr", { hasText: "disconnected (GitLab)" }).first().waitFor();
    const row = await page.locator("#audit tbody tr", { hasText: "disconnected (GitLab)" }).first().innerText();
    expect(row.includes("GitLab user id: 4101") && !row.includes("githubUserId"), `audit row: ${row}`);
  }, "12e-gitlab-disconnected");

  const mallory = await browser.newContext();
  const malloryPage = await mallory.newPage();
  malloryPage.setDefaultTimeout(15_000);
  let attackUrl = "";
  await step("mallory, in her own browser, starts a connect and keeps the authorize link", malloryPage, async () => {
    await malloryPage.goto(`${BROKER}/demo?as=mallory`);
    await malloryPage.locator("#connect").waitFor({ state: "visible" });
    expect((await malloryPage.locator("#demo-user").innerText()) === "mallory", "signed in as mallory");
    const started = (await malloryPage.evaluate(async () => {
      const res = await fetch("/demo/api/connect", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
      return res.json();
    })) as { ok: boolean; authorizeUrl?: string };
    expect(started.ok && !!started.authorizeUrl, JSON.stringify(started));
    attackUrl = started.authorizeUrl!;
  }, "13-mallory");

  await step("The hijack: mallory's link opened in alice's browser (already authorized) is refused, nobody gets alice's GitHub", page, async () => {
    await page.goto(attackUrl);
    // GitHub skips the consent screen for a user who already authorized the App.
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#flash[data-result=not_started_here]").waitFor();
    expect((await flash()).includes("not started from this browser. Nothing was connected"), await flash());
    await page.locator("#login", { hasText: "@octocat" }).waitFor(); // alice keeps her own connection
    await malloryPage.reload();
    await malloryPage.locator("#connect").waitFor({ state: "visible" });
    expect((await malloryPage.locator("#status").innerText()).includes("Not connected"), "mallory is not connected");
    const got = await agentCredential("mallory");
    expect(got.credential === "installation_token" && got.reason === "not_connected", `mallory's agent: ${JSON.stringify(got)}`);
  }, "14-hijack-refused");
  await screenshot(malloryPage, "15-mallory-not-connected");
  await mallory.close();

  await step("'Connect a different account' shows GitHub's account picker, then connects @hubot", page, async () => {
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
  }, "17-other-account");

  const eitherDir = join(work, "either");
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
  await step("A session that may fall back to the App ('the user, then the App's bot') pushes as @hubot while hubot is connected", page, async () => {
    await page.selectOption("#cap-identity", "user_or_app");
    await page.click("#issue-cap");
    await page.locator("#cap-result[data-identity=user_or_app]").waitFor();
    const text = await page.locator("#cap-result").innerText();
    const trailer = /Co-authored-by: [^<]+<[^>]+>/.exec(text)?.[0] ?? "";
    expect(trailer === `Co-authored-by: ${hubot}`, text);
    eitherTrailer = trailer;
    await runShownClone((await page.locator("#clone-command").innerText()).replace(/ hello-world$/, " either"), work);
    await commitAndPush("either-1.txt", "agent/either-1", eitherTrailer);
    expect((await lastPusher()) === "hubot", `pushed by ${await lastPusher()}`);
    await page.selectOption("#cap-identity", "user");
  }, "17b-user-or-app-as-user");

  await step("Revoke on GitHub (with a way back): the signed webhook turns the card into 'Reconnect'", page, async () => {
    await page.click("#revoke");
    await page.waitForURL(/8788\/settings\/applications/);
    expect(await page.locator("#back").isVisible(), "the settings page has a way back");
    await screenshot(page, "18-github-settings");
    await page.click('[data-revoke="Iv23.emulator-standard:9919"]');
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#flash", { hasText: "answered 202" }).waitFor();
    await page.locator("#reconnect").waitFor({ state: "visible" });
    expect((await page.locator("#reason").innerText()).includes("revoked the App on GitHub"), await status());
    await buttonsShown(page, ["reconnect", "connect-other"]);
    // The session's capability is still on the page after the round trip to GitHub's settings.
    expect((await page.locator("#cap-result").getAttribute("data-identity")) === "user_or_app", "capability kept");
    expect((await page.locator("#clone-command").innerText()).includes("gcap1."), "clone command kept");
    await page.locator("#cap-note", { hasText: "now pushes as the App's bot" }).waitFor();
    await page.click("#get-token");
    await page.locator("#token-result[data-reason=revoked]").waitFor();
    const refusal = await page.locator("#token-result").innerText();
    expect(refusal === "No token: the user revoked the App on GitHub; they need to reconnect.", `token card: ${refusal}`);
    const got = await agentCredential();
    expect(got.credential === "installation_token" && got.reason === "revoked", JSON.stringify(got));
  }, "19-revoked");

  await step("After the revocation the same session keeps pushing, now as the App's bot; the commit is still @hubot's, with the trailer", page, async () => {
    await commitAndPush("either-2.txt", "agent/either-2", eitherTrailer);
    expect((await lastPusher()) === "acme-coding-agents[bot]", `pushed by ${await lastPusher()}`);
    const log = await run("git", ["log", "-1", "--format=%an <%ae>%n%B"], eitherDir);
    expect(log.stdout.startsWith(hubot) && log.stdout.includes(eitherTrailer), log.stdout);
  }, "19b-user-or-app-as-bot");

  await step("Reconnect asks for consent again (the grant was revoked) and connects", page, async () => {
    await page.click("#reconnect");
    await page.waitForURL(/8788\/login\/oauth\/authorize/);
    await page.click("#authorize");
    await page.waitForURL(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@hubot" }).waitFor();
  }, "20-reconnected");

  await step("Restarting npm start keeps the connection: a forced refresh still works", page, async () => {
    await stopProcess(server);
    server = startServer();
    await waitForServers(false);
    await page.goto(`${BROKER}/demo`);
    await page.locator("#login", { hasText: "@hubot" }).waitFor();
    await page.click("#expire");
    await page.locator("#flash", { hasText: "now sees the access token as expired" }).waitFor();
    await page.click("#get-token");
    await page.locator("#refresh-note", { hasText: "Refreshed" }).waitFor();
  }, "21-after-restart");

  await step("Disconnect revokes the grant, clears the old token and shows 'Connect GitHub'", page, async () => {
    await page.click("#disconnect");
    await page.locator("#flash", { hasText: "GitHub grant: revoked" }).waitFor();
    await page.locator("#connect").waitFor({ state: "visible" });
    await buttonsShown(page, ["connect"]);
    const text = await page.locator("#token-result").innerText();
    expect(text === "No token requested yet." && !text.includes("ghu_"), `token card still shows: ${text}`);
  }, "22-disconnected");

  await step("The audit trail is bounded: ten rows a page, 'Older' and 'Newest' to move", page, async () => {
    await page.goto(`${BROKER}/demo`);
    const { rows, pages } = await readAudit(page);
    expect(pages >= 2, `${rows.length} rows on ${pages} page(s)`);
    expect(rows.at(-1)!.includes("connected"), `oldest row: ${rows.at(-1)}`);
    await page.click("#audit-newest");
    await page.locator("#audit-page", { hasText: "page 1" }).waitFor();
    expect(!(await page.locator("#audit-newest").isVisible()), "no 'Newest' on the newest page");
  }, "23-audit-pages");

  await browser.close();
}

try {
  await main();
} catch (err) {
  failed++;
  console.log(`FAIL ${(err as Error).message}`);
} finally {
  await Promise.all([stopProcess(server), stopProcess(agent)]);
  for (const dir of [stateDir, work]) rmSync(dir, { recursive: true, force: true });
}
if (failed) console.log(`--- npm start / agent output ---\n${serverLog.slice(-6000)}`);
console.log(`screenshots in ${ARTIFACTS}/`);
console.log(`e2e: ${passed} passed, ${failed} failed`);
// Same keys as vitest's JSON report, for scripts/summary.mjs.
writeFileSync("artifacts/e2e.json", JSON.stringify({ numPassedTests: passed, numFailedTests: failed }));
process.exit(failed === 0 ? 0 : 1);
