/** The agent-side client over the real `BrokerApi` entrypoint (RPC), and the entrypoint itself. */
import { exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { BrokerClient, brokerBinding, capabilityRemote, connectionAction, isCallerBug, readConnectReturn, shouldFallBack, UserTokenClient, type BrokerApiMethods, type TokenBrokerBinding } from "../src/client";
import type { BrokerApi } from "../src/index";
import type { TokenResult } from "../src/contract";
import { INTERNAL_API_TOKEN } from "./support/env";
import { authorizeAs, callbackTicket, connectUser, emulator, publicFetch, requestToken, setStoredExpiry } from "./support/helpers";

const GH = { id: 3003, login: "agent-user", name: "Agent User", repos: { "acme/app": "push" as const } };

/** The real entrypoint, counting the calls that reach it. */
function countingBroker() {
  const broker = (exports as unknown as { BrokerApi: TokenBrokerBinding }).BrokerApi;
  const calls = { getToken: 0, reportRejectedToken: 0 };
  const binding: TokenBrokerBinding = {
    getToken: (u, r) => (calls.getToken++, broker.getToken(u, r)),
    reportRejectedToken: (u, r) => (calls.reportRejectedToken++, broker.reportRejectedToken(u, r)),
  };
  return { binding, calls };
}

beforeEach(async () => {
  await emulator.reset();
});

describe("BrokerApi entrypoint", () => {
  it("serves the same results over RPC as over HTTP, and /v1 over its fetch with no bearer", async () => {
    await connectUser("cl-0", GH);
    const api = (exports as unknown as { BrokerApi: TokenBrokerBinding & Fetcher }).BrokerApi;
    const rpc = await api.getToken("cl-0", { appType: "standard", repository: "acme/app" });
    const http = await requestToken("cl-0", { repository: "acme/app" });
    expect(rpc).toEqual(http.body);
    const res = await api.fetch("https://broker.internal/v1/users/cl-0/connection?appType=standard");
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe("connected");
    const bad = await api.getToken("bad user", { appType: "standard", repository: "acme/app" });
    expect(bad).toMatchObject({ ok: false, reason: "invalid_request" });
  });

  it("answers a grant as JSON that no cache keeps, on the public URL's one-pass route and on the binding's router alike", async () => {
    await connectUser("cl-h", GH);
    const api = (exports as unknown as { BrokerApi: TokenBrokerBinding & Fetcher }).BrokerApi;
    const init = { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ appType: "standard", repository: "acme/app" }) };
    const routed = await api.fetch("https://broker.internal/v1/users/cl-h/token", init);
    const onePass = await publicFetch("/v1/users/cl-h/token", { ...init, headers: { ...init.headers, authorization: `Bearer ${INTERNAL_API_TOKEN}` } });
    const rpc = await api.getToken("cl-h", { appType: "standard", repository: "acme/app" });
    for (const res of [routed, onePass]) {
      expect(res.status).toBe(200);
      expect(res.headers.get("cache-control")).toBe("no-store");
      expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
      expect(await res.json()).toEqual(rpc);
    }
    expect(rpc).toMatchObject({ ok: true, identity: "user", githubLogin: GH.login });
  });
});

describe("UserTokenClient", () => {
  it("coalesces 50 concurrent calls in one session into one broker call and one refresh", async () => {
    await connectUser("cl-1", GH);
    await setStoredExpiry("cl-1", "standard", Date.now() - 1);
    const { binding, calls } = countingBroker();
    const client = new UserTokenClient({ broker: binding, userId: "cl-1", appType: "standard" });
    const before = await emulator.stats();
    const results = await Promise.all(Array.from({ length: 50 }, () => client.getToken("acme/app")));
    expect(calls.getToken).toBe(1);
    expect((await emulator.stats()).counts.refresh - before.counts.refresh).toBe(1);
    expect(new Set(results.map((r) => (r.ok ? r.token : r.reason))).size).toBe(1);
    expect(results[0]!.ok).toBe(true);
    // Cached afterwards: no further broker call.
    await client.getToken("acme/app");
    expect(calls.getToken).toBe(1);
  });

  it("never hands out a token within 5 minutes of expiry: it asks ahead of that", async () => {
    let now = Date.now();
    const expiresAt = new Date(now + 20 * 60_000).toISOString().replace(/\.\d{3}Z$/, "Z");
    let issued = 0;
    const fake: TokenBrokerBinding = {
      getToken: async (): Promise<TokenResult> => ({
        ok: true,
        identity: "user",
        token: `ghu_fake${++issued}`,
        expiresAt: issued === 1 ? expiresAt : new Date(now + 8 * 3600_000).toISOString(),
        expiresInSeconds: issued === 1 ? 20 * 60 : 8 * 3600,
        githubUserId: "1",
        githubLogin: "x",
        committer: { name: "x", email: "1+x@users.noreply.github.com" },
      }),
      reportRejectedToken: async () => ({ ok: false, reason: "not_connected", message: "" }),
    };
    const client = new UserTokenClient({ broker: fake, userId: "u", appType: "standard", now: () => now });
    expect(((await client.getToken("acme/app")) as { token: string }).token).toBe("ghu_fake1");
    now += 10 * 60_000; // 10 minutes left: still kept
    expect(((await client.getToken("acme/app")) as { token: string }).token).toBe("ghu_fake1");
    now += 5 * 60_000 + 1000; // under 5 minutes left: replaced before it is handed out
    expect(((await client.getToken("acme/app")) as { token: string }).token).toBe("ghu_fake2");
  });

  it("a token the broker returns already inside the margin is refused, not handed out", async () => {
    const fake: TokenBrokerBinding = {
      getToken: async () => ({
        ok: true,
        identity: "user",
        token: "ghu_short",
        expiresAt: new Date(Date.now() + 60_000).toISOString(),
        expiresInSeconds: 60,
        githubUserId: "1",
        githubLogin: "x",
        committer: { name: "x", email: "e" },
      }),
      reportRejectedToken: async () => ({ ok: false, reason: "not_connected", message: "" }),
    };
    const result = await new UserTokenClient({ broker: fake, userId: "u", appType: "standard" }).getToken("acme/app");
    expect(shouldFallBack(result)).toBe(true);
  });

  it("falls back with a typed reason: not connected, broker unreachable", async () => {
    const { binding } = countingBroker();
    const client = new UserTokenClient({ broker: binding, userId: "cl-none", appType: "standard" });
    const result = await client.getToken("acme/app");
    expect(shouldFallBack(result)).toBe(true);
    expect(result).toMatchObject({ ok: false, reason: "not_connected" });
    const broken: TokenBrokerBinding = {
      getToken: async () => {
        throw new Error("binding unavailable");
      },
      reportRejectedToken: async () => {
        throw new Error("binding unavailable");
      },
    };
    const down = await new UserTokenClient({ broker: broken, userId: "u", appType: "standard" }).getToken("acme/app");
    // The binding itself failed: a reason of its own, never mistaken for a GitHub outage.
    expect(down).toMatchObject({ ok: false, reason: "broker_unreachable", retryAfterSeconds: 1 });
    expect(shouldFallBack(down)).toBe(true);
  });

  it("does not fall back on the caller's own bugs: invalid_request and unauthorized surface", async () => {
    const { binding } = countingBroker();
    const bad = await new UserTokenClient({ broker: binding, userId: "cl-none", appType: "standard" }).getToken("not a repository");
    expect(bad).toMatchObject({ ok: false, reason: "invalid_request" });
    expect(shouldFallBack(bad)).toBe(false);
    expect(isCallerBug(bad)).toBe(true);
    const unauthorized = { ok: false as const, reason: "unauthorized" as const, message: "wrong bearer" };
    expect(shouldFallBack(unauthorized)).toBe(false);
    for (const reason of ["not_connected", "revoked", "reconnect_required", "no_repo_access", "rate_limited", "github_unavailable"] as const) {
      expect(shouldFallBack({ ok: false, reason, message: "" })).toBe(true);
    }
  });

  it("reports a rejected token and uses the replacement", async () => {
    await connectUser("cl-2", GH);
    const { binding, calls } = countingBroker();
    const client = new UserTokenClient({ broker: binding, userId: "cl-2", appType: "standard" });
    const first = await client.getToken("acme/app");
    if (!first.ok) throw new Error(first.reason);
    await emulator.clock(9 * 3600); // GitHub now refuses it
    const replaced = await client.reportRejected("acme/app", first.token);
    expect(replaced.ok && replaced.token).not.toBe(first.token);
    expect(calls.reportRejectedToken).toBe(1);
    const next = await client.getToken("acme/app");
    expect(next.ok && next.token).toBe(replaced.ok && replaced.token);
  });
});

describe("BrokerClient: the web app's side", () => {
  const rpc = () => brokerBinding((exports as unknown as { BrokerApi: { fetch: unknown } }).BrokerApi);

  it("a Service<typeof BrokerApi> is a BrokerApiMethods, so the typed binding needs no cast", () => {
    // Compile-time: this file fails `npm run typecheck` if the client's binding type drifts from the entrypoint.
    const typed = null as unknown as Service<typeof BrokerApi>;
    const asMethods: BrokerApiMethods | null = typed;
    expect(asMethods).toBeNull();
  });

  it("finishConnect confirms as the session's user: anyone else gets invalid_ticket and burns the ticket; the starter connects", async () => {
    await emulator.addUser(GH);
    const client = new BrokerClient(rpc());
    const started = await client.startConnect("bc-starter", { appType: "standard", returnTo: "https://app.test/back", selectAccount: true });
    if (!started.ok) throw new Error(started.reason);
    expect(new URL(started.authorizeUrl).searchParams.get("prompt")).toBe("select_account");
    const victimTicket = await callbackTicket(await authorizeAs("bc-starter", GH.id));
    const returned = `https://app.test/back?github_connect=confirm&connect_ticket=${victimTicket}`;
    expect(readConnectReturn(returned)).toEqual({ kind: "confirm", ticket: victimTicket });
    // Another browser session (another platform user) brought the ticket back: refused.
    expect(await client.finishConnect("bc-someone-else", returned)).toMatchObject({ ok: false, reason: "invalid_ticket" });
    const other = await client.getConnection("bc-someone-else", "standard");
    expect(other.ok && other.status).toBe("not_connected");
    // That attempt burnt the ticket for its owner too: the link is worthless once tried.
    expect(await client.finishConnect("bc-starter", returned)).toMatchObject({ ok: false, reason: "invalid_ticket" });
    // The starter starts again and connects.
    const fresh = `https://app.test/back?github_connect=confirm&connect_ticket=${await callbackTicket(await authorizeAs("bc-starter", GH.id))}`;
    const done = await client.finishConnect("bc-starter", fresh);
    expect(done).toMatchObject({ ok: true, status: "connected", githubLogin: GH.login });
    const view = await client.getConnection("bc-starter", "standard");
    expect(view.ok && connectionAction(view)).toBe("none");
    expect(await client.finishConnect("bc-starter", "https://app.test/back?github_connect=error&reason=access_denied")).toMatchObject({ reason: "callback_error", callbackReason: "access_denied" });
    expect(await client.finishConnect("bc-starter", "https://app.test/back")).toBeNull();
  });

  it("issues a capability whose git remote carries it as the password, and revokes it", async () => {
    await connectUser("bc-cap", GH);
    const client = new BrokerClient(rpc());
    const grant = await client.issueCapability("bc-cap", { appType: "standard", repository: "acme/app", sessionId: "s1" });
    if (!grant.ok) throw new Error(grant.reason);
    const remote = new URL(capabilityRemote(grant));
    expect(remote.username).toBe("x");
    expect(decodeURIComponent(remote.password)).toBe(grant.capability);
    expect(await client.revokeCapabilities("bc-cap", "s1")).toEqual({ ok: true, revoked: 1 });
    expect(connectionAction({ status: "revoked" })).toBe("reconnect");
    expect(connectionAction({ status: "not_connected" })).toBe("connect");
  });

  it("reads the user's audit trail over RPC, newest first, with paging", async () => {
    await connectUser("cl-audit", GH);
    const client = new BrokerClient(rpc());
    for (let i = 0; i < 2; i++) await requestToken("cl-audit", { repository: "acme/app" });
    const page = await client.getAudit("cl-audit", { limit: 1 });
    expect(page.ok).toBe(true);
    if (!page.ok) return;
    expect(page.entries.map((e) => e.kind)).toEqual(["token_issued"]);
    expect(page.entries[0]!.count).toBe(2);
    const older = await client.getAudit("cl-audit", { limit: 5, before: page.nextBefore });
    expect(older.ok && older.entries.map((e) => e.kind)).toEqual(["connected"]);
    expect((await client.getAudit("cl-audit", { limit: 0 })).ok).toBe(false);
  });

  it("a binding that throws is broker_unreachable for every method", async () => {
    const dead = brokerBinding({ fetch: null });
    const client = new BrokerClient(new Proxy(dead, { get: () => async () => { throw new Error("gone"); } }));
    expect(await client.getConnection("u", "standard")).toMatchObject({ ok: false, reason: "broker_unreachable" });
    expect(await client.startConnect("u", { appType: "standard", returnTo: "https://app.test/" })).toMatchObject({ reason: "broker_unreachable" });
  });
});
