/**
 * The agent's own tools through one capability: Debian's real `gh` and `git`, unmodified,
 * pointed at the broker's GitHub-shaped surface (`GH_HOST=<AGENT_HOST>`,
 * `GH_ENTERPRISE_TOKEN=<capability>`, `gh auth setup-git`) behind a local TLS front, with the
 * GitHub emulator (GitHub's real GraphQL schema) behind the broker. What a person at the
 * terminal sees, and the emulator's record of who did what.
 */
import { mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRepository, gitHttpBackend, run } from "../emulator/git-backend.ts";
import { gitRefs } from "../emulator/git-refs.ts";
import { GitHubEmulator } from "../emulator/github.ts";
import { serve } from "../emulator/serve.ts";
import { APP_IDENTITIES } from "../test/support/app-keys.ts";
import { APPS } from "../test/support/env.ts";
import { freePort, startHarness, type Harness } from "../test/support/harness.ts";
import { runGh, startTlsFront, type GhResult, type TlsFront, GH_MISSING } from "../emulator/tls-front.ts";

const REPO = "octo-org/hello-world";
const OTHER = "octo-org/secret";
const USER = 583231;
const LOGIN = `user${USER}`;

let harness: Harness;
let front: TlsFront;
let host: string;
let home: string;
let work: string;
let capability: string;
let logs: { url: string; close: () => Promise<void> };

const root = mkdtempSync(join(tmpdir(), "gh-broker-"));
const emulator = new GitHubEmulator(
  Object.values(APPS).map((a) => ({ ...a })),
  { gitBackend: gitHttpBackend(root), gitRefs: gitRefs(root) },
);

/** The sandbox's environment: the capability as gh's Enterprise token, the TLS front's certificate, nothing else. */
function env(token = capability): Record<string, string> {
  return {
    HOME: home,
    GH_CONFIG_DIR: join(home, ".config", "gh"),
    GH_ENTERPRISE_TOKEN: token,
    GIT_AUTHOR_NAME: "Agent",
    GIT_AUTHOR_EMAIL: `${USER}+${LOGIN}@users.noreply.github.com`,
    GIT_COMMITTER_NAME: "Agent",
    GIT_COMMITTER_EMAIL: `${USER}+${LOGIN}@users.noreply.github.com`,
  };
}
const gh = (args: string[], token = capability): Promise<GhResult> => runGh({ host, token, certFile: front.certFile }, args, { cwd: work, env: env(token) });
const git = (args: string[], cwd = work) => run("git", args, cwd, { ...env(), GIT_SSL_CAINFO: front.certFile, GH_HOST: host, SSL_CERT_FILE: front.certFile });
const control = async (path: string, body?: unknown) =>
  (await (await emulator.fetch(new Request(`http://github.harness/_emulator/${path}`, body === undefined ? {} : { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) }))).json()) as any;

async function issue(body: Record<string, unknown>): Promise<string> {
  const res = await harness.call(`/v1/users/alice/capabilities`, { appType: "standard", repository: REPO, sessionId: "gh-session", branches: ["agent/*"], ...body });
  const grant = (await res.json()) as { capability?: string };
  if (!grant.capability) throw new Error(`no capability: ${JSON.stringify(grant)}`);
  return grant.capability;
}

async function commitAndPush(branch: string, file: string): Promise<void> {
  await git(["checkout", "-q", "-b", branch, "origin/main"]);
  writeFileSync(join(work, file), `${file}\n`);
  await git(["add", file]);
  await git(["commit", "-q", "-m", `Add ${file}`]);
  await git(["push", "-q", "origin", branch]);
}

beforeAll(async () => {
  if (GH_MISSING) return;
  await createRepository(root, REPO, { "README.md": "# Hello World\n" });
  await createRepository(root, OTHER, { "README.md": "# secret\n" });
  const port = await freePort();
  host = `localhost:${port}`;
  harness = await startHarness(emulator, undefined, { bindings: { AGENT_HOST: host } });
  front = await startTlsFront(harness.url.origin, { port });
  // GitHub's log downloads come from another host, without a token: the emulator on a port of its own.
  logs = await serve((request) => emulator.fetch(request));
  emulator.logsOrigin = logs.url;
  emulator.apps.get(APPS.standard.clientId)!.webhookUrl = new URL("/webhooks/github/standard", harness.url).toString();
  emulator.installations.addInstallation({ id: 9401, clientId: APPS.standard.clientId, account: "octo-org", repositories: [REPO], permissions: { contents: "write", pull_requests: "write" } });
  await harness.connect("alice", USER, { [REPO]: "push", [OTHER]: "push" });
  capability = await issue({ identity: "user_or_app" });

  home = mkdtempSync(join(tmpdir(), "gh-home-"));
  work = join(home, "hello-world");
  // `gh auth setup-git`: git asks gh for the host's credential, which is the capability.
  const setup = await runGh({ host, token: capability, certFile: front.certFile }, ["auth", "setup-git", "--hostname", host], { env: env() });
  if (setup.code !== 0) throw new Error(`gh auth setup-git: ${setup.stderr}`);
  await run("git", ["clone", "-q", `https://${host}/${REPO}.git`, work], home, { ...env(), GIT_SSL_CAINFO: front.certFile, GH_HOST: host, SSL_CERT_FILE: front.certFile });
}, 120_000);

afterAll(async () => {
  if (GH_MISSING) return;
  await front?.close();
  await logs?.close();
  await harness?.dispose();
});

describe.skipIf(GH_MISSING !== null)("gh and git through one capability", () => {
  it("git (gh auth setup-git) clones, pushes to agent/*, and a push to main is refused in git's words", async () => {
    await commitAndPush("agent/greeting", "greeting.txt");
    await git(["checkout", "-q", "-b", "main-change", "origin/main"]);
    writeFileSync(join(work, "main.txt"), "no\n");
    await git(["add", "main.txt"]);
    await git(["commit", "-q", "-m", "To main"]);
    const refused = await git(["push", "origin", "HEAD:main"]).catch((e: { stderr: string }) => e);
    expect((refused as { stderr: string }).stderr).toContain("! [remote rejected] HEAD -> main (branch not allowed for this session: agent/*)");
  });

  it("gh repo view, gh pr create as the user, gh pr list, gh api", async () => {
    const viewed = await gh(["repo", "view", REPO]);
    expect(viewed.stdout).toContain(`name:\t${REPO}`);
    const created = await gh(["pr", "create", "-R", REPO, "--head", "agent/greeting", "--base", "main", "--title", "Add a greeting", "--body", "Says hello."]);
    expect(created.stderr).toBe("");
    expect(created.stdout.trim()).toMatch(new RegExp(`/${REPO}/pull/1$`));
    const { pulls } = await control(`pulls?repository=${REPO}`);
    expect(pulls).toMatchObject([{ number: 1, title: "Add a greeting", author: LOGIN, head: "agent/greeting", base: "main" }]);
    expect((await gh(["pr", "list", "-R", REPO])).stdout).toMatch(/^1\tAdd a greeting\tagent\/greeting\tOPEN/m);
    const api = await gh(["api", `repos/${REPO}/pulls`]);
    expect(JSON.parse(api.stdout)).toMatchObject([{ number: 1, user: { login: LOGIN } }]);
  });

  it("gh pr comment, gh pr view --comments, gh pr checks, gh issue view, gh run list, gh run view --log-failed", async () => {
    const commented = await gh(["pr", "comment", "1", "-R", REPO, "--body", "Ready for review."]);
    expect(commented.code).toBe(0);
    expect((await gh(["pr", "view", "1", "-R", REPO, "--comments"])).stdout).toContain("Ready for review.");
    await control("check-runs", { repository: REPO, headBranch: "agent/greeting", name: "lint", conclusion: "success" });
    await control("workflow-runs", {
      repository: REPO,
      workflowName: "CI",
      headBranch: "agent/greeting",
      actor: LOGIN,
      jobs: [{ name: "test", conclusion: "failure", steps: [{ name: "Run tests", conclusion: "failure", log: "FAIL greeting.test\n" }] }],
    });
    const checks = await gh(["pr", "checks", "1", "-R", REPO]);
    expect(checks.stdout).toMatch(/^lint\tpass\t/m);
    expect(checks.stdout).toMatch(/^test\tfail\t/m);
    const { number } = await control("issues", { repository: REPO, title: "Greeting is rude", body: "It says bye.", author: LOGIN });
    expect((await gh(["issue", "view", String(number), "-R", REPO])).stdout).toContain("title:\tGreeting is rude");
    const runs = await gh(["run", "list", "-R", REPO]);
    const id = /\tpush\t(\d+)\t/.exec(runs.stdout)?.[1];
    expect(id, runs.stdout + runs.stderr).toBeDefined();
    const log = await gh(["run", "view", id!, "-R", REPO, "--log-failed"]);
    expect(log.stdout).toBe("test\tRun tests\tFAIL greeting.test\n");
  });

  it("refuses, in words gh prints, everything outside the session", async () => {
    const otherPull = await control("pulls", { repository: OTHER, head: "feature", title: "Secret plans", author: LOGIN });
    const cases: [string, Promise<GhResult>, RegExp][] = [
      ["gh api on another repository", gh(["api", `repos/${OTHER}/pulls`]), /repository_mismatch: /],
      ["gh pr create -R another repository", gh(["pr", "create", "-R", OTHER, "--head", "agent/greeting", "--base", "main", "--title", "x", "--body", ""]), /repository_mismatch/],
      ["the owner's other repositories", gh(["api", "graphql", "-f", `query={ repository(owner: "octo-org", name: "hello-world") { owner { repositories(first: 5) { nodes { name } } } } }`]), /repository_mismatch/],
      ["an alias and a fragment hiding another repository", gh(["api", "graphql", "-f", `query=query { r: repository(owner: "octo-org", name: "secret") { ...F } } fragment F on Repository { issues(first: 1) { totalCount } }`]), /repository_mismatch/],
      ["another repository's pull request by id", gh(["api", "graphql", "-f", "query=query($id: ID!) { node(id: $id) { ... on PullRequest { title body } } }", "-f", `id=${otherPull.id}`]), /repository_mismatch/],
      ["a search without the repository qualifier", gh(["api", "graphql", "-f", 'query={ search(query: "secret", type: ISSUE, first: 3) { issueCount } }']), /repository_mismatch/],
      ["gh pr merge into main, outside agent/*", gh(["pr", "merge", "1", "-R", REPO, "--merge"]), /branch_not_allowed/],
      ["gh pr edit --base: a new base is judged as a merge into it", gh(["pr", "edit", "1", "-R", REPO, "--base", "release"]), /branch_not_allowed/],
      ["gh issue create: issues are read and commented on, not written", gh(["issue", "create", "-R", REPO, "--title", "x", "--body", "y"]), /operation_not_allowed/],
    ];
    for (const [name, pending, words] of cases) {
      const out = await pending;
      expect(out.code, name).not.toBe(0);
      expect(out.stderr, name).toMatch(words);
      expect(out.stderr + out.stdout, name).not.toContain("Secret plans");
    }
    const { pulls } = await control(`pulls?repository=${REPO}`);
    expect(pulls[0].state).toBe("OPEN");
    // A pull capability gets no mutation.
    const pull = await issue({ sessionId: "gh-read", permission: "pull" });
    const comment = await gh(["pr", "comment", "1", "-R", REPO, "--body", "sneaky"], pull);
    expect(comment.code).not.toBe(0);
    expect(comment.stderr).toContain("insufficient_permission");
  });

  it("a user_or_app session opens its pull request as the App's bot once the user revokes", async () => {
    const delivered = await emulator.revokeAndNotify(APPS.standard.clientId, USER);
    expect(delivered.status).toBe(202);
    await commitAndPush("agent/after-revoke", "bot.txt");
    const created = await gh(["pr", "create", "-R", REPO, "--head", "agent/after-revoke", "--base", "main", "--title", "As the bot", "--body", ""]);
    expect(created.stderr).toBe("");
    const { pulls } = await control(`pulls?repository=${REPO}`);
    expect(pulls.find((p: { title: string }) => p.title === "As the bot")).toMatchObject({ author: `${APP_IDENTITIES[0]!.slug}[bot]` });
  });
});
