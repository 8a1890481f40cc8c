/**
 * The lifecycle review's findings, one test each: two operations of one user interleaving at
 * an `await`. Each test holds the first operation at the emulator (a GitHub request or an
 * identity-index call), runs the second, releases, and checks what a user would notice.
 */
import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { loadKeyring, open } from "../src/crypto";
import { forgetConnectionRows } from "../src/actor/connection-store";
import { identityIndex } from "../src/identity-index";
import { PUBLIC_BASE_URL } from "./support/env";
import {
  actor,
  authorizeAs,
  callApi,
  callbackTicket,
  confirmConnect,
  connectUser,
  emulator,
  pendingRevocations,
  publicFetch,
  requestToken,
  retryRevocationsNow,
  setStoredExpiry,
  storedRow,
  userRows,
} from "./support/helpers";

const REPOS = { "acme/app": "push" as const };
let next = 0;
/** Fresh GitHub accounts per test: the emulator's truth about them is this test's alone. */
function accounts() {
  next++;
  return {
    A: { id: 300_000 + next * 2, login: `alice${next}`, name: null, repos: REPOS },
    B: { id: 300_001 + next * 2, login: `bob${next}`, name: null, repos: {} as Record<string, "push" | "pull"> },
  };
}

beforeEach(async () => {
  await emulator.reset();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Whether `p` settles within `ms` (without consuming its outcome). */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  return Promise.race([p.then(() => true, () => true), sleep(ms).then(() => false)]);
}

async function storedRefreshToken(userId: string): Promise<string | null> {
  const row = await storedRow(userId);
  if (!row?.refresh_token) return null;
  return open(await loadKeyring(env.TOKEN_ENCRYPTION_KEYS), row.refresh_token, { userId, appType: "standard", field: "refresh_token" });
}

/** Connects `account`, then disconnects while GitHub fails the grant revocation: it stays pending. */
async function disconnectWithRevocationPending(userId: string, account: { id: number; login: string }) {
  await connectUser(userId, account);
  await emulator.fault({ endpoint: "revoke_grant", kind: "status_5xx" });
  const disconnected = await callApi("DELETE", `/users/${userId}/connection?appType=standard`);
  expect(disconnected.body.githubGrant).toBe("pending");
}

async function issueCapability(userId: string) {
  return (await callApi("POST", `/users/${userId}/capabilities`, { appType: "standard", repository: "acme/app", sessionId: "s1" })).body.capability as string;
}

function gitRefs(capability: string) {
  return publicFetch("/git/acme/app.git/info/refs?service=git-upload-pack", { headers: { authorization: `Basic ${btoa(`x:${capability}`)}` } });
}

describe("the lifecycle review's findings", () => {
  it("1. generations: a refresh begun before a disconnect and reconnect never touches the new connection", async () => {
    for (const rejected of [true, false]) {
      const { A, B } = accounts();
      const user = `f1-${rejected}`;
      await connectUser(user, A);
      await emulator.addUser(B);
      const ticketB = await callbackTicket(await authorizeAs(user, B.id));
      await setStoredExpiry(user, "standard", Date.now() - 1);
      const hold = await emulator.hold({ match: ["refresh"] });
      const refreshing = requestToken(user, { repository: "acme/app" });
      expect(await emulator.waitHeld(hold, refreshing)).not.toBeNull();
      if (rejected) await emulator.revoke("standard", A.id); // GitHub will refuse the old grant's refresh
      const lifecycle = (async () => {
        const off = await callApi("DELETE", `/users/${user}/connection?appType=standard`);
        const on = await confirmConnect(user, ticketB);
        return [off, on] as const;
      })();
      await settlesWithin(lifecycle, 300);
      await emulator.release(hold);
      const [token, [off, on]] = await Promise.all([refreshing, lifecycle]);
      expect(off.status).toBe(200);
      expect(on.status).toBe(200);
      // The new generation is B's, connected, with B's live refresh token.
      const conn = (await callApi("GET", `/users/${user}/connection?appType=standard`)).body;
      expect(conn).toMatchObject({ status: "connected", githubUserId: String(B.id) });
      const refresh = await storedRefreshToken(user);
      const truth = (await emulator.tokenState(refresh!)).refresh!;
      expect(truth.alive).toBe(true);
      expect(truth.userId).toBe(B.id);
      // Whatever the old refresh answered carries A's identity with A's token.
      if (token.status === 200) {
        expect(token.body.githubUserId).toBe(String(A.id));
        expect((await emulator.tokenState(token.body.token)).access!.userId).toBe(A.id);
      }
    }
  });

  it("2. a disconnect during a connect's identity-index write leaves no connection the revocation webhook cannot reach", async () => {
    const { A } = accounts();
    await emulator.addUser(A);
    const ticket = await callbackTicket(await authorizeAs("f2", A.id));
    const hold = await emulator.hold({ match: ["index.link"] });
    const confirming = confirmConnect("f2", ticket);
    expect(await emulator.waitHeld(hold, confirming)).not.toBeNull();
    const disconnecting = callApi("DELETE", "/users/f2/connection?appType=standard");
    await settlesWithin(disconnecting, 300);
    await emulator.release(hold);
    await Promise.all([confirming, disconnecting]);
    const status = (await callApi("GET", "/users/f2/connection?appType=standard")).body.status;
    const linked = (await identityIndex(env, String(A.id)).users({ appType: "standard" })).includes("f2");
    if (status === "connected") expect(linked).toBe(true);
    else expect((await emulator.liveRefreshTokens("standard", A.id)).refreshTokens).toEqual([]);
  });

  it("3. an account deletion wins over a connect in flight: nothing stored, the grant it got revoked", async () => {
    const { A } = accounts();
    await emulator.addUser(A);
    const ticket = await callbackTicket(await authorizeAs("f3", A.id));
    const hold = await emulator.hold({ match: ["exchange"] });
    const confirming = confirmConnect("f3", ticket);
    expect(await emulator.waitHeld(hold, confirming)).not.toBeNull();
    const deleting = callApi("DELETE", "/users/f3");
    await settlesWithin(deleting, 300);
    await emulator.release(hold);
    const [confirmed, deleted] = await Promise.all([confirming, deleting]);
    expect(deleted.body).toMatchObject({ ok: true, deleted: true });
    expect(confirmed.body.reason).toBe("invalid_ticket");
    expect((await callApi("GET", "/users/f3/connection?appType=standard")).body.status).toBe("not_connected");
    expect(await userRows("f3")).toEqual([]);
    expect((await emulator.liveRefreshTokens("standard", A.id)).refreshTokens).toEqual([]);
    expect(await identityIndex(env, String(A.id)).users({ appType: "standard" })).not.toContain("f3");
  });

  it("4. no doomed tokens: during a refresh, a token request and a capability redemption join it", async () => {
    const { A } = accounts();
    await connectUser("f4", A);
    const capability = await issueCapability("f4");
    await setStoredExpiry("f4", "standard", Date.now() + 1800_000); // valid for 30 minutes more
    const old = (await requestToken("f4", { repository: "acme/app", minValiditySeconds: 60 })).body.token;
    const hold = await emulator.hold({ match: ["refresh"] });
    const refreshing = requestToken("f4", { repository: "acme/app", minValiditySeconds: 3600 });
    expect(await emulator.waitHeld(hold, refreshing)).not.toBeNull();
    const small = requestToken("f4", { repository: "acme/app", minValiditySeconds: 60 });
    const push = gitRefs(capability);
    // Neither answers with the token the held refresh is about to kill.
    expect(await settlesWithin(small, 300)).toBe(false);
    expect(await settlesWithin(push, 50)).toBe(false);
    await emulator.release(hold);
    const [big, got, git] = await Promise.all([refreshing, small, push]);
    expect(got.body.token).toBe(big.body.token);
    expect(got.body.token).not.toBe(old);
    expect((await emulator.tokenState(got.body.token)).access!.alive).toBe(true);
    expect(git.status).toBe(200);
  });

  it("5. a capability is never redeemed with another account's token across a reconnect", async () => {
    const { A, B } = accounts();
    await connectUser("f5", A);
    await emulator.addUser(B);
    const capability = await issueCapability("f5");
    const ticketB = await callbackTicket(await authorizeAs("f5", B.id));
    await setStoredExpiry("f5", "standard", Date.now() - 1);
    const hold = await emulator.hold({ match: ["refresh"] });
    const push = gitRefs(capability);
    expect(await emulator.waitHeld(hold, push)).not.toBeNull();
    const reconnect = confirmConnect("f5", ticketB);
    await settlesWithin(reconnect, 300);
    await emulator.release(hold);
    const [git, on] = await Promise.all([push, reconnect]);
    expect(on.status).toBe(200);
    // A's capability went out with A's token (200), or found A's connection gone (410); B
    // has no access to acme/app, so B's token would have been a 404.
    expect([200, 410]).toContain(git.status);
    expect((await gitRefs(capability)).status).toBe(410);
  });

  it("7. a crash between removing the connection and GitHub's answer never forgets the live grant", async () => {
    const { A } = accounts();
    await connectUser("f7", A);
    const hold = await emulator.hold({ match: ["revoke_grant"] });
    const disconnecting = callApi("DELETE", "/users/f7/connection?appType=standard");
    expect(await emulator.waitHeld(hold, disconnecting)).not.toBeNull();
    await abortAllDurableObjects();
    await emulator.release(hold);
    await disconnecting.catch(() => undefined);
    // GitHub may or may not have revoked it: the retried call must not claim already_gone for a live grant.
    const again = await callApi("DELETE", "/users/f7/connection?appType=standard");
    const live = (await emulator.liveRefreshTokens("standard", A.id)).refreshTokens.length > 0;
    if (live) expect(again.body.githubGrant).toBe("pending");
    await emulator.clearFaults();
    await retryRevocationsNow("f7");
    expect((await emulator.liveRefreshTokens("standard", A.id)).refreshTokens).toEqual([]);
  });

  it("10. a disconnect whose revocation is still pending never revokes the grant of a later reconnect of the same account", async () => {
    // GitHub has one grant per (App, user): revoking an old pair of it revokes the new one too.
    const { A } = accounts();
    await disconnectWithRevocationPending("f10", A);
    await connectUser("f10", A);
    await retryRevocationsNow("f10");
    const token = await requestToken("f10", { repository: "acme/app" });
    expect(token.status).toBe(200);
    expect((await emulator.tokenState(token.body.token)).access?.alive).toBe(true);
    expect((await emulator.tokenState((await storedRefreshToken("f10"))!)).refresh?.alive).toBe(true);
    expect(await pendingRevocations("f10")).toBe(0);
  });

  it("10b. a revocation retry in flight when the same account reconnects cannot kill the new connection", async () => {
    const { A } = accounts();
    await disconnectWithRevocationPending("f10b", A);
    // The alarm's retry reaches GitHub and is held there while the user connects the same account again.
    const hold = await emulator.hold({ match: ["revoke_grant"] });
    const retrying = retryRevocationsNow("f10b");
    expect(await emulator.waitHeld(hold, retrying)).not.toBeNull();
    const reconnecting = connectUser("f10b", A);
    await sleep(200);
    await emulator.release(hold);
    await retrying;
    await reconnecting;
    const token = await requestToken("f10b", { repository: "acme/app" });
    expect(token.status).toBe(200);
    expect((await emulator.tokenState(token.body.token)).access?.alive).toBe(true);
  });

  it("10c. a revocation retry that comes due while the same account's connect waits on GitHub is not sent", async () => {
    const { A } = accounts();
    await disconnectWithRevocationPending("f10c", A);
    const revokesBefore = (await emulator.stats()).counts.revoke_grant;
    const hold = await emulator.hold({ match: ["exchange"] });
    const reconnecting = connectUser("f10c", A);
    expect(await emulator.waitHeld(hold, reconnecting)).not.toBeNull();
    await retryRevocationsNow("f10c");
    expect((await emulator.stats()).counts.revoke_grant).toBe(revokesBefore);
    await emulator.release(hold);
    await reconnecting;
    // Its next retry finds the account connected again: the grant is the new connection's.
    await retryRevocationsNow("f10c");
    expect(await pendingRevocations("f10c")).toBe(0);
    const token = await requestToken("f10c", { repository: "acme/app" });
    expect(token.status).toBe(200);
    expect((await emulator.tokenState(token.body.token)).access?.alive).toBe(true);
  });

  it("9a. a token request whose repository check outlived a refresh does not hand out the killed token", async () => {
    const { A } = accounts();
    await connectUser("f9a", A);
    await setStoredExpiry("f9a", "standard", Date.now() + 1800_000);
    const hold = await emulator.hold({ match: ["repo"] });
    const small = requestToken("f9a", { repository: "acme/app", minValiditySeconds: 60 });
    expect(await emulator.waitHeld(hold, small)).not.toBeNull();
    const big = await requestToken("f9a", { repository: "acme/app", minValiditySeconds: 3600 });
    expect(big.status).toBe(200);
    await emulator.release(hold);
    const got = await small;
    expect(got.status).toBe(200);
    expect((await emulator.tokenState(got.body.token)).access!.alive).toBe(true);
    expect(got.body.token).toBe(big.body.token);
  });

  it("9b. a connection confirmed while a deletion waits on GitHub is deleted too (no snapshot)", async () => {
    const { A } = accounts();
    await connectUser("f9b", A);
    const ticketLite = await callbackTicket(await authorizeAs("f9b", A.id, "lite"));
    const hold = await emulator.hold({ match: ["revoke_grant"] });
    const deleting = callApi("DELETE", "/users/f9b");
    expect(await emulator.waitHeld(hold, deleting)).not.toBeNull();
    const confirming = confirmConnect("f9b", ticketLite);
    await settlesWithin(confirming, 300);
    await emulator.release(hold);
    const [deleted, confirmed] = await Promise.all([deleting, confirming]);
    expect(deleted.body).toMatchObject({ ok: true, deleted: true });
    expect(confirmed.status).toBe(400);
    expect(confirmed.body.reason).toBe("invalid_ticket");
    expect((await callApi("GET", "/users/f9b/connection?appType=lite")).body.status).toBe("not_connected");
    expect(await userRows("f9b")).toEqual([]);
    expect((await emulator.liveRefreshTokens("lite", A.id)).refreshTokens).toEqual([]);
  });

  it("9c. an encryption key removed too early keeps the tokens and answers app_misconfigured until it is back", async () => {
    const { A } = accounts();
    await connectUser("f9c", A);
    const row = await storedRow("f9c");
    const [, , iv, ct] = (row!.access_token as string).split(".");
    // The same ciphertext, as if sealed under a key id the configuration no longer lists.
    await runInDurableObject(actor("f9c"), (_i, state) => {
      state.storage.sql.exec("UPDATE connections SET access_token = ?", `v1.k9.${iv}.${ct}`);
      forgetConnectionRows(state.storage.sql);
    });
    for (let i = 0; i < 2; i++) {
      const res = await requestToken("f9c", { repository: "acme/app" });
      expect(res.status).toBe(503);
      expect(res.body.reason).toBe("app_misconfigured");
    }
    expect((await callApi("GET", "/users/f9c/connection?appType=standard")).body.status).toBe("connected");
    expect((await storedRow("f9c"))!.refresh_token).toBe(row!.refresh_token);
    // The key is back: everything works again.
    await runInDurableObject(actor("f9c"), (_i, state) => {
      state.storage.sql.exec("UPDATE connections SET access_token = ?", row!.access_token);
      forgetConnectionRows(state.storage.sql);
    });
    expect((await requestToken("f9c", { repository: "acme/app" })).status).toBe(200);
  });
});

describe("housekeeping", () => {
  it("the alarm re-seals values under the primary key, purges expired connects and tickets, and is set while the actor holds anything", async () => {
    const { A } = accounts();
    await connectUser("hk", A);
    await callApi("POST", "/users/hk/connect", { appType: "standard", returnTo: `${new URL(PUBLIC_BASE_URL).origin.replace("broker", "app")}/x` });
    const both = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
    const oldOnly = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS.split(",")[1]);
    const row = await storedRow("hk");
    const ctx = { userId: "hk", appType: "standard", field: "refresh_token" };
    const refresh = (await open(both, row!.refresh_token, ctx))!;
    const { seal } = await import("../src/crypto");
    const underOld = await seal(oldOnly, refresh, ctx);
    const alarmAt = await runInDurableObject(actor("hk"), async (_i, state) => {
      state.storage.sql.exec("UPDATE connections SET refresh_token = ?", underOld);
      forgetConnectionRows(state.storage.sql);
      state.storage.sql.exec("UPDATE pending_connects SET expires_at = ?", Date.now() - 1);
      return state.storage.getAlarm();
    });
    expect(alarmAt).not.toBeNull();
    expect(alarmAt! - Date.now()).toBeLessThanOrEqual(24 * 3600_000);
    expect(await runDurableObjectAlarm(actor("hk"))).toBe(true);
    const after = await storedRow("hk");
    expect(after!.refresh_token).toMatch(/^v1\.k2\./);
    expect(await open(both, after!.refresh_token, ctx)).toBe(refresh);
    const pending = await runInDurableObject(actor("hk"), async (_i, state) => ({
      connects: state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM pending_connects").one().n,
      alarm: await state.storage.getAlarm(),
    }));
    expect(pending.connects).toBe(0);
    expect(pending.alarm).not.toBeNull();
  });

  /** The actor's alarm time, with connection events off for it (a deployment without EVENTS_URL): nothing else moves the alarm. */
  const alarmOf = (userId: string) => runInDurableObject(actor(userId), (_i, state) => state.storage.getAlarm());
  async function withoutEvents<T>(userId: string, fn: () => Promise<T>): Promise<T> {
    const saved = await runInDurableObject(actor(userId), (instance) => {
      const vars = (instance as unknown as { env: Record<string, unknown> }).env;
      const url = vars.EVENTS_URL;
      vars.EVENTS_URL = "";
      return url as string;
    });
    try {
      return await fn();
    } finally {
      await runInDurableObject(actor(userId), (instance) => void ((instance as unknown as { env: Record<string, unknown> }).env.EVENTS_URL = saved));
    }
  }

  it("a completed confirm leaves no wake-up a minute later: the alarm goes to the daily run", async () => {
    const { A } = accounts();
    await emulator.addUser(A);
    const ticket = await callbackTicket(await authorizeAs("grace", A.id));
    const confirmed = await withoutEvents("grace", () => confirmConnect("grace", ticket));
    expect(confirmed.status).toBe(200);
    expect((await alarmOf("grace"))! - Date.now()).toBeGreaterThan(23 * 3600_000);
  });

  it("a confirm's grace alarm stays while another connect of the user waits on GitHub", async () => {
    const { A } = accounts();
    await connectUser("grace2", A);
    // A reconnect with a scoped token of the old generation: its confirm is held while the old token is revoked.
    expect((await requestToken("grace2", { repository: "acme/app", scope: "repository" })).status).toBe(200);
    const ticketStandard = await callbackTicket(await authorizeAs("grace2", A.id));
    const ticketLite = await callbackTicket(await authorizeAs("grace2", A.id, "lite"));
    await withoutEvents("grace2", async () => {
      const revoking = await emulator.hold({ match: ["revoke_token"] });
      const first = confirmConnect("grace2", ticketStandard);
      expect(await emulator.waitHeld(revoking, first)).not.toBeNull();
      const graceAt = await alarmOf("grace2");
      expect(graceAt! - Date.now()).toBeLessThanOrEqual(60_000);
      // The second connect has paused the App's revocations and relies on the same alarm.
      const exchanging = await emulator.hold({ match: ["exchange"] });
      const second = confirmConnect("grace2", ticketLite);
      expect(await emulator.waitHeld(exchanging, second)).not.toBeNull();
      await emulator.release(revoking);
      expect((await first).status).toBe(200);
      expect(await alarmOf("grace2")).toBe(graceAt);
      await emulator.release(exchanging);
      expect((await second).status).toBe(200);
    });
  });
});
