/**
 * Connecting a user, in two phases: authorize URL, callback (ticket), the web app's
 * confirmation; failures, replay, hijack attempts, tickets, two tabs, the identity index.
 */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { identityIndex } from "../src/identity-index";
import { signState } from "../src/oauth";
import { APPS, EMULATOR_URL, PUBLIC_BASE_URL, RETURN_ORIGIN, STATE_SIGNING_KEY } from "./support/env";
import {
  actor,
  authorizeAs,
  callApi,
  callbackTicket,
  confirmConnect,
  connectUser,
  emulator,
  publicFetch,
  requestToken,
  setStoredExpiry,
  storedRow,
  userRows,
} from "./support/helpers";

const OCTO = { id: 1001, login: "octocat", name: "The Octocat", repos: { "acme/app": "push" as const } };

beforeEach(async () => {
  await emulator.reset();
});
afterEach(() => {
  vi.restoreAllMocks();
});

async function startConnect(userId: string, extra: Record<string, unknown> = {}, returnTo = `${RETURN_ORIGIN}/settings?tab=github`) {
  return callApi("POST", `/users/${userId}/connect`, { appType: "standard", returnTo, ...extra });
}

function location(res: Response): URL {
  expect(res.status).toBe(302);
  return new URL(res.headers.get("location")!);
}

const status = async (userId: string) => (await callApi("GET", `/users/${userId}/connection?appType=standard`)).body.status;

describe("connect: phase 1, the authorize URL", () => {
  it("GitHub's endpoint with client_id, callback, state and PKCE S256, nothing GitHub ignores; expiresAt", async () => {
    const res = await startConnect("c-1");
    expect(res.status).toBe(200);
    const url = new URL(res.body.authorizeUrl);
    expect(`${url.origin}${url.pathname}`).toBe(`${EMULATOR_URL}/login/oauth/authorize`);
    expect(url.searchParams.get("client_id")).toBe(APPS.standard.clientId);
    expect(url.searchParams.get("redirect_uri")).toBe(`${PUBLIC_BASE_URL}/oauth/callback`);
    expect(url.searchParams.get("code_challenge_method")).toBe("S256");
    expect(url.searchParams.get("code_challenge")).toMatch(/^[\w-]{43}$/);
    expect(url.searchParams.get("state")).toBeTruthy();
    expect([...url.searchParams.keys()].sort()).toEqual(["client_id", "code_challenge", "code_challenge_method", "redirect_uri", "state"]);
    const expires = Date.parse(res.body.expiresAt) - Date.now();
    expect(res.body.expiresAt).toMatch(/Z$/);
    expect(expires).toBeGreaterThan(9 * 60_000);
    expect(expires).toBeLessThanOrEqual(10 * 60_000);
  });

  it("selectAccount: true adds prompt=select_account (GitHub's account picker); anything but a boolean is 400", async () => {
    const picked = new URL((await startConnect("c-1b", { selectAccount: true })).body.authorizeUrl);
    expect(picked.searchParams.get("prompt")).toBe("select_account");
    const plain = new URL((await startConnect("c-1b", { selectAccount: false })).body.authorizeUrl);
    expect(plain.searchParams.has("prompt")).toBe(false);
    expect((await startConnect("c-1b", { selectAccount: "yes" })).status).toBe(400);
  });

  it("returnTo must be on an allowed origin: no open redirect, no javascript:, no userinfo tricks", async () => {
    for (const returnTo of [
      "https://evil.example/",
      "javascript:alert(1)",
      `${RETURN_ORIGIN}@evil.example/`,
      `https://user:pass@app.test/`,
      "//evil.example/",
      "/relative",
      "https://app.test.evil.example/",
      "http://app.test/",
    ]) {
      const res = await startConnect("c-8", {}, returnTo);
      expect(res.status, returnTo).toBe(400);
      expect(res.body.reason, returnTo).toBe("invalid_request");
    }
  });

  it("open connects per user are capped: the oldest authorize URLs stop working, storage stays bounded", async () => {
    const urls: string[] = [];
    for (let i = 0; i < 25; i++) urls.push((await startConnect("c-cap")).body.authorizeUrl);
    const pending = await runInDurableObject(actor("c-cap"), (_i, state) => state.storage.sql.exec("SELECT COUNT(*) AS n FROM pending_connects").one().n);
    expect(pending).toBeLessThanOrEqual(10);
    await emulator.addUser(OCTO);
    const stateOf = (u: string) => new URL(u).searchParams.get("state")!;
    const oldest = location(await publicFetch(`/oauth/callback?code=x&state=${encodeURIComponent(stateOf(urls[0]!))}`));
    expect(oldest.searchParams.get("reason")).toBe("invalid_state");
    const newest = location(await publicFetch(`/oauth/callback?code=x&state=${encodeURIComponent(stateOf(urls[24]!))}`));
    expect(newest.searchParams.get("github_connect")).toBe("confirm");
  });
});

describe("connect: phase 2, the callback", () => {
  it("redirects with a ticket and connects nothing; the confirmation connects, and a token works", async () => {
    await emulator.addUser(OCTO);
    const back = location(await publicFetch(await authorizeAs("c-2", OCTO.id)));
    expect(back.origin).toBe(RETURN_ORIGIN);
    expect(back.pathname).toBe("/settings/github");
    expect(back.searchParams.get("github_connect")).toBe("confirm");
    const ticket = back.searchParams.get("connect_ticket")!;
    expect(ticket).toMatch(/^[\w-]+\.[\w-]{43}\.[\w-]{43}$/); // owner, 256 random bits, MAC
    expect(await status("c-2")).toBe("not_connected");
    expect((await emulator.stats()).counts.exchange).toBe(0);

    const confirmed = await confirmConnect("c-2", ticket);
    expect(confirmed.status).toBe(200);
    expect(confirmed.body).toEqual({ ok: true, status: "connected", appType: "standard", githubUserId: "1001", githubLogin: "octocat" });
    const conn = await callApi("GET", "/users/c-2/connection?appType=standard");
    expect(conn.body).toMatchObject({ status: "connected", githubUserId: "1001", githubLogin: "octocat" });
    for (const field of ["accessTokenExpiresAt", "refreshTokenExpiresAt", "connectedAt", "updatedAt"]) {
      expect(conn.body[field], field).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    const token = await requestToken("c-2", { repository: "acme/app" });
    expect(token.status).toBe(200);
    expect(token.body).toMatchObject({ identity: "user", committer: { email: "1001+octocat@users.noreply.github.com" } });
    expect(await identityIndex(env, "1001").users({ appType: "standard" })).toContain("c-2");
  });

  it("the user clicked Cancel: access_denied, and the state is spent", async () => {
    const started = await startConnect("c-3");
    const state = new URL(started.body.authorizeUrl).searchParams.get("state")!;
    const denied = `/oauth/callback?error=access_denied&error_description=${encodeURIComponent("The user has denied your application access.")}&state=${encodeURIComponent(state)}`;
    const target = location(await publicFetch(denied));
    expect(target.searchParams.get("github_connect")).toBe("error");
    expect(target.searchParams.get("reason")).toBe("access_denied");
    expect(target.toString()).not.toContain("denied%20your");
    expect(location(await publicFetch(denied)).searchParams.get("reason")).toBe("invalid_state");
  });

  it("a callback with neither code nor error, or with another GitHub error, is access_denied; GitHub's text stays out of the URL", async () => {
    for (const extra of ["", "&error=redirect_uri_mismatch&error_description=The%20redirect_uri%20MUST%20match"]) {
      const started = await startConnect("c-3b");
      const state = new URL(started.body.authorizeUrl).searchParams.get("state")!;
      const target = location(await publicFetch(`/oauth/callback?state=${encodeURIComponent(state)}${extra}`));
      expect(target.searchParams.get("reason")).toBe("access_denied");
      expect(target.toString()).not.toContain("MUST");
    }
  });

  it("a forged or tampered state gets a 400 page and no redirect", async () => {
    await emulator.addUser(OCTO);
    const callback = new URL(`${PUBLIC_BASE_URL}${await authorizeAs("c-4", OCTO.id)}`);
    const state = callback.searchParams.get("state")!;
    const [claims, mac] = state.split(".") as [string, string];
    const decoded = JSON.parse(atob(claims.replace(/-/g, "+").replace(/_/g, "/")));
    const reencode = (o: unknown) => btoa(JSON.stringify(o)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
    const forged = [
      "",
      "garbage",
      `${claims}.${mac.slice(0, -2)}AA`,
      `${reencode({ ...decoded, u: "c-victim" })}.${mac}`,
      `${reencode({ ...decoded, r: "https://evil.example/steal" })}.${mac}`,
      `${claims}.${mac}.extra`,
    ];
    for (const s of forged) {
      callback.searchParams.set("state", s);
      const res = await publicFetch(callback.pathname + callback.search);
      expect(res.status, s).toBe(400);
      expect(res.headers.get("location"), s).toBeNull();
      expect(res.headers.get("content-type")).toContain("text/html");
      // A way back to the web app, from the broker's configuration, never from the forged state.
      const page = await res.text();
      expect(page).toContain(`<a class="button" id="back" href="${RETURN_ORIGIN}">Back to the app</a>`);
      expect(page).not.toContain("evil.example");
    }
    expect(await status("c-victim")).toBe("not_connected");
    expect((await emulator.stats()).counts.exchange).toBe(0);
  });

  it("an expired state redirects with expired_state and exchanges nothing", async () => {
    const expired = await signState(STATE_SIGNING_KEY, {
      userId: "c-5",
      appType: "standard",
      returnTo: `${RETURN_ORIGIN}/back`,
      nonce: "n",
      expiresAt: Math.floor(Date.now() / 1000) - 1,
    });
    const target = location(await publicFetch(`/oauth/callback?code=abc&state=${encodeURIComponent(expired)}`));
    expect(target.searchParams.get("reason")).toBe("expired_state");
    expect((await emulator.stats()).counts.exchange).toBe(0);
  });

  it("replay: the same callback URL twice gives one ticket; a ticket confirms once", async () => {
    await emulator.addUser(OCTO);
    const callback = await authorizeAs("c-6", OCTO.id);
    const ticket = await callbackTicket(callback);
    expect(location(await publicFetch(callback)).searchParams.get("reason")).toBe("invalid_state");
    expect((await confirmConnect("c-6", ticket)).status).toBe(200);
    const row = await storedRow("c-6");
    const again = await confirmConnect("c-6", ticket);
    expect(again.status).toBe(400);
    expect(again.body.reason).toBe("invalid_ticket");
    expect(await storedRow("c-6")).toEqual(row);
    expect((await emulator.stats()).counts.exchange).toBe(1);
  });
});

describe("connect: phase 3, the confirmation", () => {
  it("account-linking CSRF: the attacker's authorize URL completed in the victim's browser connects nobody", async () => {
    // The victim already authorized the App, so GitHub sends their browser straight back.
    const VICTIM_GH = { id: 3003, login: "victim", name: "Victim", repos: { "acme/app": "push" as const } };
    await connectUser("victim-user", VICTIM_GH);
    // The attacker starts a connect for their own platform user and gets the victim to open it.
    const stolenFlow = await authorizeAs("attacker-user", VICTIM_GH.id);
    const back = location(await publicFetch(stolenFlow));
    expect(back.searchParams.get("github_connect")).toBe("confirm");
    const ticket = back.searchParams.get("connect_ticket")!;
    // The victim's browser lands on the web app, whose server confirms for *its* signed-in user.
    const confirmed = await confirmConnect("victim-user", ticket);
    expect(confirmed.status).toBe(400);
    expect(confirmed.body.reason).toBe("invalid_ticket");
    expect(await status("attacker-user")).toBe("not_connected");
    // Nothing the attacker can call hands out the victim's token.
    const stolen = await requestToken("attacker-user", { repository: "acme/app" });
    expect(stolen.body.reason).toBe("not_connected");
    const cap = await callApi("POST", "/users/attacker-user/capabilities", { appType: "standard", repository: "acme/app", sessionId: "s" });
    expect(cap.body.reason).toBe("not_connected");
    // The victim's own connection is untouched, and no code was exchanged for the attacker.
    expect(await status("victim-user")).toBe("connected");
    expect((await emulator.stats()).counts.exchange).toBe(1);
  });

  it("a confirm under another user id spends the ticket: the owner's confirm with it is refused after", async () => {
    await emulator.addUser(OCTO);
    const ticket = await callbackTicket(await authorizeAs("t-owner", OCTO.id));
    // The redirect URL leaked: another session of the web app presents the ticket first.
    expect((await confirmConnect("t-thief", ticket)).body.reason).toBe("invalid_ticket");
    const owners = await confirmConnect("t-owner", ticket);
    expect(owners.status).toBe(400);
    expect(owners.body.reason).toBe("invalid_ticket");
    expect(await status("t-owner")).toBe("not_connected");
    expect(await status("t-thief")).toBe("not_connected");
    expect(await userRows("t-thief")).toEqual([]);
    expect((await emulator.stats()).counts.exchange).toBe(0);
    // A ticket that names an owner but that the broker did not issue wakes no one.
    const [owner, random] = ticket.split(".");
    const forged = `${owner}.${random}.${"A".repeat(43)}`;
    expect((await confirmConnect("t-thief", forged)).body.reason).toBe("invalid_ticket");
  });

  it("a guessed, malformed, another user's, used or expired ticket is invalid_ticket; nothing is connected", async () => {
    await emulator.addUser(OCTO);
    const ticketA = await callbackTicket(await authorizeAs("t-a", OCTO.id));
    for (const guess of ["A".repeat(43), "short", "", "x".repeat(500), "../../etc"]) {
      const res = await confirmConnect("t-a", guess);
      expect(res.status, guess).toBe(400);
      expect(res.body.reason, guess).toBe("invalid_ticket");
    }
    expect((await callApi("POST", "/users/t-a/connect/confirm", { ticket: 5 })).body.reason).toBe("invalid_ticket");
    // Another user's (it spends that ticket: see the test above, so it is not ticketA).
    const ticketD = await callbackTicket(await authorizeAs("t-d", OCTO.id));
    expect((await confirmConnect("t-b", ticketD)).body.reason).toBe("invalid_ticket");
    expect(await status("t-b")).toBe("not_connected");
    // A ticket older than 5 minutes.
    const ticketC = await callbackTicket(await authorizeAs("t-c", OCTO.id));
    await runInDurableObject(actor("t-c"), (_i, state) => {
      state.storage.sql.exec("UPDATE connect_tickets SET expires_at = ?", Date.now() - 1);
    });
    expect((await confirmConnect("t-c", ticketC)).body.reason).toBe("invalid_ticket");
    expect(await status("t-c")).toBe("not_connected");
    // The legitimate flow still works, once.
    expect((await confirmConnect("t-a", ticketA)).status).toBe(200);
    expect((await confirmConnect("t-a", ticketA)).body.reason).toBe("invalid_ticket");
    expect((await emulator.stats()).counts.exchange).toBe(1);
  });

  it("the ticket is stored only as a hash, and never in a log line", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(" ")));
    await emulator.addUser(OCTO);
    const ticket = await callbackTicket(await authorizeAs("t-h", OCTO.id));
    const stored = await runInDurableObject(actor("t-h"), (_i, state) => JSON.stringify(state.storage.sql.exec("SELECT * FROM connect_tickets").toArray()));
    expect(stored).not.toContain(ticket);
    expect(stored).toMatch(/[0-9a-f]{64}/);
    await confirmConnect("t-h", ticket);
    expect(lines.join("\n")).not.toContain(ticket);
  });

  it("exchange failures: a bad code is exchange_failed (502), a GitHub outage github_unavailable (503)", async () => {
    const started = await startConnect("c-9");
    const state = new URL(started.body.authorizeUrl).searchParams.get("state")!;
    const badTicket = location(await publicFetch(`/oauth/callback?code=not-a-real-code&state=${encodeURIComponent(state)}`)).searchParams.get("connect_ticket")!;
    const bad = await confirmConnect("c-9", badTicket);
    expect(bad.status).toBe(502);
    expect(bad.body.reason).toBe("exchange_failed");

    await emulator.addUser(OCTO);
    const ticket1 = await callbackTicket(await authorizeAs("c-9", OCTO.id));
    await emulator.fault({ endpoint: "exchange", kind: "status_5xx" });
    const down = await confirmConnect("c-9", ticket1);
    expect(down.status).toBe(503);
    expect(down.body).toMatchObject({ reason: "github_unavailable" });
    expect(down.body.retryAfterSeconds).toBeGreaterThan(0);
    const ticket2 = await callbackTicket(await authorizeAs("c-9", OCTO.id));
    await emulator.fault({ endpoint: "exchange", kind: "hang" });
    expect((await confirmConnect("c-9", ticket2)).body.reason).toBe("github_unavailable");
    expect(await status("c-9")).toBe("not_connected");
  });

  it("a code issued for another PKCE challenge is refused by GitHub: exchange_failed", async () => {
    await emulator.addUser(OCTO);
    const started = await startConnect("c-10");
    const authorize = new URL(started.body.authorizeUrl);
    const { code } = await emulator.authorize({
      clientId: APPS.standard.clientId,
      userId: OCTO.id,
      redirectUri: authorize.searchParams.get("redirect_uri")!,
      codeChallenge: "x".repeat(43),
    });
    const ticket = await callbackTicket(`/oauth/callback?code=${code}&state=${encodeURIComponent(authorize.searchParams.get("state")!)}`);
    expect((await confirmConnect("c-10", ticket)).body.reason).toBe("exchange_failed");
  });

  it("an App with 'expire user authorization tokens' off is refused, says why, and the grant it got is revoked", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(" ")));
    await emulator.settings({ expiringTokens: false });
    // An account of its own: a grant another platform user is connected with is not revoked (grant-revoker.ts).
    const OCTO = { id: 1011, login: "octocat-11", name: null, repos: { "acme/app": "push" as const } };
    await emulator.addUser(OCTO);
    const ticket = await callbackTicket(await authorizeAs("c-11", OCTO.id));
    const res = await confirmConnect("c-11", ticket);
    expect(res.status).toBe(502);
    expect(res.body.reason).toBe("exchange_failed");
    expect(res.body.message).toContain("Expire user authorization tokens");
    expect(lines.join("\n")).toContain("Expire user authorization tokens");
    expect(await status("c-11")).toBe("not_connected");
    expect((await emulator.stats()).counts.revoke_grant).toBe(1);
  });

  it("no redirect URL and no log line carries a code, a token or GitHub's error text", async () => {
    const lines: string[] = [];
    for (const m of ["log", "info", "warn", "error"] as const) {
      vi.spyOn(console, m).mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(" ")));
    }
    await emulator.addUser(OCTO);
    const redirects: string[] = [];
    const codes: string[] = [];
    for (let i = 0; i < 3; i++) {
      const callback = await authorizeAs("c-12", OCTO.id);
      codes.push(new URL(`${PUBLIC_BASE_URL}${callback}`).searchParams.get("code")!);
      const res = await publicFetch(callback);
      redirects.push(res.headers.get("location")!);
      if (i === 1) await emulator.fault({ endpoint: "exchange", kind: "status_5xx" });
      await confirmConnect("c-12", new URL(res.headers.get("location")!).searchParams.get("connect_ticket")!);
    }
    const badCode = "bad-code-0123456789";
    const started = await startConnect("c-12");
    const state = new URL(started.body.authorizeUrl).searchParams.get("state")!;
    redirects.push((await publicFetch(`/oauth/callback?code=${badCode}&state=${encodeURIComponent(state)}`)).headers.get("location")!);
    const token = (await requestToken("c-12", { repository: "acme/app" })).body.token;
    const errorText = "The code passed is incorrect or expired";
    const all = redirects.join("\n");
    for (const secret of [...codes, badCode, token]) {
      expect(all).not.toContain(secret);
      expect(lines.join("\n")).not.toContain(secret);
    }
    expect(all).not.toContain(errorText);
    expect(all).not.toContain("incorrect");
  });

  it("two tabs: two tickets confirmed at once; one pair stored, and it is live at GitHub", async () => {
    await emulator.addUser(OCTO);
    const [t1, t2] = [await callbackTicket(await authorizeAs("c-13", OCTO.id)), await callbackTicket(await authorizeAs("c-13", OCTO.id))];
    const [r1, r2] = await Promise.all([confirmConnect("c-13", t1), confirmConnect("c-13", t2)]);
    expect(r1.status).toBe(200);
    expect(r2.status).toBe(200);
    expect(await status("c-13")).toBe("connected");
    const token = await requestToken("c-13", { repository: "acme/app" });
    expect((await emulator.tokenState(token.body.token)).access!.alive).toBe(true);
    // And the stored refresh token is a live one: a refresh works.
    await setStoredExpiry("c-13", "standard", Date.now() - 1);
    expect((await requestToken("c-13", { repository: "acme/app" })).status).toBe(200);
  });

  it("reconnecting replaces the pair and clears reconnect_required; another account replaces the identity and index link, and its grant is revoked", async () => {
    // An account of its own: a grant another platform user is connected with is not revoked (grant-revoker.ts).
    const OCTO = { id: 1014, login: "octocat-14", name: null, repos: { "acme/app": "push" as const } };
    await connectUser("c-14", OCTO);
    const first = await storedRow("c-14");
    // Break it: the refresh token was rejected.
    await emulator.revoke("standard", OCTO.id);
    await setStoredExpiry("c-14", "standard", Date.now() - 1);
    expect((await requestToken("c-14", { repository: "acme/app" })).body.reason).toBe("reconnect_required");

    await connectUser("c-14", OCTO);
    const second = await storedRow("c-14");
    expect(second!.status).toBe("connected");
    expect(second!.reason).toBeNull();
    expect(second!.refresh_token).not.toBe(first!.refresh_token);
    expect(second!.generation).not.toBe(first!.generation);
    expect((await requestToken("c-14", { repository: "acme/app" })).status).toBe(200);

    const HUBOT = { id: 2002, login: "hubot", name: null, repos: { "acme/app": "push" as const } };
    await connectUser("c-14", HUBOT);
    const conn = await callApi("GET", "/users/c-14/connection?appType=standard");
    expect(conn.body).toMatchObject({ status: "connected", githubUserId: "2002", githubLogin: "hubot" });
    expect(await identityIndex(env, "2002").users({ appType: "standard" })).toEqual(["c-14"]);
    expect(await identityIndex(env, "1014").users({ appType: "standard" })).not.toContain("c-14");
    // The octocat grant the broker held is not forgotten: it was revoked at GitHub.
    expect((await emulator.liveRefreshTokens("standard", OCTO.id)).refreshTokens).toEqual([]);
  });
});
