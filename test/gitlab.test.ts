/**
 * GitLab Apps through the same actor, what only GitLab has (emulator/gitlab.ts): `scope` on
 * the authorize URL, `created_at` expiries, reconnects that revoke the previous pair, project
 * access levels with nested groups, the `/git/{appType}/...` proxy paths. What every provider
 * must do (refresh rotation, outages, a lost rotation, revocation) is
 * test/provider-contract.test.ts, run against both emulators.
 */
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { loadKeyring, open } from "../src/crypto";
import { GITLAB_APP, PUBLIC_BASE_URL } from "./support/env";
import { authorizeGitLab, connectGitLabUser, gitlab, gitlabToken } from "./support/gitlab";
import { callApi, callbackTicket, confirmConnect, connectUser, dumpStorage, emulator, publicFetch, storedRow } from "./support/helpers";

const ALICE = {
  id: 7001,
  username: "alice",
  name: "Alice Liddell",
  projects: {
    "acme/platform/api": { level: 30 },
    "acme/docs": { level: 20 },
    "acme/infra/deep/tools": { level: 40, via: "group" as const },
    "acme/guest": { level: 10 },
  },
};

beforeEach(async () => {
  await gitlab.reset();
  await emulator.reset();
});

async function stored(userId: string, field: "access_token" | "refresh_token"): Promise<string | null> {
  const row = await storedRow(userId, "gitlab" as never);
  const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
  return open(keyring, row![field], { userId, appType: "gitlab", field });
}

describe("GitLab connect", () => {
  it("authorizes with PKCE and scope, confirms in two phases, and answers with the GitLab identity and committer", async () => {
    await gitlab.addUser(ALICE);
    const { callbackPath, authorizeUrl } = await authorizeGitLab("gl-connect", ALICE.id);
    expect(authorizeUrl.origin + authorizeUrl.pathname).toBe("http://gitlab.emulator/oauth/authorize");
    expect(authorizeUrl.searchParams.get("scope")).toBe("read_user write_repository api");
    expect(authorizeUrl.searchParams.get("code_challenge_method")).toBe("S256");
    expect(authorizeUrl.searchParams.get("response_type")).toBe("code");
    // Phase 2 connects nothing; phase 3 does, for the user who started it only.
    const ticket = await callbackTicket(callbackPath);
    expect((await callApi("GET", "/users/gl-connect/connection?appType=gitlab")).body.status).toBe("not_connected");
    expect((await confirmConnect("someone-else", ticket)).body.reason).toBe("invalid_ticket");
    // Presented under another user id, the ticket is spent for its owner too: they start again.
    expect((await confirmConnect("gl-connect", ticket)).body.reason).toBe("invalid_ticket");
    const again = await callbackTicket((await authorizeGitLab("gl-connect", ALICE.id)).callbackPath);
    const confirmed = await confirmConnect("gl-connect", again);
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toMatchObject({ status: "connected", appType: "gitlab", githubUserId: "7001", githubLogin: "alice" });

    const token = await gitlabToken("gl-connect", { repository: "acme/platform/api" });
    expect(token.status).toBe(200);
    expect(token.body.committer).toEqual({ name: "Alice Liddell", email: "7001-alice@users.noreply.gitlab.emulator" });
    // One clock: 2 hours from the broker's receipt of the answer.
    expect(token.body.expiresInSeconds).toBeGreaterThan(7200 - 30);
    expect(token.body.expiresInSeconds).toBeLessThanOrEqual(7200);
    expect(await gitlab.tokenState(token.body.token)).toMatchObject({ alive: true });
    // Nothing in storage is plaintext.
    expect(await dumpStorage("gl-connect")).not.toContain(token.body.token);
  });

  it("expires_in missing: created_at + 7200 on GitLab's clock, translated to the broker's", async () => {
    await gitlab.settings({ omitExpiresIn: true });
    await gitlab.clock(3600); // GitLab's clock runs an hour ahead: created_at is an hour "later".
    await connectGitLabUser("gl-created-at", ALICE);
    const token = await gitlabToken("gl-created-at", { repository: "acme/docs", permission: "pull" });
    expect(token.status).toBe(200);
    expect(token.body.expiresInSeconds).toBeGreaterThan(7200 - 30);
    expect(token.body.expiresInSeconds).toBeLessThanOrEqual(7200);
  });

  it("a refused or reused code is exchange_failed; GitLab's invalid_client is app_misconfigured", async () => {
    await gitlab.addUser(ALICE);
    const { callbackPath } = await authorizeGitLab("gl-bad", ALICE.id);
    await gitlab.fault({ endpoint: "exchange", kind: "bad_client" });
    const first = await confirmConnect("gl-bad", await callbackTicket(callbackPath));
    expect(first.body.reason).toBe("app_misconfigured");
    const again = await authorizeGitLab("gl-bad", ALICE.id);
    const ticket = await callbackTicket(again.callbackPath);
    // Spend the code behind the broker's back: GitLab answers 400 invalid_grant.
    const code = new URL(`https://x${again.callbackPath}`).searchParams.get("code")!;
    const spent = await fetch("http://gitlab.emulator/oauth/token", {
      method: "POST",
      body: new URLSearchParams({ grant_type: "authorization_code", code, client_id: GITLAB_APP.clientId, client_secret: GITLAB_APP.clientSecret, redirect_uri: again.authorizeUrl.searchParams.get("redirect_uri")! }),
    });
    expect(spent.status).toBe(400);
    expect((await confirmConnect("gl-bad", ticket)).body.reason).toBe("exchange_failed");
  });

  it("refuses GitHub-only features for a GitLab App: repository-scoped tokens", async () => {
    await connectGitLabUser("gl-only", ALICE);
    expect((await gitlabToken("gl-only", { repository: "acme/platform/api", scope: "repository" })).body.reason).toBe("invalid_request");
  });
});

describe("GitLab reconnect", () => {
  it("a reconnect of the same account revokes the previous pair: exactly one live token at GitLab", async () => {
    await connectGitLabUser("gl-again", ALICE);
    const oldAccess = await stored("gl-again", "access_token");
    const oldRefresh = await stored("gl-again", "refresh_token");
    const generation = (await storedRow("gl-again", "gitlab" as never))!.generation;
    await connectGitLabUser("gl-again", ALICE);
    expect((await storedRow("gl-again", "gitlab" as never))!.generation).not.toBe(generation);
    expect(await gitlab.tokenState(oldAccess!)).toMatchObject({ alive: false, killedBy: "revocation" });
    expect(await gitlab.tokenState(oldRefresh!)).toMatchObject({ alive: false, killedBy: "revocation" });
    expect(await gitlab.liveRefreshTokens(ALICE.id)).toEqual([await stored("gl-again", "refresh_token")]);
    expect((await gitlabToken("gl-again", { repository: "acme/platform/api" })).status).toBe(200);
  });
});

describe("GitLab project permissions", () => {
  it("access level ≥ 30 pushes, ≥ 20 pulls, below or unknown is no_repo_access; nested groups are paths", async () => {
    await connectGitLabUser("gl-perm", ALICE);
    const ask = (repository: string, permission: "push" | "pull") => gitlabToken("gl-perm", { repository, permission });
    expect((await ask("acme/platform/api", "push")).status).toBe(200); // Developer, nested group
    expect((await ask("acme/infra/deep/tools", "push")).status).toBe(200); // Maintainer through a group
    expect((await ask("acme/docs", "pull")).status).toBe(200); // Reporter
    expect((await ask("acme/docs", "push")).body.reason).toBe("no_repo_access");
    expect((await ask("acme/guest", "pull")).body.reason).toBe("no_repo_access"); // Guest
    expect((await ask("acme/secret", "pull")).body.reason).toBe("no_repo_access"); // 404
    await gitlab.makePublic("acme/public-site");
    expect((await ask("acme/public-site", "pull")).status).toBe(200);
    expect((await ask("acme/public-site", "push")).body.reason).toBe("no_repo_access");
    // A clone URL on the App's instance, with .git, names the same project.
    expect((await ask("http://gitlab.emulator/acme/platform/api.git", "push")).status).toBe(200);
  });

  it("validates GitLab paths, and keeps GitHub Apps at owner/name", async () => {
    await connectGitLabUser("gl-path", ALICE);
    for (const bad of ["acme", "acme/../x", "acme//x", "acme/x.git", "https://evil.example/acme/x", "http://gitlab.emulator/acme/x%2Fy", "-a/b"]) {
      expect((await gitlabToken("gl-path", { repository: bad })).body.reason, bad).toBe("invalid_request");
    }
    const github = await callApi("POST", "/users/gl-path/token", { appType: "standard", repository: "acme/platform/api" });
    expect(github.body.reason).toBe("invalid_request");
  });
});

describe("GitLab disconnect and deletion", () => {
  it("account deletion revokes at GitLab too; an outage leaves the revocation pending", async () => {
    await connectGitLabUser("gl-del", ALICE);
    const access = await stored("gl-del", "access_token");
    await gitlab.fault({ endpoint: "revoke", kind: "status_5xx" });
    const deleted = await callApi("DELETE", "/users/gl-del");
    expect(deleted.status).toBe(200);
    expect(deleted.body.githubGrants).toEqual({ gitlab: "pending" });
    expect(await gitlab.tokenState(access!)).toMatchObject({ alive: true });
  });
});

describe("GitLab capabilities and the git proxy", () => {
  const gitGet = (path: string, capability: string) => publicFetch(path, { headers: { authorization: `Basic ${btoa(`x:${capability}`)}` } });
  const refs = (path: string, service = "git-upload-pack") => `${path}/info/refs?service=${service}`;

  it("issues /git/{appType}/{group/.../project}.git; the proxy serves it from GitLab with the user's token", async () => {
    await connectGitLabUser("gl-cap", ALICE);
    const res = await callApi("POST", "/users/gl-cap/capabilities", { appType: "gitlab", repository: "acme/platform/api", sessionId: "s1" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ gitRemoteUrl: `${PUBLIC_BASE_URL}/git/gitlab/acme/platform/api.git`, committer: { email: "7001-alice@users.noreply.gitlab.emulator" } });
    const before = (await gitlab.stats()).counts.git;
    const ok = await gitGet(refs("/git/gitlab/acme/platform/api.git", "git-receive-pack"), res.body.capability);
    expect(ok.status).toBe(200);
    expect(await ok.text()).toContain("refs/heads/main");
    expect((await gitlab.stats()).counts.git).toBe(before + 1);
    // Below Developer, no push capability.
    expect((await callApi("POST", "/users/gl-cap/capabilities", { appType: "gitlab", repository: "acme/docs", sessionId: "s2" })).body.reason).toBe("no_repo_access");
  });

  it("a capability answers only on its own App's paths: no GitLab token to GitHub, no GitHub token to GitLab", async () => {
    await connectGitLabUser("gl-cross", ALICE);
    await connectUser("gl-cross", { id: 6061, login: "alice-gh", repos: { "acme/app": "push" } });
    const gl = (await callApi("POST", "/users/gl-cross/capabilities", { appType: "gitlab", repository: "acme/docs", permission: "pull", sessionId: "s1" })).body.capability;
    const gh = (await callApi("POST", "/users/gl-cross/capabilities", { appType: "standard", repository: "acme/app", sessionId: "s2" })).body.capability;
    const githubGit = (await emulator.stats()).counts.git;
    const gitlabGit = (await gitlab.stats()).counts.git;
    const cases: [string, Promise<Response>, number, string][] = [
      ["GitLab capability on the GitHub path", gitGet(refs("/git/acme/docs.git"), gl), 403, "repository_mismatch"],
      ["GitLab capability on the REST proxy", publicFetch("/api/repos/acme/docs", { headers: { authorization: `Basic ${btoa(`x:${gl}`)}` } }), 403, "repository_mismatch"],
      ["GitHub capability on a GitLab path", gitGet(refs("/git/gitlab/acme/app.git"), gh), 403, "repository_mismatch"],
      ["GitLab capability under another appType", gitGet(refs("/git/standard/acme/docs.git"), gl), 403, "repository_mismatch"],
      ["another project", gitGet(refs("/git/gitlab/acme/platform/api.git"), gl), 403, "repository_mismatch"],
      ["push with a pull capability", gitGet(refs("/git/gitlab/acme/docs.git", "git-receive-pack"), gl), 403, "insufficient_permission"],
    ];
    for (const [name, pending, status, reason] of cases) {
      const res = await pending;
      expect(res.status, name).toBe(status);
      expect(await res.text(), name).toContain(reason);
    }
    expect((await emulator.stats()).counts.git).toBe(githubGit);
    expect((await gitlab.stats()).counts.git).toBe(gitlabGit);
  });
});
