/**
 * The GitHub and GitLab emulators for `npm start`, in Node: GitHub's OAuth and REST endpoints,
 * the browser pages (sign-in, account picker, consent, "Settings → Applications"), and git
 * over real bare repositories (`git http-backend`), so a `git clone` with a session
 * capability works locally exactly as against github.com; and, on its own port, a GitLab
 * instance (OAuth with its consent screen, the API, git for nested-group projects).
 *
 * State lives in `<dir>` (default `.wrangler/emulator`): `state.json` and `gitlab-state.json`
 * (users, tokens, grants, saved after every change and on exit), `repos/` and `gitlab-repos/`
 * (seeded once, crash-safe: see `createRepository`). Restarting `npm start` therefore keeps every connection working: the
 * broker's stored tokens are still the emulators' live tokens.
 *
 *   node emulator/local.ts [--port 8788] [--gitlab-port 8790] [--dir .wrangler/emulator] [--broker http://127.0.0.1:8787]
 */
import { createPublicKey } from "node:crypto";
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { createRepository, gitHttpBackend } from "./git-backend.ts";
import { gitRefs } from "./git-refs.ts";
import { GitHubEmulator, type EmulatorApp, type EmulatorSnapshot, type EmulatorUser } from "./github.ts";
import { GitLabEmulator, type GitLabSnapshot, type GitLabUser } from "./gitlab.ts";
import { gitlabConsent } from "./gitlab-pages.ts";
import { settingsPage, type AuthorizedAppRow } from "./pages.ts";
import { serve } from "./serve.ts";
import { persistedCertificate, startTlsFront } from "./tls-front.ts";

const { values: args } = parseArgs({
  options: {
    port: { type: "string", default: "8788" },
    "gitlab-port": { type: "string", default: "8790" },
    dir: { type: "string", default: ".wrangler/emulator" },
    broker: { type: "string", default: "http://127.0.0.1:8787" },
    "agent-port": { type: "string", default: "8443" },
  },
});
const dir = resolve(args.dir!);
const broker = args.broker!.replace(/\/+$/, "");

/** The demo's Apps; the secrets are the demo values of .dev.vars.example and protect nothing. */
const APPS: EmulatorApp[] = [
  {
    clientId: "Iv23.emulator-standard",
    clientSecret: "dev-client-secret-standard",
    webhookSecret: "dev-webhook-secret-standard",
    webhookUrl: `${broker}/webhooks/github/standard`,
    name: "Acme Coding Agents",
  },
  {
    clientId: "Iv23.emulator-lite",
    clientSecret: "dev-client-secret-lite",
    webhookSecret: "dev-webhook-secret-lite",
    webhookUrl: `${broker}/webhooks/github/lite`,
    name: "Acme Coding Agents Lite",
  },
];

/** Two GitHub accounts. `octo-org/docs` is pull-only for @octocat: a push there is refused. */
const USERS: EmulatorUser[] = [
  { id: 583231, login: "octocat", name: "The Octocat", repos: { "octo-org/hello-world": "push", "octo-org/docs": "pull" } },
  { id: 9919, login: "hubot", name: null, repos: { "octo-org/hello-world": "push" } },
];

const REPOS: Record<string, Record<string, string>> = {
  "octo-org/hello-world": { "README.md": "# Hello World\n\nCloned through the token broker's git proxy.\n" },
  "octo-org/docs": { "README.md": "# Docs\n\nPull-only for @octocat.\n" },
};

/** The GitLab side: one OAuth application (`gitlab` in wrangler.local.toml), one account, nested groups. */
const GITLAB_APP = { clientId: "gitlab-emulator-app", clientSecret: "dev-gitlab-client-secret" };
const GITLAB_USERS: GitLabUser[] = [
  { id: 4101, username: "octo-gl", name: "Octo on GitLab", projects: { "acme/platform/api": { level: 30 }, "acme/platform/docs": { level: 20 } } },
];
const GITLAB_REPOS: Record<string, Record<string, string>> = {
  "acme/platform/api": { "README.md": "# API\n\nA GitLab project in a nested group, cloned through the token broker.\n" },
  "acme/platform/docs": { "README.md": "# Docs\n\nReporter access only: a push is refused.\n" },
};

const reposDir = join(dir, "repos");
const gitlabReposDir = join(dir, "gitlab-repos");
const statePath = join(dir, "state.json");
const gitlabStatePath = join(dir, "gitlab-state.json");
for (const [root, repos] of [[reposDir, REPOS], [gitlabReposDir, GITLAB_REPOS]] as const) {
  mkdirSync(root, { recursive: true });
  for (const [name, files] of Object.entries(repos)) {
    await createRepository(root, name, files);
  }
}

const refs = gitRefs(reposDir);
const emulator = new GitHubEmulator(APPS, { gitBackend: gitHttpBackend(reposDir), gitRefs: refs });
for (const user of USERS) emulator.addUser(user);
installDemoApp();
if (existsSync(statePath)) {
  try {
    emulator.restore(JSON.parse(readFileSync(statePath, "utf8")) as EmulatorSnapshot);
    console.log(`[github] restored tokens and grants from ${statePath}`);
  } catch (err) {
    console.log(`[github] could not read ${statePath} (${(err as Error).message}); starting empty`);
  }
}

const gitlab = new GitLabEmulator([GITLAB_APP], { gitBackend: gitHttpBackend(gitlabReposDir) });
for (const user of GITLAB_USERS) gitlab.addUser(user);
if (existsSync(gitlabStatePath)) {
  try {
    gitlab.restore(JSON.parse(readFileSync(gitlabStatePath, "utf8")) as GitLabSnapshot);
  } catch (err) {
    console.log(`[gitlab] could not read ${gitlabStatePath} (${(err as Error).message}); starting empty`);
  }
}

function save(): void {
  for (const [path, snapshot] of [[statePath, emulator.snapshot()], [gitlabStatePath, gitlab.snapshot()]] as const) {
    const tmp = `${path}.tmp`;
    writeFileSync(tmp, JSON.stringify(snapshot));
    renameSync(tmp, path);
  }
}

let saveTimer: ReturnType<typeof setTimeout> | null = null;
function saveSoon(): void {
  saveTimer ??= setTimeout(() => {
    saveTimer = null;
    save();
  }, 50);
}

/**
 * The standard App installed on `octo-org`, for installation tokens (the bot fallback and
 * `identity: "app" | "user_or_app"` capabilities). Its private key is the one `npm start` put
 * in .dev.vars (scripts/start.mjs); the emulator verifies the broker's App JWTs with its public half.
 */
function installDemoApp(): void {
  const line = existsSync(".dev.vars") ? /^GITHUB_APP_PRIVATE_KEY_STANDARD="(.+)"$/m.exec(readFileSync(".dev.vars", "utf8")) : null;
  if (!line) {
    console.log("[github] no GITHUB_APP_PRIVATE_KEY_STANDARD in .dev.vars: installation tokens are off");
    return;
  }
  const publicKeyPem = createPublicKey(line[1]!.replaceAll("\\n", "\n")).export({ type: "spki", format: "pem" }) as string;
  emulator.installations.registerApp({ clientId: APPS[0]!.clientId, appId: 1001, slug: "acme-coding-agents", botUserId: 41000001, publicKeyPem });
  emulator.installations.addInstallation({
    id: 7001,
    clientId: APPS[0]!.clientId,
    account: "octo-org",
    repositories: Object.keys(REPOS),
    permissions: { contents: "write", pull_requests: "write", metadata: "read" },
  });
}

/** `GET /settings/applications`: the signed-in account's Apps (everyone's when nobody is signed in). */
function settings(request: Request, url: URL): Response {
  const user = emulator.signedInUser(request);
  const rows: AuthorizedAppRow[] = [];
  for (const u of user ? [user] : emulator.users.values()) {
    for (const app of emulator.apps.values()) {
      if (emulator.hasAuthorized(app.clientId, u.id)) rows.push({ app: { clientId: app.clientId, name: app.name ?? app.clientId }, user: u });
    }
  }
  const status = url.searchParams.get("webhook_status");
  const notice = status ? `Revoked. GitHub sent the webhook; the App answered ${status}.` : null;
  return settingsPage(rows, backLink(url.searchParams.get("return_to")), notice);
}

/** A way back only to the broker's own origin (the demo), never anywhere else. */
function backLink(value: string | null): string | null {
  if (!value || !URL.canParse(value)) return null;
  return new URL(value).origin === new URL(broker).origin ? value : null;
}

/** Branch tips of octo-org/hello-world that CI has "run" on. */
const ciDone = new Set<string>();

/**
 * A pretend CI for the demo: every new tip of a branch of octo-org/hello-world gets a passing
 * `lint` check run and a `CI` workflow run whose `test` job failed with a log, so `gh pr checks`
 * and `gh run view --log-failed` show something. Runs before API requests (pull requests,
 * issues and runs live in memory: a restart forgets them, and CI runs again on every tip).
 */
async function pretendCi(): Promise<void> {
  const repository = "octo-org/hello-world";
  for (const [branch, sha] of await refs.branches(repository)) {
    if (ciDone.has(sha)) continue;
    ciDone.add(sha);
    emulator.store.addCheckRun(repository, { name: "lint", headSha: sha, conclusion: "success", workflowName: "Lint" });
    emulator.store.addRun(repository, {
      workflowName: "CI",
      headBranch: branch,
      headSha: sha,
      actor: { login: "octocat", id: 583231, type: "User" },
      jobs: [
        {
          name: "test",
          conclusion: "failure",
          steps: [
            { name: "Set up job", log: "Runner: emulated\n" },
            { name: "Run npm test", conclusion: "failure", log: "FAIL test/greeting.test.ts\n  expected 'hello' but got 'bye'\nTests: 1 failed, 12 passed\n" },
          ],
        },
      ],
    });
  }
}

async function handle(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname === "/graphql" || url.pathname.startsWith("/repos/")) await pretendCi();
  if (url.pathname === "/" && request.method === "GET") {
    return new Response("GitHub emulator (local). See /settings/applications.\n", { headers: { "content-type": "text/plain" } });
  }
  if (url.pathname === "/settings/applications" && request.method === "GET") return settings(request, url);
  if (url.pathname === "/settings/applications/revoke" && request.method === "POST") {
    const form = new URLSearchParams(await request.text());
    const back = backLink(form.get("return_to"));
    let status = "not delivered";
    try {
      status = String((await emulator.revokeAndNotify(String(form.get("client_id")), Number(form.get("user_id")))).status);
    } catch (err) {
      console.log(`[github] revocation webhook not delivered: ${(err as Error).message}`);
    }
    saveSoon();
    // Back to the demo when it sent us here (it shows the outcome), else to this page.
    const target = back ? new URL(back) : new URL("/settings/applications", "http://emulator");
    target.searchParams.set("webhook_status", status);
    return new Response(null, { status: 303, headers: { location: back ? target.toString() : target.pathname + target.search } });
  }
  const response = await emulator.fetch(request);
  if (request.method !== "GET" || url.pathname === "/login/oauth/authorize") saveSoon();
  return response;
}

/** The GitLab instance: its consent screen, then everything else the emulator serves. */
async function handleGitLab(request: Request): Promise<Response> {
  const url = new URL(request.url);
  if (url.pathname === "/" && request.method === "GET") return new Response("GitLab emulator (local).\n", { headers: { "content-type": "text/plain" } });
  const response = (await gitlabConsent(gitlab, { [GITLAB_APP.clientId]: "Acme Coding Agents" }, request)) ?? (await gitlab.fetch(request));
  if (request.method !== "GET") saveSoon();
  return response;
}

const server = await serve(handle, Number(args.port));
console.log(`[github] emulator on ${server.url} (state in ${dir})`);
const gitlabServer = await serve(handleGitLab, Number(args["gitlab-port"]));
console.log(`[gitlab] emulator on ${gitlabServer.url}`);
// The broker's GitHub-shaped surface (AGENT_HOST = localhost:<agent-port>) over HTTPS, which
// `gh` insists on: a front with a certificate kept in `<dir>/tls/` (trusted with SSL_CERT_FILE).
const tlsDir = join(dir, "tls");
const agentFront = await startTlsFront(broker, { port: Number(args["agent-port"]), certificate: await persistedCertificate(tlsDir), certFile: join(tlsDir, "cert.pem") });
console.log(`[agent] gh and git surface on ${agentFront.url} (certificate ${agentFront.certFile})`);

function shutdown(): void {
  if (saveTimer) clearTimeout(saveTimer);
  save();
  process.exit(0);
}
process.on("SIGINT", shutdown);
process.on("SIGTERM", shutdown);
