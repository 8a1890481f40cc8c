/** Connecting a user: authorize URL, callback, failures, replay, two tabs, the identity index. */
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { identityIndex } from "../src/identity-index";
import { signState } from "../src/oauth";
import { APPS, EMULATOR_URL, PUBLIC_BASE_URL, RETURN_ORIGIN, STATE_SIGNING_KEY } from "./support/env";
import { authorizeAs, callApi, connectUser, emulator, publicFetch, requestToken, storedRow } from "./support/helpers";

const OCTO = { id: 1001, login: "octocat", name: "The Octocat", repos: { "acme/app": "push" as const } };

beforeEach(async () => {
  await emulator.reset();
});
afterEach(() => {
  vi.restoreAllMocks();
});

async function startConnect(userId: string, returnTo = `${RETURN_ORIGIN}/settings?tab=github`) {
  return callApi("POST", `/users/${userId}/connect`, { appType: "standard", returnTo });
}

function location(res: Response): URL {
  expect(res.status).toBe(302);
  return new URL(res.headers.get("location")!);
}

describe("connect", () => {
  it("authorize URL: GitHub's endpoint with client_id, callback, state and PKCE S256, nothing GitHub ignores", async () => {
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
  });

  it("the whole flow through the public URL: connected with login and expiries, and a token works", async () => {
    await emulator.addUser(OCTO);
    const back = await publicFetch(await authorizeAs("c-2", OCTO.id));
    const target = location(back);
    expect(target.origin).toBe(RETURN_ORIGIN);
    expect(target.pathname).toBe("/settings/github");
    expect(target.searchParams.get("github_connect")).toBe("success");
    const conn = await callApi("GET", "/users/c-2/connection?appType=standard");
    expect(conn.body).toMatchObject({ status: "connected", githubUserId: "1001", githubLogin: "octocat" });
    for (const field of ["accessTokenExpiresAt", "refreshTokenExpiresAt", "connectedAt", "updatedAt"]) {
      expect(conn.body[field], field).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    expect(Date.parse(conn.body.refreshTokenExpiresAt)).toBeGreaterThan(Date.parse(conn.body.accessTokenExpiresAt));
    const token = await requestToken("c-2", { repository: "acme/app" });
    expect(token.status).toBe(200);
    expect(token.body.committer.email).toBe("1001+octocat@users.noreply.github.com");
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

  it("a callback with neither code nor error, or with another GitHub error, is exchange_failed", async () => {
    for (const extra of ["", "&error=redirect_uri_mismatch&error_description=The%20redirect_uri%20MUST%20match"]) {
      const started = await startConnect("c-3b");
      const state = new URL(started.body.authorizeUrl).searchParams.get("state")!;
      const target = location(await publicFetch(`/oauth/callback?state=${encodeURIComponent(state)}${extra}`));
      expect(target.searchParams.get("reason")).toBe("exchange_failed");
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
    }
    expect((await callApi("GET", "/users/c-victim/connection?appType=standard")).body.status).toBe("not_connected");
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

  it("replay: the same callback URL twice connects once; the second is invalid_state", async () => {
    await emulator.addUser(OCTO);
    const callback = await authorizeAs("c-6", OCTO.id);
    expect(location(await publicFetch(callback)).searchParams.get("github_connect")).toBe("success");
    const row = await storedRow("c-6");
    const again = location(await publicFetch(callback));
    expect(again.searchParams.get("reason")).toBe("invalid_state");
    expect(await storedRow("c-6")).toEqual(row);
    expect((await emulator.stats()).counts.exchange).toBe(1);
  });

  it("a state minted for user A cannot connect user B", async () => {
    await emulator.addUser(OCTO);
    const forA = await authorizeAs("c-7a", OCTO.id);
    await startConnect("c-7b"); // B has a pending connect of their own
    const res = await publicFetch(forA);
    expect(location(res).searchParams.get("github_connect")).toBe("success");
    expect((await callApi("GET", "/users/c-7a/connection?appType=standard")).body.status).toBe("connected");
    expect((await callApi("GET", "/users/c-7b/connection?appType=standard")).body.status).toBe("not_connected");
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
      const res = await startConnect("c-8", returnTo);
      expect(res.status, returnTo).toBe(400);
      expect(res.body.reason, returnTo).toBe("invalid_request");
    }
  });

  it("exchange failures: a bad code is exchange_failed, a GitHub outage github_unavailable", async () => {
    const started = await startConnect("c-9");
    const state = new URL(started.body.authorizeUrl).searchParams.get("state")!;
    const bad = location(await publicFetch(`/oauth/callback?code=not-a-real-code&state=${encodeURIComponent(state)}`));
    expect(bad.searchParams.get("reason")).toBe("exchange_failed");

    await emulator.addUser(OCTO);
    const callback = await authorizeAs("c-9", OCTO.id);
    await emulator.fault({ endpoint: "exchange", kind: "status_5xx" });
    expect(location(await publicFetch(callback)).searchParams.get("reason")).toBe("github_unavailable");
    const hang = await authorizeAs("c-9", OCTO.id);
    await emulator.fault({ endpoint: "exchange", kind: "hang" });
    expect(location(await publicFetch(hang)).searchParams.get("reason")).toBe("github_unavailable");
    expect((await callApi("GET", "/users/c-9/connection?appType=standard")).body.status).toBe("not_connected");
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
    const res = await publicFetch(`/oauth/callback?code=${code}&state=${encodeURIComponent(authorize.searchParams.get("state")!)}`);
    expect(location(res).searchParams.get("reason")).toBe("exchange_failed");
  });

  it("an App with 'expire user authorization tokens' off is refused, with a log line that says so", async () => {
    const lines: string[] = [];
    vi.spyOn(console, "log").mockImplementation((...a: unknown[]) => void lines.push(a.map(String).join(" ")));
    await emulator.settings({ expiringTokens: false });
    await emulator.addUser(OCTO);
    const res = await publicFetch(await authorizeAs("c-11", OCTO.id));
    expect(location(res).searchParams.get("reason")).toBe("exchange_failed");
    expect(lines.join("\n")).toContain("Expire user authorization tokens");
    expect((await callApi("GET", "/users/c-11/connection?appType=standard")).body.status).toBe("not_connected");
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
      if (i === 1) await emulator.fault({ endpoint: "exchange", kind: "status_5xx" });
      redirects.push((await publicFetch(callback)).headers.get("location")!);
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

  it("two concurrent callbacks for one user (two tabs): one pair stored, and it is live at GitHub", async () => {
    await emulator.addUser(OCTO);
    const [tab1, tab2] = [await authorizeAs("c-13", OCTO.id), await authorizeAs("c-13", OCTO.id)];
    const [r1, r2] = await Promise.all([publicFetch(tab1), publicFetch(tab2)]);
    expect(location(r1).searchParams.get("github_connect")).toBe("success");
    expect(location(r2).searchParams.get("github_connect")).toBe("success");
    const rows = await callApi("GET", "/users/c-13/connection?appType=standard");
    expect(rows.body.status).toBe("connected");
    const token = await requestToken("c-13", { repository: "acme/app" });
    expect((await emulator.tokenState(token.body.token)).access!.alive).toBe(true);
    // And the stored refresh token is a live one: a refresh works.
    const { setStoredExpiry } = await import("./support/helpers");
    await setStoredExpiry("c-13", "standard", Date.now() - 1);
    expect((await requestToken("c-13", { repository: "acme/app" })).status).toBe(200);
  });

  it("reconnecting replaces the pair and clears reconnect_required; another account replaces the identity and index link", async () => {
    await connectUser("c-14", OCTO);
    const first = await storedRow("c-14");
    // Break it: the refresh token was rejected.
    await emulator.revoke("standard", OCTO.id);
    const { setStoredExpiry } = await import("./support/helpers");
    await setStoredExpiry("c-14", "standard", Date.now() - 1);
    expect((await requestToken("c-14", { repository: "acme/app" })).body.reason).toBe("reconnect_required");

    await connectUser("c-14", OCTO);
    const second = await storedRow("c-14");
    expect(second!.status).toBe("connected");
    expect(second!.reason).toBeNull();
    expect(second!.refresh_token).not.toBe(first!.refresh_token);
    expect((await requestToken("c-14", { repository: "acme/app" })).status).toBe(200);

    const HUBOT = { id: 2002, login: "hubot", name: null, repos: { "acme/app": "push" as const } };
    await connectUser("c-14", HUBOT);
    const conn = await callApi("GET", "/users/c-14/connection?appType=standard");
    expect(conn.body).toMatchObject({ status: "connected", githubUserId: "2002", githubLogin: "hubot" });
    expect(await identityIndex(env, "2002").users({ appType: "standard" })).toEqual(["c-14"]);
    expect(await identityIndex(env, "1001").users({ appType: "standard" })).not.toContain("c-14");
  });
});
