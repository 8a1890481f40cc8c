/** The agent-side client over the real `BrokerApi` entrypoint (RPC), and the entrypoint itself. */
import { exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { UserTokenClient, shouldFallBack, type TokenBrokerBinding } from "../src/client";
import type { TokenResult } from "../src/contract";
import { connectUser, emulator, requestToken, setStoredExpiry } from "./support/helpers";

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
    expect(shouldFallBack(result) && result.reason).toBe("not_connected");
    const broken: TokenBrokerBinding = {
      getToken: async () => {
        throw new Error("binding unavailable");
      },
      reportRejectedToken: async () => {
        throw new Error("binding unavailable");
      },
    };
    const down = await new UserTokenClient({ broker: broken, userId: "u", appType: "standard" }).getToken("acme/app");
    expect(down).toMatchObject({ ok: false, reason: "github_unavailable" });
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
