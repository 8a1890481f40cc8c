/**
 * The grant revoker against what else holds the grant: another platform user connected with
 * the same GitHub account, a confirm cut short by a reset after GitHub issued the grant, and a
 * pending revocation of an App no longer configured.
 */
import { abortAllDurableObjects, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { actor, authorizeAs, callApi, callbackTicket, confirmConnect, connectUser, emulator, pendingRevocations, requestToken, retryRevocationsNow, setStoredExpiry, userRows } from "./support/helpers";

const REPOS = { "acme/app": "push" as const };
let next = 0;
function account() {
  next++;
  return { id: 500_000 + next, login: `gr${next}`, name: null, repos: REPOS };
}

beforeEach(async () => {
  await emulator.reset();
});

describe("the grant revoker", () => {
  it("a deleted account's pending revocation never ends the same GitHub account's later connection under another platform user", async () => {
    const A = account();
    await connectUser("gr3-x", A);
    const oldToken = (await requestToken("gr3-x", { repository: "acme/app" })).body.token as string;
    await emulator.fault({ endpoint: "revoke_grant", kind: "status_5xx" });
    const deleted = await callApi("DELETE", "/users/gr3-x");
    expect(deleted.body.githubGrants.standard).toBe("pending");
    // The same person signs up again as another platform user and connects the same account.
    await connectUser("gr3-y", A);
    // The deletion set gr3-x's alarm too: an attempt of its own may be under way (or may have
    // met gr3-y mid-confirm and backed off). Retry until the row is settled, a few times at most.
    for (let i = 0; i < 10 && (await pendingRevocations("gr3-x")) > 0; i++) {
      await retryRevocationsNow("gr3-x");
      if ((await pendingRevocations("gr3-x")) > 0) await new Promise((r) => setTimeout(r, 300));
    }
    expect(await pendingRevocations("gr3-x")).toBe(0);
    const token = await requestToken("gr3-y", { repository: "acme/app" });
    expect(token.status).toBe(200);
    expect((await emulator.tokenState(token.body.token)).access?.alive).toBe(true);
    // Its refresh token works too: a refresh gives a new live token.
    await setStoredExpiry("gr3-y", "standard", Date.now() - 1);
    const refreshed = await requestToken("gr3-y", { repository: "acme/app" });
    expect(refreshed.status).toBe(200);
    expect(refreshed.body.token).not.toBe(token.body.token);
    // The finest revocation that leaves the newer connection alone: the old token alone.
    expect((await emulator.tokenState(oldToken)).access?.alive).toBe(false);
  });

  it("with nobody else connected, the deleted account's grant is revoked", async () => {
    const A = account();
    await connectUser("gr3-z", A);
    await emulator.fault({ endpoint: "revoke_grant", kind: "status_5xx" });
    expect((await callApi("DELETE", "/users/gr3-z")).body.githubGrants.standard).toBe("pending");
    await retryRevocationsNow("gr3-z");
    expect(await pendingRevocations("gr3-z")).toBe(0);
    expect((await emulator.liveRefreshTokens("standard", A.id)).refreshTokens).toEqual([]);
  });

  it("a reset between the exchange and the stored generation leaves the grant to the alarm, which revokes it", async () => {
    const A = account();
    await emulator.addUser(A);
    const ticket = await callbackTicket(await authorizeAs("gr8", A.id));
    const hold = await emulator.hold({ match: ["user"] });
    const confirming = confirmConnect("gr8", ticket);
    expect(await emulator.waitHeld(hold, confirming)).not.toBeNull();
    // GitHub has issued the grant; the actor is reset while it reads /user.
    expect((await emulator.liveRefreshTokens("standard", A.id)).refreshTokens).toHaveLength(1);
    await abortAllDurableObjects();
    await emulator.release(hold);
    await confirming.catch(() => undefined);
    expect(await pendingRevocations("gr8")).toBe(1);
    // The alarm was set before the exchange, for when the record comes due (a minute later).
    expect(await runInDurableObject(actor("gr8"), (_i, state) => state.storage.getAlarm())).not.toBeNull();
    await retryRevocationsNow("gr8");
    expect((await emulator.liveRefreshTokens("standard", A.id)).refreshTokens).toEqual([]);
    expect(await pendingRevocations("gr8")).toBe(0);
  });

  it("a confirm that completes leaves nothing to revoke", async () => {
    const A = account();
    await connectUser("gr8-ok", A);
    expect(await pendingRevocations("gr8-ok")).toBe(0);
    await runDurableObjectAlarm(actor("gr8-ok"));
    expect((await requestToken("gr8-ok", { repository: "acme/app" })).status).toBe(200);
  });

  it("a pending revocation of an App no longer configured makes no request, and goes once its tokens expired", async () => {
    const A = account();
    await connectUser("gr9", A);
    await callApi("DELETE", "/users/gr9/connection?appType=standard");
    const now = Date.now();
    // A row of an App since removed from GITHUB_APPS (its sealed values never opened).
    await runInDurableObject(actor("gr9"), (_i, state) => {
      state.storage.sql.exec(
        `INSERT INTO pending_revocations (id, app_type, access_token, access_token_expires_at, refresh_token, refresh_token_expires_at,
           attempts, next_attempt_at, created_at, account) VALUES ('gone-app', 'removed', 'x', ?, 'y', ?, 0, 0, ?, '1')`,
        now + 3600_000,
        now + 86_400_000,
        now,
      );
    });
    const before = await emulator.stats();
    await retryRevocationsNow("gr9");
    expect(await pendingRevocations("gr9")).toBe(1);
    expect((await emulator.stats()).counts).toEqual(before.counts);
    // Its refresh token has expired: the row goes without a request, and the object empties.
    await runInDurableObject(actor("gr9"), (_i, state) => {
      state.storage.sql.exec("UPDATE pending_revocations SET access_token_expires_at = ?, refresh_token_expires_at = ?", now - 1, now - 1);
    });
    await retryRevocationsNow("gr9");
    expect(await pendingRevocations("gr9")).toBe(0);
    expect((await emulator.stats()).counts).toEqual(before.counts);
    const rows = (await userRows("gr9")).filter((r) => !(r && typeof r === "object" && ("kind" in r || "key" in r)));
    expect(rows.filter((r) => r && typeof r === "object" && "access_token" in r)).toEqual([]);
  });
});
