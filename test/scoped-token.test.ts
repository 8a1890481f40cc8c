/**
 * Repository-scoped user tokens (`scope: "repository"`): minted with
 * `/applications/{client_id}/token/scoped`, refused by GitHub (the emulator) outside their
 * repository, cached sealed per (repository, permissions), re-minted when the user's pair
 * rotates, and dead after a reconnect (a new generation): the broker revokes the previous
 * generation's scoped tokens one by one, since a reconnect keeps the grant.
 */
import { beforeEach, describe, expect, it, vi } from "vitest";
import { EMULATOR_API_URL, EMULATOR_URL } from "./support/env";
import { callApi, connectUser, dumpStorage, emulator, pendingRevocations, requestToken, retryRevocationsNow, setStoredExpiry } from "./support/helpers";

const MONA = { id: 9191, login: "mona", repos: { "acme/app": "push" as const, "acme/other": "push" as const } };

beforeEach(async () => {
  await emulator.reset();
});

/** What GitHub (the emulator) answers for `GET /repos/{repository}` with `token`. */
async function repoStatus(token: string, repository: string): Promise<number> {
  const res = await fetch(`${EMULATOR_API_URL}/repos/${repository}`, { headers: { authorization: `Bearer ${token}` } });
  await res.arrayBuffer();
  return res.status;
}

async function scoped(userId: string, body: Record<string, unknown> = {}) {
  return requestToken(userId, { repository: "acme/app", scope: "repository", ...body });
}

describe("repository-scoped tokens", () => {
  it("reaches its repository only; the plain user token reaches both", async () => {
    await connectUser("sc-1", MONA);
    const res = await scoped("sc-1");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, identity: "user", scope: "repository", repository: "acme/app", githubLogin: "mona" });
    const plain = await requestToken("sc-1", { repository: "acme/app" });
    expect(res.body.token).not.toBe(plain.body.token);
    expect(await repoStatus(res.body.token, "acme/app")).toBe(200);
    expect(await repoStatus(res.body.token, "acme/other")).toBe(404);
    expect(await repoStatus(plain.body.token, "acme/other")).toBe(200);
    // git too: a clone of the other repository is "not found" for the scoped token.
    const infoRefs = async (repository: string) => {
      const r = await fetch(`${EMULATOR_URL}/${repository}.git/info/refs?service=git-upload-pack`, {
        headers: { authorization: `Basic ${btoa(`x-access-token:${res.body.token}`)}` },
      });
      await r.arrayBuffer();
      return r.status;
    };
    expect(await infoRefs("acme/app")).toBe(200);
    expect(await infoRefs("acme/other")).toBe(404);
    // Its own expiry, never past the user token's.
    expect(Date.parse(res.body.expiresAt)).toBeLessThanOrEqual(Date.parse(plain.body.expiresAt));
    expect(res.body.expiresInSeconds).toBeGreaterThan(3600);
  });

  it("is cached sealed per (repository, permissions): no second mint, and never stored in clear", async () => {
    await connectUser("sc-2", MONA);
    const first = await scoped("sc-2");
    const again = await scoped("sc-2");
    expect(again.body.token).toBe(first.body.token);
    expect((await emulator.stats()).counts.scoped).toBe(1);
    const readOnly = await scoped("sc-2", { permissions: { contents: "read" } });
    expect(readOnly.body.token).not.toBe(first.body.token);
    expect(readOnly.body.permissions).toEqual({ contents: "read" });
    expect((await emulator.stats()).counts.scoped).toBe(2);
    const storage = await dumpStorage("sc-2");
    expect(storage).not.toContain(first.body.token);
    expect(storage).not.toContain(readOnly.body.token);
  });

  it("concurrent callers share one mint", async () => {
    await connectUser("sc-3", MONA);
    const answers = await Promise.all(Array.from({ length: 8 }, () => scoped("sc-3")));
    expect(new Set(answers.map((a) => a.body.token)).size).toBe(1);
    expect((await emulator.stats()).counts.scoped).toBe(1);
  });

  it("a rotation of the user's pair gives a new scoped token (the old one died with its parent)", async () => {
    await connectUser("sc-4", MONA);
    const before = await scoped("sc-4");
    await setStoredExpiry("sc-4", "standard", Date.now() + 60_000); // forces a refresh for minValidity 300
    const after = await scoped("sc-4");
    expect(after.status).toBe(200);
    expect(after.body.token).not.toBe(before.body.token);
    expect((await emulator.tokenState(before.body.token)).access!.alive).toBe(false);
    expect(await repoStatus(after.body.token, "acme/app")).toBe(200);
  });

  it("a reconnect (new generation) makes the old scoped tokens unusable", async () => {
    await connectUser("sc-5", MONA);
    const old = await scoped("sc-5");
    const oldPlain = await requestToken("sc-5", { repository: "acme/app" });
    await connectUser("sc-5", MONA); // same GitHub account: the grant, and the old pair, live on
    expect(await repoStatus(old.body.token, "acme/app")).toBe(401);
    expect((await emulator.tokenState(old.body.token)).access!.alive).toBe(false);
    expect((await emulator.stats()).counts.revoke_token).toBe(1);
    const fresh = await scoped("sc-5");
    expect(fresh.body.token).not.toBe(old.body.token);
    expect(await repoStatus(fresh.body.token, "acme/app")).toBe(200);
    expect(oldPlain.status).toBe(200);
  });

  it("a disconnect revokes the grant, and the scoped token with it", async () => {
    // An account of its own: MONA's grant is in use by the other tests' platform users.
    await connectUser("sc-6", { ...MONA, id: 9196, login: "mona6" });
    const token = (await scoped("sc-6")).body.token;
    await callApi("DELETE", "/users/sc-6/connection?appType=standard");
    expect(await repoStatus(token, "acme/app")).toBe(401);
  });

  it("a user without access to the repository gets no scoped token", async () => {
    await connectUser("sc-7", MONA);
    const res = await scoped("sc-7", { repository: "acme/secret" });
    expect(res.status).toBe(403);
    expect(res.body.reason).toBe("no_repo_access");
    expect((await emulator.stats()).counts.scoped).toBe(0);
  });

  it("validates scope and permissions", async () => {
    await connectUser("sc-8", MONA);
    for (const body of [
      { scope: "org" },
      { scope: "repository", permissions: [] },
      { scope: "repository", permissions: {} },
      { scope: "repository", permissions: { contents: "admin" } },
      { scope: "repository", permissions: { "Contents!": "read" } },
      { permissions: { contents: "read" } },
    ]) {
      const res = await requestToken("sc-8", { repository: "acme/app", ...body });
      expect(res.status).toBe(400);
      expect(res.body.reason).toBe("invalid_request");
    }
  });

  it("a scoped token minted while the same account reconnects is handed to no one and revoked", async () => {
    const user = { ...MONA, id: 9192, login: "mona2" };
    await connectUser("sc-9", user);
    const hold = await emulator.hold({ match: ["scoped"] });
    const asking = scoped("sc-9");
    expect(await emulator.waitHeld(hold, asking)).not.toBeNull();
    await connectUser("sc-9", user); // a new generation of the same grant
    await emulator.release(hold);
    const answer = await asking;
    // Answered from the connection as it is now: a token of the new generation.
    expect(answer.status).toBe(200);
    expect(await repoStatus(answer.body.token, "acme/app")).toBe(200);
    // The token GitHub minted for the old generation is dead; the handed-out one is the only one alive.
    expect((await emulator.liveRefreshTokens("standard", user.id)).scopedTokens).toEqual([answer.body.token]);
    expect(await pendingRevocations("sc-9")).toBe(0);
  });

  it("the revocation of such a token is retried from the alarm while GitHub fails it", async () => {
    const user = { ...MONA, id: 9193, login: "mona3" };
    await connectUser("sc-10", user);
    const hold = await emulator.hold({ match: ["scoped"] });
    const asking = scoped("sc-10");
    expect(await emulator.waitHeld(hold, asking)).not.toBeNull();
    await connectUser("sc-10", user);
    await emulator.fault({ endpoint: "revoke_token", kind: "status_5xx", count: 1 });
    await emulator.release(hold);
    const answer = await asking;
    expect(answer.status).toBe(200);
    const live = async () => (await emulator.liveRefreshTokens("standard", user.id)).scopedTokens;
    expect(await live()).toHaveLength(2);
    expect(await pendingRevocations("sc-10")).toBe(1);
    // The alarm (brought forward by the enqueue) may be running already: retry until it settles.
    for (let i = 0; i < 3 && (await pendingRevocations("sc-10")) > 0; i++) await retryRevocationsNow("sc-10");
    expect(await pendingRevocations("sc-10")).toBe(0);
    expect(await live()).toEqual([answer.body.token]);
  });

  it("a misspelled permission is invalid_request, never hidden behind the App's bot", async () => {
    await connectUser("sc-11", MONA);
    const res = await scoped("sc-11", { permissions: { contnets: "write" }, fallback: "app" });
    expect(res.status).toBe(400);
    expect(res.body).toMatchObject({ ok: false, reason: "invalid_request" });
    expect(res.body.message).toContain('"contnets"');
    expect((await emulator.stats()).counts.scoped).toBe(0);
  });

  it("GitHub's 422 (validation failed) is invalid_request with GitHub's reason in the log, never no_repo_access", async () => {
    await connectUser("sc-12", MONA);
    const lines: string[] = [];
    const spy = vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(" ")));
    try {
      const res = await scoped("sc-12", { permissions: { metadata: "write" }, fallback: "app" });
      expect(res.status).toBe(400);
      expect(res.body.reason).toBe("invalid_request");
      expect((await emulator.stats()).counts.scoped).toBe(1);
    } finally {
      spy.mockRestore();
    }
    expect(lines.join("\n")).toContain("metadata can only be read");
  });
});
