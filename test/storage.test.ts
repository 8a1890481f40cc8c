/** Encryption at rest, key rotation, schema migrations, and what never leaks. */
import { runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { loadKeyring, open, seal } from "../src/crypto";
import { forgetConnectionRows } from "../src/actor/connection-store";
import { USER_ACTOR_MIGRATIONS } from "../src/schema";
import { KEY_K1 } from "./support/env";
import { actor, callApi, connectUser, dumpStorage, emulator, requestToken, setStoredExpiry, storedRow } from "./support/helpers";

const GH = { id: 99, login: "hubot", name: "Hubot", repos: { "acme/app": "push" as const } };

beforeEach(async () => {
  await emulator.reset();
});
afterEach(() => {
  vi.restoreAllMocks();
});

describe("encryption at rest", () => {
  it("stores no plaintext token anywhere", async () => {
    await connectUser("s-1", GH);
    await setStoredExpiry("s-1", "standard", Date.now() - 1);
    const res = await requestToken("s-1", { repository: "acme/app" });
    const dump = await dumpStorage("s-1");
    expect(dump).not.toContain(res.body.token);
    expect(dump).not.toMatch(/gh[ur]_/);
    const row = await storedRow("s-1");
    expect(row!.access_token).toMatch(/^v1\.k2\.[\w-]{16}\.[\w-]+$/);
    expect(row!.refresh_token).toMatch(/^v1\.k2\./);
  });

  it("binds each ciphertext to user, appType and field: moved elsewhere, it does not decrypt", async () => {
    await connectUser("s-2", GH);
    const row = await storedRow("s-2");
    const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
    const ctx = { userId: "s-2", appType: "standard", field: "access_token" };
    expect(await open(keyring, row!.access_token, ctx)).toMatch(/^ghu_/);
    expect(await open(keyring, row!.access_token, { ...ctx, userId: "s-other" })).toBeNull();
    expect(await open(keyring, row!.access_token, { ...ctx, appType: "lite" })).toBeNull();
    expect(await open(keyring, row!.access_token, { ...ctx, field: "refresh_token" })).toBeNull();
    // Two seals of the same value differ (fresh IV).
    expect(await seal(keyring, "x", ctx)).not.toBe(await seal(keyring, "x", ctx));
  });

  it("a ciphertext copied from another user makes the connection reconnect_required, not a 500", async () => {
    await connectUser("s-3a", GH);
    await connectUser("s-3b", { ...GH, id: 100, login: "other" });
    const stolen = await storedRow("s-3a");
    await runInDurableObject(actor("s-3b"), (_i, state) => {
      state.storage.sql.exec("UPDATE connections SET access_token = ?", stolen!.access_token);
      forgetConnectionRows(state.storage.sql);
    });
    const res = await requestToken("s-3b", { repository: "acme/app" });
    expect(res.status).toBe(409);
    expect(res.body.reason).toBe("reconnect_required");
    const conn = await callApi("GET", "/users/s-3b/connection?appType=standard");
    expect(conn.body).toMatchObject({ status: "reconnect_required", reason: "undecryptable" });
    expect((await storedRow("s-3b"))!.access_token).toBeNull();
  });

  it("key rotation: a value sealed under an old key still decrypts and is re-sealed under the primary", async () => {
    await connectUser("s-4", GH);
    const oldOnly = await loadKeyring(`k1:${KEY_K1}`);
    const both = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
    const row = await storedRow("s-4");
    const ctxA = { userId: "s-4", appType: "standard", field: "access_token" };
    const ctxR = { ...ctxA, field: "refresh_token" };
    const access = (await open(both, row!.access_token, ctxA))!;
    const refresh = (await open(both, row!.refresh_token, ctxR))!;
    const [a1, r1] = [await seal(oldOnly, access, ctxA), await seal(oldOnly, refresh, ctxR)];
    await runInDurableObject(actor("s-4"), (_i, state) => {
      state.storage.sql.exec("UPDATE connections SET access_token = ?, refresh_token = ?", a1, r1);
      forgetConnectionRows(state.storage.sql);
    });
    expect((await storedRow("s-4"))!.access_token).toMatch(/^v1\.k1\./);
    const res = await requestToken("s-4", { repository: "acme/app" });
    expect(res.body.token).toBe(access);
    const after = await storedRow("s-4");
    expect(after!.access_token).toMatch(/^v1\.k2\./);
    expect(after!.refresh_token).toMatch(/^v1\.k2\./);
    expect(await open(both, after!.refresh_token, ctxR)).toBe(refresh);
    expect(after!.version).toBe(row!.version);
  });

  it("tokens never appear in logs or error bodies", async () => {
    const lines: string[] = [];
    for (const method of ["log", "info", "warn", "error", "debug"] as const) {
      vi.spyOn(console, method).mockImplementation((...args: unknown[]) => {
        lines.push(args.map(String).join(" "));
      });
    }
    await connectUser("s-5", GH);
    const ok = await requestToken("s-5", { repository: "acme/app" });
    const row = await storedRow("s-5");
    const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
    const refresh = (await open(keyring, row!.refresh_token, { userId: "s-5", appType: "standard", field: "refresh_token" }))!;
    const bodies: string[] = [];
    await setStoredExpiry("s-5", "standard", Date.now() - 1);
    for (const kind of ["status_5xx", "rate_limit", "bad_client"] as const) {
      await emulator.fault({ endpoint: "refresh", kind });
      bodies.push(JSON.stringify((await requestToken("s-5", { repository: "acme/app" })).body));
    }
    await emulator.fault({ endpoint: "refresh", kind: "drop_after_rotate" });
    bodies.push(JSON.stringify((await requestToken("s-5", { repository: "acme/app" })).body));
    bodies.push(JSON.stringify((await requestToken("s-5", { repository: "acme/app" })).body));
    expect(lines.length).toBeGreaterThan(3);
    const all = [...lines, ...bodies].join("\n");
    for (const secret of [ok.body.token, refresh, "test-secret-standard", env.TOKEN_ENCRYPTION_KEYS]) {
      expect(all).not.toContain(secret);
    }
    expect(all).not.toMatch(/gh[ur]_[A-Za-z0-9_-]{10}/);
  });
});

describe("schema migrations", () => {
  it("are applied in order by the object itself and recorded, on its first write", async () => {
    await callApi("POST", "/users/s-mig/connect", { appType: "standard", returnTo: "https://app.test/back" });
    const applied = await runInDurableObject(actor("s-mig"), (_i, state) =>
      state.storage.sql.exec<{ name: string }>("SELECT name FROM _migrations ORDER BY name").toArray().map((r) => r.name),
    );
    expect(applied).toEqual(USER_ACTOR_MIGRATIONS.map((m) => m.name));
    expect([...applied].sort()).toEqual(applied);
  });

  it("updated_at changes on every write", async () => {
    await connectUser("s-upd", GH);
    const before = await storedRow("s-upd");
    await new Promise((r) => setTimeout(r, 5));
    await setStoredExpiry("s-upd", "standard", Date.now() - 1);
    await requestToken("s-upd", { repository: "acme/app" });
    const after = await storedRow("s-upd");
    expect(after!.updated_at).toBeGreaterThan(before!.updated_at);
  });
});
