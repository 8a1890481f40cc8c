/** `POST /v1/users/{userId}/token`: the repository check, the identity, the hot path. */
import { beforeEach, describe, expect, it } from "vitest";
import { callApi, connectUser, emulator, requestToken } from "./support/helpers";

beforeEach(async () => {
  await emulator.reset();
});

const MONA = { id: 583231, login: "mona", name: "Mona Lisa Octocat", repos: { "acme/app": "push", "acme/docs": "pull" } as const };

describe("token for a repository", () => {
  it("returns the token, its expiry and the no-reply committer identity", async () => {
    await connectUser("t-1", { ...MONA, repos: { ...MONA.repos } });
    const res = await requestToken("t-1", { repository: "acme/app" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      ok: true,
      githubUserId: "583231",
      githubLogin: "mona",
      committer: { name: "Mona Lisa Octocat", email: "583231+mona@users.noreply.github.com" },
    });
    expect(res.body.token).toMatch(/^ghu_/);
    expect(res.body.expiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    const state = await emulator.tokenState(res.body.token);
    expect(state.access!.alive).toBe(true);
  });

  it("a renamed repository's old name is no_repo_access: GitHub's 301 is not an outage, and is never followed", async () => {
    await connectUser("t-moved", { ...MONA, repos: { ...MONA.repos } });
    await emulator.move("acme/old-app", "acme/app");
    const res = await requestToken("t-moved", { repository: "acme/old-app" });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ ok: false, reason: "no_repo_access" });
    expect(res.body.retryAfterSeconds).toBeUndefined();
    expect((await requestToken("t-moved", { repository: "acme/app" })).status).toBe(200);
  });

  it("uses the login as committer name when the user has no display name", async () => {
    await connectUser("t-2", { id: 7, login: "noname", name: null, repos: { "acme/app": "push" } });
    const res = await requestToken("t-2", { repository: "acme/app" });
    expect(res.body.committer).toEqual({ name: "noname", email: "7+noname@users.noreply.github.com" });
  });

  it("checks the user's own permission: push needs push, pull needs pull, no access is 403", async () => {
    await connectUser("t-3", { ...MONA, repos: { ...MONA.repos } });
    expect((await requestToken("t-3", { repository: "acme/docs" })).body.reason).toBe("no_repo_access");
    expect((await requestToken("t-3", { repository: "acme/docs", permission: "pull" })).status).toBe(200);
    const none = await requestToken("t-3", { repository: "acme/secret" });
    expect(none.status).toBe(403);
    expect(none.body.reason).toBe("no_repo_access");
  });

  it("accepts clone URLs on the configured GitHub host, case-insensitively for the cache", async () => {
    await connectUser("t-4", { ...MONA, repos: { ...MONA.repos } });
    for (const repository of ["http://github.emulator/acme/app", "http://github.emulator/acme/app.git", "ACME/App"]) {
      expect((await requestToken("t-4", { repository })).status).toBe(200);
    }
  });

  it("caches the repository check: a busy session does not spend GitHub's rate limit on every call", async () => {
    await connectUser("t-5", { ...MONA, repos: { ...MONA.repos } });
    await requestToken("t-5", { repository: "acme/app" });
    const before = await emulator.stats();
    for (let i = 0; i < 20; i++) expect((await requestToken("t-5", { repository: "acme/app" })).status).toBe(200);
    const after = await emulator.stats();
    expect(after.counts.repo).toBe(before.counts.repo);
    expect(after.counts.refresh).toBe(before.counts.refresh);
  });

  it("asks GitHub once for a repository many requests need at the same moment (the check is single-flight)", async () => {
    await connectUser("t-5b", { ...MONA, repos: { ...MONA.repos } });
    const before = await emulator.stats();
    const hold = await emulator.hold({ match: ["repo"] });
    const all = Promise.all(Array.from({ length: 12 }, () => requestToken("t-5b", { repository: "acme/app" })));
    // The first question is held at GitHub while the other eleven requests arrive.
    expect(await emulator.waitHeld(hold, all)).not.toBeNull();
    await new Promise((r) => setTimeout(r, 50));
    await emulator.release(hold);
    const answers = await all;
    expect(answers.map((a) => a.status)).toEqual(Array(12).fill(200));
    expect((await emulator.stats()).counts.repo - before.counts.repo).toBe(1);
  });

  it("repository check rate-limited by GitHub: 429 with retryAfterSeconds; outage: 503", async () => {
    await connectUser("t-6", { ...MONA, repos: { ...MONA.repos } });
    await emulator.fault({ endpoint: "repo", kind: "rate_limit" });
    const limited = await requestToken("t-6", { repository: "acme/app" });
    expect(limited.status).toBe(429);
    expect(limited.body.reason).toBe("rate_limited");
    expect(limited.body.retryAfterSeconds).toBe(60);
    await emulator.fault({ endpoint: "repo", kind: "status_5xx" });
    const down = await requestToken("t-6", { repository: "acme/app" });
    expect(down.status).toBe(503);
    expect(down.body.reason).toBe("github_unavailable");
    expect((await requestToken("t-6", { repository: "acme/app" })).status).toBe(200);
  });

  it("a 403 that is not a rate limit (SAML SSO) is no_repo_access, not a retryable outage", async () => {
    await connectUser("t-sso", { ...MONA, repos: { ...MONA.repos } });
    await emulator.fault({ endpoint: "repo", kind: "sso_required" });
    const res = await requestToken("t-sso", { repository: "acme/app" });
    expect(res.status).toBe(403);
    expect(res.body.reason).toBe("no_repo_access");
    expect(res.body.retryAfterSeconds).toBeUndefined();
  });

  it("a token GitHub refuses during the repository check is refreshed once, then used", async () => {
    await connectUser("t-7", { ...MONA, repos: { ...MONA.repos } });
    const first = await requestToken("t-7", { repository: "acme/app" });
    // GitHub's clock jumps past the token's expiry; the broker's stored expiry is unchanged.
    await emulator.clock(9 * 3600);
    const res = await requestToken("t-7", { repository: "acme/docs", permission: "pull" });
    expect(res.status).toBe(200);
    expect(res.body.token).not.toBe(first.body.token);
    expect((await emulator.tokenState(res.body.token)).access!.alive).toBe(true);
  });

  it("answers not_connected for a user who never connected", async () => {
    const res = await requestToken("t-never", { repository: "acme/app" });
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ ok: false, reason: "not_connected" });
    const conn = await callApi("GET", "/users/t-never/connection?appType=standard");
    expect(conn.body).toEqual({ ok: true, status: "not_connected" });
  });

  it("keeps Apps apart: a standard connection gives no lite token", async () => {
    await connectUser("t-8", { ...MONA, repos: { ...MONA.repos } });
    const res = await requestToken("t-8", { appType: "lite", repository: "acme/app" });
    expect(res.body.reason).toBe("not_connected");
  });
});
