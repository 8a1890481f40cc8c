/** Revocation webhooks, disconnect, account deletion, and rejected-token reports. */
import { sign } from "@octokit/webhooks-methods";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { identityIndex } from "../src/identity-index";
import { APPS } from "./support/env";
import { actor, callApi, connectUser, dumpStorage, emulator, pendingRevocations, publicFetch, requestToken, retryRevocationsNow, setStoredExpiry, storedRow } from "./support/helpers";

const MONA = { id: 7001, login: "mona", name: "Mona", repos: { "acme/app": "push" as const } };

beforeEach(async () => {
  await emulator.reset();
});

function revokedPayload(githubUserId: number, login = "mona") {
  return JSON.stringify({ action: "revoked", sender: { login, id: githubUserId, type: "User" } });
}

async function deliver(appType: string, body: string, opts: { secret?: string | null; event?: string; delivery?: string } = {}) {
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "x-github-event": opts.event ?? "github_app_authorization",
    "x-github-delivery": opts.delivery ?? crypto.randomUUID(),
  };
  const secret = opts.secret === undefined ? APPS.standard.webhookSecret : opts.secret;
  if (secret !== null) headers["x-hub-signature-256"] = await sign(secret, body);
  return publicFetch(`/webhooks/github/${appType}`, { method: "POST", headers, body });
}

/** True when no sealed token (`v1.<kid>.`) is left anywhere in the user's storage. */
async function noCiphertext(userId: string): Promise<boolean> {
  return !/v1\.k[12]\./.test(await dumpStorage(userId));
}

describe("revocation webhook", () => {
  it("revokes every platform user linked to the GitHub user, for that App only, and wipes their tokens", async () => {
    await connectUser("r-1a", MONA);
    await connectUser("r-1b", MONA);
    await connectUser("r-1a", MONA, "lite");
    await emulator.revoke("standard", MONA.id);
    const res = await deliver("standard", revokedPayload(MONA.id));
    expect(res.status).toBe(202);
    for (const user of ["r-1a", "r-1b"]) {
      const conn = await callApi("GET", `/users/${user}/connection?appType=standard`);
      expect(conn.body).toMatchObject({ status: "revoked", reason: "user_revoked" });
      expect(conn.body.revokedAt).toMatch(/Z$/);
      const row = await storedRow(user);
      expect(row!.access_token).toBeNull();
      expect(row!.refresh_token).toBeNull();
      const token = await requestToken(user, { repository: "acme/app" });
      expect(token.status).toBe(409);
      expect(token.body.reason).toBe("revoked");
    }
    expect((await callApi("GET", "/users/r-1a/connection?appType=lite")).body.status).toBe("connected");
    expect((await requestToken("r-1a", { appType: "lite", repository: "acme/app" })).status).toBe(200);
  });

  it("forged, missing, wrong-App and stale-secret signatures are 401 and change nothing", async () => {
    await connectUser("r-2", MONA);
    const before = await storedRow("r-2");
    const body = revokedPayload(MONA.id);
    const cases: [string, Promise<Response>][] = [
      ["missing", deliver("standard", body, { secret: null })],
      ["forged", deliver("standard", body, { secret: "not-the-secret" })],
      ["wrong App", deliver("standard", body, { secret: APPS.lite.webhookSecret })],
      ["stale (rotated out) secret", deliver("standard", body, { secret: "whsec-standard-previous" })],
    ];
    for (const [name, pending] of cases) {
      const res = await pending;
      expect(res.status, name).toBe(401);
      expect(((await res.json()) as { reason: string }).reason, name).toBe("unauthorized");
    }
    // A signature over another body does not verify either.
    const other = await sign(APPS.standard.webhookSecret, revokedPayload(1));
    const mismatched = await publicFetch("/webhooks/github/standard", {
      method: "POST",
      headers: { "x-github-event": "github_app_authorization", "x-hub-signature-256": other },
      body,
    });
    expect(mismatched.status).toBe(401);
    expect(await storedRow("r-2")).toEqual(before);
  });

  it("accepts the new secret during a rotation (comma-separated list)", async () => {
    await connectUser("r-3", MONA);
    await emulator.revoke("standard", MONA.id);
    expect((await deliver("standard", revokedPayload(MONA.id), { secret: "whsec-standard-next" })).status).toBe(202);
    expect((await callApi("GET", "/users/r-3/connection?appType=standard")).body.status).toBe("revoked");
  });

  it("a redelivery answers the same and does nothing twice", async () => {
    await connectUser("r-4", MONA);
    await emulator.revoke("standard", MONA.id);
    const delivery = crypto.randomUUID();
    const first = await deliver("standard", revokedPayload(MONA.id), { delivery });
    expect(first.status).toBe(202);
    const firstBody = await first.text();
    // The user reconnects; the redelivered revocation must not revoke the new connection.
    await connectUser("r-4", MONA);
    const again = await deliver("standard", revokedPayload(MONA.id), { delivery });
    expect(again.status).toBe(first.status);
    expect(await again.text()).toBe(firstBody);
    expect((await callApi("GET", "/users/r-4/connection?appType=standard")).body.status).toBe("connected");
  });

  it("other events answer 200 and change nothing; a stale index link changes nothing", async () => {
    await connectUser("r-5", MONA);
    const before = await storedRow("r-5");
    const ping = await deliver("standard", JSON.stringify({ zen: "Keep it logically awesome.", hook_id: 1 }), { event: "ping" });
    expect(ping.status).toBe(200);
    const other = await deliver("standard", JSON.stringify({ action: "created", sender: { id: MONA.id } }), { event: "installation" });
    expect(other.status).toBe(200);
    expect(await storedRow("r-5")).toEqual(before);

    // r-5 moves to another GitHub account; a stale link to MONA is left in the index.
    await connectUser("r-5", { id: 7002, login: "other", name: null, repos: {} });
    await identityIndex(env, String(MONA.id)).link({ appType: "standard", userId: "r-5" });
    expect((await deliver("standard", revokedPayload(MONA.id))).status).toBe(202);
    expect((await callApi("GET", "/users/r-5/connection?appType=standard")).body).toMatchObject({ status: "connected", githubLogin: "other" });
  });

  it("a 2 MiB body is refused without being buffered whole", async () => {
    let pulled = 0;
    const chunk = new Uint8Array(64 * 1024).fill(32);
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (pulled >= 2 * 1024 * 1024) return controller.close();
        pulled += chunk.byteLength;
        controller.enqueue(chunk);
      },
    });
    const res = await publicFetch("/webhooks/github/standard", {
      method: "POST",
      headers: { "x-github-event": "github_app_authorization", "x-hub-signature-256": `sha256=${"0".repeat(64)}` },
      body: stream,
    });
    expect(res.status).toBe(400);
    expect(pulled).toBeLessThan(1024 * 1024);
    const declared = await publicFetch("/webhooks/github/standard", {
      method: "POST",
      headers: { "content-length": String(2 * 1024 * 1024), "x-hub-signature-256": `sha256=${"0".repeat(64)}` },
      body: "x".repeat(2 * 1024 * 1024),
    });
    expect(declared.status).toBe(400);
  });

  it("an unknown appType is 404, malformed signatures 401, never a 500", async () => {
    expect((await deliver("enterprise", revokedPayload(1))).status).toBe(404);
    for (const sig of ["sha256=zz", "sha1=abc", "sha256=", "x".repeat(500)]) {
      const res = await publicFetch("/webhooks/github/standard", { method: "POST", headers: { "x-hub-signature-256": sig }, body: "{}" });
      expect(res.status, sig).toBe(401);
    }
    // An empty body is never a verified delivery: 401, as for any signature that does not verify.
    const empty = await publicFetch("/webhooks/github/standard", { method: "POST", headers: { "x-hub-signature-256": `sha256=${"0".repeat(64)}` } });
    expect(empty.status).toBe(401);
  });

  it("a late delivery for a user who re-authorized since changes nothing (GitHub still honours the token)", async () => {
    await connectUser("r-late", MONA);
    await emulator.revoke("standard", MONA.id);
    // The user re-authorizes before GitHub's delivery arrives.
    await connectUser("r-late", MONA);
    const res = await deliver("standard", revokedPayload(MONA.id));
    expect(res.status).toBe(202);
    expect(await res.json()).toMatchObject({ handled: "revoked", users: 0, stillAuthorized: 1 });
    expect(await callApi("GET", "/users/r-late/connection?appType=standard")).toMatchObject({ body: { status: "connected" } });
    expect((await requestToken("r-late", { repository: "acme/app" })).status).toBe(200);
  });

  it("a replayed revocation (same signed body, another delivery id) cannot revoke a reconnected user", async () => {
    await connectUser("r-replay", MONA);
    await emulator.revoke("standard", MONA.id);
    const body = revokedPayload(MONA.id);
    expect((await deliver("standard", body)).status).toBe(202);
    expect((await callApi("GET", "/users/r-replay/connection?appType=standard")).body.status).toBe("revoked");
    await connectUser("r-replay", MONA);
    // An attacker who captured the delivery sends it again; the signature still verifies.
    expect((await deliver("standard", body, { delivery: crypto.randomUUID() })).status).toBe(202);
    expect((await callApi("GET", "/users/r-replay/connection?appType=standard")).body.status).toBe("connected");
  });

  it("GitHub unreachable while confirming: the revocation is honoured", async () => {
    const LISA = { id: 7101, login: "lisa", name: null, repos: {} };
    await connectUser("r-down", LISA);
    await emulator.fault({ endpoint: "user", kind: "status_5xx", count: -1 });
    expect((await deliver("standard", revokedPayload(LISA.id, "lisa"))).status).toBe(202);
    expect((await callApi("GET", "/users/r-down/connection?appType=standard")).body.status).toBe("revoked");
  });

  it("a signed payload that is not a JSON object is 400, never a 5xx", async () => {
    for (const body of ["null", "[]", '"revoked"', "5", "true"]) {
      const res = await deliver("standard", body);
      expect(res.status, body).toBe(400);
      expect(((await res.json()) as { reason: string }).reason).toBe("invalid_request");
    }
    for (const body of ['{"action":"revoked","sender":null}', '{"action":"revoked"}', '{"action":"revoked","sender":{"id":"7001"}}']) {
      expect((await deliver("standard", body)).status, body).toBe(400);
    }
  });

  it("after a revocation no ciphertext of the user remains in storage", async () => {
    await connectUser("r-6", MONA);
    expect(await noCiphertext("r-6")).toBe(false);
    await emulator.revoke("standard", MONA.id);
    expect((await deliver("standard", revokedPayload(MONA.id))).status).toBe(202);
    expect(await noCiphertext("r-6")).toBe(true);
  });
});

describe("disconnect", () => {
  it("revokes the grant at GitHub, then removes the connection and its index link", async () => {
    await connectUser("d-1", MONA);
    const token = (await requestToken("d-1", { repository: "acme/app" })).body.token;
    const res = await callApi("DELETE", "/users/d-1/connection?appType=standard");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "not_connected", githubGrant: "revoked" });
    expect((await emulator.tokenState(token)).access!.alive).toBe(false);
    expect(await storedRow("d-1")).toBeNull();
    expect(await noCiphertext("d-1")).toBe(true);
    expect(await identityIndex(env, String(MONA.id)).users({ appType: "standard" })).not.toContain("d-1");
    expect((await requestToken("d-1", { repository: "acme/app" })).body.reason).toBe("not_connected");
    expect((await callApi("GET", "/users/d-1/connection?appType=standard")).body.status).toBe("not_connected");
  });

  it("refreshes an expired token first, so the grant can still be revoked", async () => {
    await connectUser("d-2", MONA);
    await setStoredExpiry("d-2", "standard", Date.now() - 1);
    const before = await emulator.stats();
    const res = await callApi("DELETE", "/users/d-2/connection?appType=standard");
    expect(res.body.githubGrant).toBe("revoked");
    const after = await emulator.stats();
    expect(after.counts.refresh - before.counts.refresh).toBe(1);
    expect(after.counts.revoke_grant - before.counts.revoke_grant).toBe(1);
  });

  it("with GitHub down, the connection is gone at once, the grant is pending, and the alarm revokes it later", async () => {
    await connectUser("d-3", MONA);
    const token = (await requestToken("d-3", { repository: "acme/app" })).body.token;
    await emulator.fault({ endpoint: "revoke_grant", kind: "status_5xx" });
    const res = await callApi("DELETE", "/users/d-3/connection?appType=standard");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ status: "not_connected", githubGrant: "pending" });
    expect(await storedRow("d-3")).toBeNull();
    expect((await requestToken("d-3", { repository: "acme/app" })).body.reason).toBe("not_connected");
    // The grant is not forgotten: still live at GitHub, and the broker keeps what revokes it.
    expect((await emulator.tokenState(token)).access!.alive).toBe(true);
    expect(await pendingRevocations("d-3")).toBe(1);
    await retryRevocationsNow("d-3");
    expect((await emulator.tokenState(token)).access!.alive).toBe(false);
    expect(await pendingRevocations("d-3")).toBe(0);
    expect(await noCiphertext("d-3")).toBe(true);
  });

  it("a retried disconnect after a pending one reports pending until GitHub confirms, never already_gone for a live grant", async () => {
    await connectUser("d-5", MONA);
    await emulator.fault({ endpoint: "revoke_grant", kind: "status_5xx", count: 2 });
    expect((await callApi("DELETE", "/users/d-5/connection?appType=standard")).body.githubGrant).toBe("pending");
    expect((await callApi("DELETE", "/users/d-5/connection?appType=standard")).body.githubGrant).toBe("pending");
    expect((await callApi("DELETE", "/users/d-5/connection?appType=standard")).body.githubGrant).toBe("revoked");
    expect((await emulator.liveRefreshTokens("standard", MONA.id)).refreshTokens).toEqual([]);
  });

  it("a grant already gone at GitHub is already_gone; disconnecting twice is harmless", async () => {
    await connectUser("d-4", MONA);
    await emulator.revoke("standard", MONA.id);
    const res = await callApi("DELETE", "/users/d-4/connection?appType=standard");
    expect(res.body.githubGrant).toBe("already_gone");
    const again = await callApi("DELETE", "/users/d-4/connection?appType=standard");
    expect(again.body).toMatchObject({ status: "not_connected", githubGrant: "already_gone" });
  });
});

describe("account deletion", () => {
  it("revokes every grant and deletes every byte of the user's data", async () => {
    // An account of its own: a grant another platform user is connected with is not revoked (grant-revoker.ts).
    const MONA = { id: 7101, login: "mona-del1", name: "Mona", repos: { "acme/app": "push" as const } };
    await connectUser("del-1", MONA);
    await connectUser("del-1", MONA, "lite");
    const res = await callApi("DELETE", "/users/del-1");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ ok: true, deleted: true, githubGrants: { standard: "revoked", lite: "revoked" } });
    const dump = await dumpStorage("del-1");
    expect(dump).not.toMatch(/v1\.k[12]\.|mona|7101|del-1/);
    expect(await identityIndex(env, String(MONA.id)).users({ appType: "standard" })).not.toContain("del-1");
    expect((await requestToken("del-1", { repository: "acme/app" })).body.reason).toBe("not_connected");
    // The user can come back later.
    await connectUser("del-1", MONA);
    expect((await requestToken("del-1", { repository: "acme/app" })).status).toBe(200);
  });

  it("succeeds locally while GitHub is down: nothing names the user, the grants stay pending until the alarm revokes them", async () => {
    const MONA = { id: 7102, login: "mona-del2", name: "Mona", repos: { "acme/app": "push" as const } };
    await connectUser("del-2", MONA);
    await connectUser("del-2", MONA, "lite");
    await emulator.fault({ endpoint: "revoke_grant", kind: "status_5xx", count: -1 });
    const res = await callApi("DELETE", "/users/del-2");
    expect(res.status).toBe(200);
    expect(res.body.githubGrants).toEqual({ standard: "pending", lite: "pending" });
    expect(await dumpStorage("del-2")).not.toMatch(/mona|7102|del-2/);
    expect((await callApi("GET", "/users/del-2/connection?appType=lite")).body.status).toBe("not_connected");
    expect((await emulator.liveRefreshTokens("standard", MONA.id)).refreshTokens.length).toBe(1);
    await emulator.clearFaults();
    await retryRevocationsNow("del-2");
    expect((await emulator.liveRefreshTokens("standard", MONA.id)).refreshTokens).toEqual([]);
    expect((await emulator.liveRefreshTokens("lite", MONA.id)).refreshTokens).toEqual([]);
    expect(await dumpStorage("del-2")).not.toMatch(/v1\.k[12]\./);
  });
});

describe("rejected-token reports", () => {
  it("a live token reported by mistake is checked with GitHub and returned unchanged", async () => {
    await connectUser("rj-1", MONA);
    const token = (await requestToken("rj-1", { repository: "acme/app" })).body.token;
    const before = await emulator.stats();
    const res = await callApi("POST", "/users/rj-1/token/rejected", { appType: "standard", token });
    expect(res.status).toBe(200);
    expect(res.body.token).toBe(token);
    const after = await emulator.stats();
    expect(after.counts.user - before.counts.user).toBe(1);
    expect(after.counts.refresh).toBe(before.counts.refresh);
  });

  it("a token GitHub really refuses is replaced by a fresh one", async () => {
    await connectUser("rj-2", MONA);
    const token = (await requestToken("rj-2", { repository: "acme/app" })).body.token;
    await emulator.clock(9 * 3600); // expired at GitHub, not yet by the broker's clock
    const res = await callApi("POST", "/users/rj-2/token/rejected", { appType: "standard", token });
    expect(res.status).toBe(200);
    expect(res.body.token).not.toBe(token);
    expect((await emulator.tokenState(res.body.token)).access!.alive).toBe(true);
  });

  it("a report about an older token changes nothing and asks GitHub nothing", async () => {
    await connectUser("rj-3", MONA);
    const old = (await requestToken("rj-3", { repository: "acme/app" })).body.token;
    await setStoredExpiry("rj-3", "standard", Date.now() - 1);
    const current = (await requestToken("rj-3", { repository: "acme/app" })).body.token;
    const row = await storedRow("rj-3");
    const before = await emulator.stats();
    const res = await callApi("POST", "/users/rj-3/token/rejected", { appType: "standard", token: old });
    expect(res.body.token).toBe(current);
    expect((await emulator.stats()).counts).toEqual(before.counts);
    expect(await storedRow("rj-3")).toEqual(row);
  });

  it("a grant revoked at GitHub (webhook missed) ends in reconnect_required", async () => {
    await connectUser("rj-4", MONA);
    const token = (await requestToken("rj-4", { repository: "acme/app" })).body.token;
    await emulator.revoke("standard", MONA.id);
    const res = await callApi("POST", "/users/rj-4/token/rejected", { appType: "standard", token });
    expect(res.status).toBe(409);
    expect(res.body.reason).toBe("reconnect_required");
    expect(await noCiphertext("rj-4")).toBe(true);
  });

  it("bad reports are 400", async () => {
    for (const body of [{ appType: "standard" }, { appType: "standard", token: "" }, { appType: "nope", token: "x" }, { appType: "standard", token: 5 }]) {
      expect((await callApi("POST", "/users/rj-5/token/rejected", body)).status).toBe(400);
    }
  });
});
