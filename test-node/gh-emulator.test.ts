/**
 * The real `gh` (and `git`) straight against the GitHub emulator, through the local TLS front
 * in GitHub Enterprise Server's URL shapes: what a user sees on stdout, and the emulator's
 * state behind it (who opened the pull request, what the merge wrote to the bare repository).
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import githubAppJwt from "universal-github-app-jwt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRepository, gitHttpBackend, run } from "../emulator/git-backend.ts";
import { gitRefs } from "../emulator/git-refs.ts";
import { GitHubEmulator } from "../emulator/github.ts";
import { serve } from "../emulator/serve.ts";
import { APP_IDENTITIES, APP_KEY_BINDINGS } from "../test/support/app-keys.ts";
import { ghesToGitHub, runGh, startTlsFront, type GhTarget, type TlsFront, GH_MISSING } from "../emulator/tls-front.ts";

const REPO = "octo-org/hello-world";
const root = mkdtempSync(join(tmpdir(), "gh-emulator-"));
let emulator: GitHubEmulator;
let server: { url: string; close: () => Promise<void> };
let front: TlsFront;
let target: GhTarget;
let work: string;

const gh = (args: string[]) => runGh(target, args, { cwd: work });
const control = async (path: string, body?: unknown) => {
  const res = await fetch(`${server.url}/_emulator/${path}`, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
  return (await res.json()) as any;
};
const git = (args: string[]) => run("git", args, work, { GIT_SSL_CAINFO: front.certFile, GIT_AUTHOR_NAME: "Octo Cat", GIT_AUTHOR_EMAIL: "octocat@example.com", GIT_COMMITTER_NAME: "Octo Cat", GIT_COMMITTER_EMAIL: "octocat@example.com" });

beforeAll(async () => {
  if (GH_MISSING) return;
  await createRepository(root, REPO, { "README.md": "# Hello World\n" });
  await createRepository(root, "octo-org/secret", { "README.md": "# secret\n" });
  emulator = new GitHubEmulator([{ clientId: "Iv1.gh", clientSecret: "s" }], { gitBackend: gitHttpBackend(root), gitRefs: gitRefs(root) });
  emulator.addUser({ id: 583231, login: "octocat", name: "The Octocat", repos: { [REPO]: "push" } });
  emulator.addUser({ id: 9919, login: "hubot", name: null, repos: { [REPO]: "push", "octo-org/secret": "push" } });
  server = await serve((request) => emulator.fetch(request));
  front = await startTlsFront(server.url, { rewrite: ghesToGitHub });
  target = { host: front.host, token: emulator.issuePair("Iv1.gh", 583231).accessToken, certFile: front.certFile };

  // A clone over HTTPS through the front, and a branch pushed with one commit.
  work = mkdtempSync(join(tmpdir(), "gh-work-"));
  const remote = `https://x-access-token:${target.token}@${front.host}/${REPO}.git`;
  await run("git", ["clone", "-q", remote, work], undefined, { GIT_SSL_CAINFO: front.certFile });
  await git(["checkout", "-q", "-b", "agent/greeting"]);
  writeFileSync(join(work, "greeting.txt"), "hello\n");
  await git(["add", "greeting.txt"]);
  await git(["commit", "-q", "-m", "Add a greeting"]);
  await git(["push", "-q", "origin", "agent/greeting"]);
}, 120_000);

afterAll(async () => {
  if (GH_MISSING) return;
  await front?.close();
  await server?.close();
});

describe.skipIf(GH_MISSING !== null)("gh against the GitHub emulator", () => {
  it("gh repo view shows the repository", async () => {
    const out = await gh(["repo", "view", REPO]);
    expect(out.stderr).toBe("");
    expect(out.stdout).toContain(`name:\t${REPO}`);
  });

  it("gh pr create opens a pull request authored by the token's user; gh pr list and gh api list it", async () => {
    const created = await gh(["pr", "create", "-R", REPO, "--head", "agent/greeting", "--base", "main", "--title", "Add a greeting", "--body", "Says hello."]);
    expect(created.stderr).not.toMatch(/error|GraphQL/i);
    expect(created.stdout.trim()).toBe(`https://${front.host}/${REPO}/pull/1`);
    const { pulls } = await control(`pulls?repository=${REPO}`);
    expect(pulls).toMatchObject([{ number: 1, title: "Add a greeting", author: "octocat", head: "agent/greeting", base: "main", state: "OPEN" }]);

    const listed = await gh(["pr", "list", "-R", REPO]);
    expect(listed.stdout).toMatch(/^1\tAdd a greeting\tagent\/greeting\tOPEN/m);

    const api = await gh(["api", `repos/${REPO}/pulls`]);
    expect(JSON.parse(api.stdout)).toMatchObject([{ number: 1, title: "Add a greeting", user: { login: "octocat" }, head: { ref: "agent/greeting" }, state: "open" }]);
  });

  it("gh pr comment and gh pr view --comments", async () => {
    const commented = await gh(["pr", "comment", "1", "-R", REPO, "--body", "Looks good to me."]);
    expect(commented.stdout.trim()).toMatch(new RegExp(`^https://${front.host}/${REPO}/pull/1#issuecomment-\\d+$`));
    const viewed = await gh(["pr", "view", "1", "-R", REPO, "--comments"]);
    expect(viewed.stdout).toContain("author:\toctocat");
    expect(viewed.stdout).toContain("Looks good to me.");
  });

  it("gh pr checks shows the check runs and the jobs of runs on the head commit", async () => {
    await control("check-runs", { repository: REPO, headBranch: "agent/greeting", name: "lint", conclusion: "success", detailsUrl: "https://ci.example/lint" });
    await control("workflow-runs", {
      repository: REPO,
      workflowName: "CI",
      headBranch: "agent/greeting",
      actor: "octocat",
      jobs: [{ name: "test", conclusion: "failure", steps: [{ name: "Set up job", log: "ok\n" }, { name: "Run tests", conclusion: "failure", log: "FAIL greeting.test\nexpected hello, got bye\n" }] }],
    });
    const checks = await gh(["pr", "checks", "1", "-R", REPO]);
    expect(checks.code).toBe(1); // a failing check, as on GitHub
    expect(checks.stdout).toMatch(/^lint\tpass\t/m);
    expect(checks.stdout).toMatch(/^test\tfail\t/m);
  });

  it("gh run list and gh run view --log-failed show the failed step's log", async () => {
    const runs = await gh(["run", "list", "-R", REPO]);
    expect(runs.stdout).toMatch(/completed\tfailure\tCI\tCI\tagent\/greeting\tpush\t\d+/);
    const id = /\tpush\t(\d+)\t/.exec(runs.stdout)![1]!;
    const log = await gh(["run", "view", id, "-R", REPO, "--log-failed"]);
    expect(log.stderr).toBe("");
    expect(log.stdout).toBe("test\tRun tests\tFAIL greeting.test\ntest\tRun tests\texpected hello, got bye\n");
  });

  it("gh issue view and gh issue comment", async () => {
    await control("labels", { repository: REPO, name: "bug", color: "d73a4a" });
    const { number } = await control("issues", { repository: REPO, title: "Greeting is rude", body: "It says bye.", author: "hubot", labels: ["bug"] });
    const viewed = await gh(["issue", "view", String(number), "-R", REPO]);
    expect(viewed.stdout).toContain("title:\tGreeting is rude");
    expect(viewed.stdout).toContain("author:\thubot");
    expect(viewed.stdout).toContain("labels:\tbug");
    expect(viewed.stdout).toContain("It says bye.");
    const commented = await gh(["issue", "comment", String(number), "-R", REPO, "--body", "Fixed in #1."]);
    expect(commented.stdout.trim()).toMatch(new RegExp(`/${REPO}/issues/${number}#issuecomment-\\d+$`));
    const { issues } = await control(`issues?repository=${REPO}`);
    expect(issues[0].comments).toEqual([{ author: "octocat", body: "Fixed in #1." }]);
  });

  it("gh pr merge merges in the bare repository", async () => {
    const merged = await gh(["pr", "merge", "1", "-R", REPO, "--merge"]);
    expect(merged.code).toBe(0);
    const { pulls } = await control(`pulls?repository=${REPO}`);
    expect(pulls[0]).toMatchObject({ state: "MERGED", mergedBy: "octocat" });
    // The base branch moved to a real merge commit whose second parent is the branch's tip.
    await git(["fetch", "-q", "origin"]);
    const { stdout } = await git(["log", "-1", "--format=%P %s", "origin/main"]);
    const head = (await git(["rev-parse", "agent/greeting"])).stdout.trim();
    expect(stdout.trim()).toMatch(new RegExp(`^[0-9a-f]{40} ${head} Merge pull request #1 from octo-org/agent/greeting$`));
    const viewed = await gh(["pr", "view", "1", "-R", REPO]);
    expect(viewed.stdout).toContain("state:\tMERGED");
  });

  it("says what GitHub says for what does not exist or cannot be seen", async () => {
    const missing = await gh(["pr", "view", "999", "-R", REPO]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toBe("GraphQL: Could not resolve to a PullRequest with the number of 999. (repository.pullRequest)\n");
    const hidden = await gh(["repo", "view", "octo-org/secret"]);
    expect(hidden.code).toBe(1);
    expect(hidden.stderr).toContain("Could not resolve to a Repository with the name 'octo-org/secret'.");
    const api = await gh(["api", "repos/octo-org/secret/pulls"]);
    expect(api.stderr).toContain("HTTP 404");
    const unknown = await gh(["api", "graphql", "-f", "query={ viewer { login nope } }"]);
    expect(unknown.stderr).toContain("Field 'nope' doesn't exist on type 'User'");
  });

  it("a pull request opened with an installation token is the App's bot's", async () => {
    const app = APP_IDENTITIES[0]!;
    emulator.installations.registerApp(app);
    emulator.installations.addInstallation({ id: 77, clientId: app.clientId, account: "octo-org", repositories: [REPO], permissions: { contents: "write", pull_requests: "write" } });
    const { token: jwt } = await githubAppJwt<string>({ id: app.clientId, privateKey: APP_KEY_BINDINGS.GITHUB_APP_PRIVATE_KEY_STANDARD! });
    const minted = await fetch(`${server.url}/app/installations/77/access_tokens`, { method: "POST", headers: { authorization: `Bearer ${jwt}` } });
    const { token } = (await minted.json()) as { token: string };
    await git(["checkout", "-q", "-b", "agent/bot", "origin/main"]);
    writeFileSync(join(work, "bot.txt"), "beep\n");
    await git(["add", "bot.txt"]);
    await git(["commit", "-q", "-m", "Beep"]);
    await git(["push", "-q", "origin", "agent/bot"]);
    const created = await runGh({ ...target, token }, ["pr", "create", "-R", REPO, "--head", "agent/bot", "--base", "main", "--title", "Beep", "--body", ""], { cwd: work });
    expect(created.stdout.trim()).toMatch(new RegExp(`/${REPO}/pull/\\d+$`));
    const { pulls } = await control(`pulls?repository=${REPO}`);
    expect(pulls.find((p: { title: string }) => p.title === "Beep")).toMatchObject({ author: `${app.slug}[bot]`, state: "OPEN" });
    const viewed = await gh(["pr", "view", "agent/bot", "-R", REPO]);
    expect(viewed.stdout).toContain(`author:\t${app.slug}`);
  });

  it("GraphQL refuses a request without a token (401)", async () => {
    const res = await fetch(`${server.url}/graphql`, { method: "POST", body: JSON.stringify({ query: "{ viewer { login } }" }) });
    expect(res.status).toBe(401);
  });
});
