/**
 * Single-flight refresh: the guarantees that keep a user connected when many agent
 * sessions, faults and evictions meet one single-use refresh token.
 */
import { abortAllDurableObjects } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import { emulator, connectUser, requestToken, setStoredExpiry, storedRow, callApi, actor } from "./support/helpers";
import { runInDurableObject } from "cloudflare:test";
import { open, loadKeyring } from "../src/crypto";
import { env } from "cloudflare:workers";
import { ConnectionStore } from "../src/actor/connection-store";
import { callContext } from "../src/actor/context";
import { Refresher } from "../src/actor/refresher";
import { TokenVault } from "../src/actor/token-vault";
import type { ConnectionRow } from "../src/actor/connection-store";
import type { Keyring } from "../src/crypto";

const GH = { id: 4242, login: "mona", name: "Mona Lisa", repos: { "acme/widgets": "push" as const } };

beforeEach(async () => {
  await emulator.reset();
});

/** Connects the user, then makes the broker see the access token as expired. */
async function connectedWithExpiredToken(userId: string) {
  await connectUser(userId, GH);
  await setStoredExpiry(userId, "standard", Date.now() - 1000);
  const before = await storedRow(userId);
  const stats = await emulator.stats();
  return { before: before!, refreshesBefore: stats.counts.refresh };
}

async function decrypted(userId: string, field: "access_token" | "refresh_token"): Promise<string | null> {
  const row = await storedRow(userId);
  const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
  return open(keyring, row![field], { userId, appType: "standard", field });
}

describe("single-flight refresh", () => {
  it("the rotated pair is durable before a caller sees the new token: an abort right after loses nothing", async () => {
    await connectedWithExpiredToken("sf-durable");
    const res = await requestToken("sf-durable", { repository: "acme/widgets" });
    expect(res.status).toBe(200);
    await abortAllDurableObjects();
    expect(await decrypted("sf-durable", "access_token")).toBe(res.body.token);
    const refresh = await decrypted("sf-durable", "refresh_token");
    expect((await emulator.tokenState(refresh!)).refresh!.alive).toBe(true);
  });

  it("a caller that arrives after a refresh uses its result instead of refreshing again", async () => {
    const { refreshesBefore } = await connectedWithExpiredToken("sf-2");
    const first = await requestToken("sf-2", { repository: "acme/widgets" });
    const second = await requestToken("sf-2", { repository: "acme/widgets" });
    expect(first.body.token).toBe(second.body.token);
    expect((await emulator.stats()).counts.refresh - refreshesBefore).toBe(1);
  });

  it("refreshes a still-valid token that does not meet minValiditySeconds", async () => {
    await connectUser("sf-3", GH);
    await setStoredExpiry("sf-3", "standard", Date.now() + 200_000);
    const old = await decrypted("sf-3", "access_token");
    const kept = await requestToken("sf-3", { repository: "acme/widgets", minValiditySeconds: 100 });
    expect(kept.body.token).toBe(old);
    const fresh = await requestToken("sf-3", { repository: "acme/widgets", minValiditySeconds: 300 });
    expect(fresh.status).toBe(200);
    expect(fresh.body.token).not.toBe(old);
    expect(Date.parse(fresh.body.expiresAt) - Date.now()).toBeGreaterThan(300_000);
  });

  it("rate limiting and wrong App credentials keep the tokens", async () => {
    const { before } = await connectedWithExpiredToken("sf-rl");
    await emulator.fault({ endpoint: "refresh", kind: "rate_limit" });
    const limited = await requestToken("sf-rl", { repository: "acme/widgets" });
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ ok: false, reason: "rate_limited", retryAfterSeconds: 30 });
    await emulator.fault({ endpoint: "refresh", kind: "bad_client" });
    const misconfigured = await requestToken("sf-rl", { repository: "acme/widgets" });
    expect(misconfigured.status).toBe(503);
    expect(misconfigured.body.reason).toBe("app_misconfigured");
    expect(await storedRow("sf-rl")).toEqual(before);
    expect((await requestToken("sf-rl", { repository: "acme/widgets" })).status).toBe(200);
  });

  it("the object evicted mid-refresh: the stored pair is the old one or the new one, never a mix, and later calls are honest", async () => {
    const { before } = await connectedWithExpiredToken("sf-evict");
    // GitHub answers after 300 ms; the object is torn down while it waits.
    await emulator.fault({ endpoint: "refresh", kind: "delay", delayMs: 300 });
    const inflight = Array.from({ length: 20 }, () => requestToken("sf-evict", { repository: "acme/widgets" }));
    await new Promise((r) => setTimeout(r, 100));
    await abortAllDurableObjects();
    const results = await Promise.all(inflight);
    for (const r of results) {
      expect([200, 503]).toContain(r.status);
      // The call in flight to the aborted object is the broker's own transient failure.
      if (r.status === 503) expect(["github_unavailable", "broker_unavailable"]).toContain(r.body.reason);
    }
    await new Promise((r) => setTimeout(r, 300)); // let the emulator finish the rotation

    const row = await storedRow("sf-evict");
    const access = await decrypted("sf-evict", "access_token");
    const refresh = await decrypted("sf-evict", "refresh_token");
    const a = (await emulator.tokenState(access!)).access!;
    const r = (await emulator.tokenState(refresh!)).refresh!;
    // Same pair: access and refresh token were issued together.
    expect(a.pairId).toBe(r.pairId);
    if (row!.version === before.version) {
      expect(row!.refresh_token).toBe(before.refresh_token);
    }
    const later = await requestToken("sf-evict", { repository: "acme/widgets" });
    if (later.status === 200) {
      expect((await emulator.tokenState(later.body.token)).access!.alive).toBe(true);
    } else {
      // GitHub rotated but the answer never arrived: the only allowed loss, reported honestly.
      expect(later.body.reason).toBe("reconnect_required");
      expect(r.alive).toBe(false);
    }
  });

  it("one clock: expiries are the broker's receipt time plus expires_in, whatever GitHub's clock says", async () => {
    await emulator.addUser(GH);
    // GitHub's clock is two hours ahead of the broker's (finding 8 of the lifecycle review).
    await emulator.clock(7200);
    await connectUser("sf-skew", GH);
    const conn = await callApi("GET", "/users/sf-skew/connection?appType=standard");
    const expires = Date.parse(conn.body.accessTokenExpiresAt);
    expect(Math.abs(expires - (Date.now() + 28_800_000))).toBeLessThan(5_000);
    const granted = await requestToken("sf-skew", { repository: "acme/widgets" });
    expect(granted.body.expiresInSeconds).toBeGreaterThan(28_800 - 10);
    expect(granted.body.expiresInSeconds).toBeLessThanOrEqual(28_800);
    // On the old, two-clock code the stored expiry was ten hours away: tokens were handed
    // out for two hours after GitHub had killed them.
  });

  it("a token opened while a rotation lands is not handed out with the rotated row: the new one is", async () => {
    await connectUser("sf-open", GH);
    await runInDurableObject(actor("sf-open"), async (_instance, state) => {
      // The actor's own parts on its storage, with the opening of the access token held open.
      let entered!: () => void;
      let release!: () => void;
      const inside = new Promise<void>((r) => (entered = r));
      const gate = new Promise<void>((r) => (release = r));
      class HeldVault extends TokenVault {
        override async openAccess(keyring: Keyring, userId: string, row: ConnectionRow) {
          const opened = await super.openAccess(keyring, userId, row);
          entered();
          await gate;
          return opened;
        }
      }
      const store = new ConnectionStore(state.storage.sql);
      const vault = new HeldVault();
      const refresher = new Refresher(store, vault);
      const c = await callContext(env, "sf-open", "standard");
      if (!c.ok) throw new Error(c.message);
      const pending = refresher.live(c.value, 60_000);
      await inside;
      // A rotation is stored while the old token is being opened.
      const row = store.get("standard")!;
      const tokens = { accessToken: "ghu_rotated", accessTokenExpiresAt: Date.now() + 3_600_000, refreshToken: "ghr_rotated", refreshTokenExpiresAt: Date.now() + 86_400_000 };
      expect(store.storeRotated("standard", row, await vault.sealPair(c.value.keyring, "sf-open", "standard", tokens))).not.toBeNull();
      release();
      const live = await pending;
      expect(live.ok && live.accessToken).toBe("ghu_rotated");
    });
  });

  it("the DO's calls really reach the emulator (outbound route proof)", async () => {
    await connectUser("sf-route", GH);
    const before = (await emulator.stats()).counts.repo;
    await runInDurableObject(actor("sf-route"), async (instance) => {
      await instance.token({ userId: "sf-route", appType: "standard", repository: "acme/widgets", permission: "push", minValiditySeconds: 300 });
    });
    expect((await emulator.stats()).counts.repo).toBe(before + 1);
  });
});
