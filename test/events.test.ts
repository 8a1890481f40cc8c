/**
 * The platform hears about it: signed connection events (at least once, in order, the same id
 * on every retry, through a failing receiver and an eviction), the per-user audit trail, and
 * metrics that never break anything.
 */
import { sign } from "@octokit/webhooks-methods";
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it, vi } from "vitest";
import { verifyBrokerEvent } from "../src/client";
import type { ConnectionEvent } from "../src/contract";
import { recordMetric } from "../src/metrics";
import { APPS, EVENTS_SIGNING_KEY, EVENTS_URL } from "./support/env";
import { pktLine } from "../src/proxy/receive-pack";
import { actor, authorizeAs, callApi, callbackTicket, confirmConnect, connectUser, emulator, publicFetch, requestToken, setStoredExpiry, userRows } from "./support/helpers";

const RECEIVER = new URL(EVENTS_URL).origin;
const receiver = {
  reset: () => fetch(`${RECEIVER}/_control/reset`, { method: "POST" }),
  fault: (kind: "status_5xx" | "hang", count = -1) => fetch(`${RECEIVER}/_control/fault`, { method: "POST", body: JSON.stringify({ kind, count }) }),
  clearFault: () => fetch(`${RECEIVER}/_control/fault`, { method: "DELETE" }),
  async deliveries(): Promise<{ body: string; signature: string | null }[]> {
    return ((await (await fetch(`${RECEIVER}/_control/deliveries`)).json()) as { deliveries: { body: string; signature: string | null }[] }).deliveries;
  },
};

beforeEach(async () => {
  await emulator.reset();
  await receiver.reset();
});

/** Events received for one user, parsed, after checking every signature. */
async function eventsOf(userId: string): Promise<ConnectionEvent[]> {
  const out: ConnectionEvent[] = [];
  for (const d of await receiver.deliveries()) {
    expect(await verifyBrokerEvent(d.body, d.signature, EVENTS_SIGNING_KEY)).toBe(true);
    const e = JSON.parse(d.body) as ConnectionEvent;
    if (e.userId === userId) out.push(e);
  }
  return out;
}

/** Lets the actor's alarm deliver what is due now (retries included). */
async function deliverNow(userId: string): Promise<void> {
  await runInDurableObject(actor(userId), (_i, state) => {
    state.storage.sql.exec("UPDATE event_outbox SET next_attempt_at = 0");
  });
  await runDurableObjectAlarm(actor(userId));
}

async function waitForEvents(userId: string, count: number): Promise<ConnectionEvent[]> {
  for (let i = 0; i < 50; i++) {
    const events = await eventsOf(userId);
    if (events.length >= count) return events;
    await deliverNow(userId).catch(() => undefined);
    await new Promise((r) => setTimeout(r, 20));
  }
  return eventsOf(userId);
}

function webhookRevoked(githubUserId: number) {
  const body = JSON.stringify({ action: "revoked", sender: { id: githubUserId, login: "x" } });
  return sign(APPS.standard.webhookSecret, body).then((signature) =>
    publicFetch("/webhooks/github/standard", {
      method: "POST",
      headers: { "x-github-event": "github_app_authorization", "x-github-delivery": crypto.randomUUID(), "x-hub-signature-256": signature },
      body,
    }),
  );
}

/** connect, refresh rejected, reconnect, revoke webhook, reconnect, disconnect, connect, delete. */
async function scriptedLifecycle(userId: string, gh: { id: number; login: string; name: null; repos: Record<string, "push"> }) {
  await connectUser(userId, gh);
  await emulator.revoke("standard", gh.id);
  await setStoredExpiry(userId, "standard", Date.now() - 1);
  expect((await requestToken(userId, { repository: "acme/app" })).body.reason).toBe("reconnect_required");
  await connectUser(userId, gh);
  await emulator.revoke("standard", gh.id);
  expect((await webhookRevoked(gh.id)).status).toBe(202);
  await connectUser(userId, gh);
  expect((await callApi("DELETE", `/users/${userId}/connection?appType=standard`)).status).toBe(200);
  await connectUser(userId, gh);
  expect((await callApi("DELETE", `/users/${userId}`)).status).toBe(200);
}

const EXPECTED = ["connected", "reconnect_required", "connected", "revoked", "connected", "disconnected", "connected", "deleted"];

describe("connection events", () => {
  it("a scripted lifecycle arrives signed, in order, exactly the expected set, with no token in any event", async () => {
    const gh = { id: 8801, login: "evented", name: null, repos: { "acme/app": "push" as const } };
    await scriptedLifecycle("ev-1", gh);
    const events = await waitForEvents("ev-1", EXPECTED.length);
    expect(events.map((e) => e.type)).toEqual(EXPECTED);
    expect(new Set(events.map((e) => e.id)).size).toBe(EXPECTED.length);
    for (const e of events) {
      expect(e).toMatchObject({ userId: "ev-1", appType: "standard", githubUserId: "8801" });
      expect(e.at).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    }
    expect(events[1]).toMatchObject({ reason: "refresh_token_rejected" });
    expect(events[3]).toMatchObject({ reason: "user_revoked" });
    const raw = (await receiver.deliveries()).map((d) => d.body).join("\n");
    expect(raw).not.toMatch(/gh[usr]_|v1\.k[12]\./);
  });

  it("a receiver failing (5xx, then hanging) while the actor is evicted: every event still arrives, none twice under different ids", async () => {
    const gh = { id: 8802, login: "stubborn", name: null, repos: { "acme/app": "push" as const } };
    await receiver.fault("status_5xx");
    await connectUser("ev-2", gh);
    await deliverNow("ev-2").catch(() => undefined);
    await receiver.fault("hang");
    await emulator.revoke("standard", gh.id);
    expect((await webhookRevoked(gh.id)).status).toBe(202);
    await deliverNow("ev-2").catch(() => undefined);
    await evictDurableObject(actor("ev-2"));
    await connectUser("ev-2", gh);
    await receiver.fault("status_5xx", 2);
    await deliverNow("ev-2").catch(() => undefined);
    expect((await callApi("DELETE", "/users/ev-2")).status).toBe(200);
    await receiver.clearFault();
    const events = await waitForEvents("ev-2", 4);
    const byId = new Map<string, string>();
    for (const e of events) {
      const body = JSON.stringify(e);
      if (byId.has(e.id)) expect(byId.get(e.id)).toBe(body); // a retry: same id, same body
      byId.set(e.id, body);
    }
    const distinct = [...byId.values()].map((b) => (JSON.parse(b) as ConnectionEvent).type);
    expect(distinct).toEqual(["connected", "revoked", "connected", "deleted"]);
  });

  it("a confirm for another account that a deletion abandons while it waits on a refresh: the first connection still ends with its event", async () => {
    const A = { id: 8810, login: "first", name: null, repos: { "acme/app": "push" as const } };
    const B = { id: 8811, login: "second", name: null, repos: {} };
    await connectUser("ev-3", A);
    await emulator.addUser(B);
    const ticketB = await callbackTicket(await authorizeAs("ev-3", B.id));
    await setStoredExpiry("ev-3", "standard", Date.now() - 1);
    const hold = await emulator.hold({ match: ["refresh"] });
    const refreshing = requestToken("ev-3", { repository: "acme/app" });
    expect(await emulator.waitHeld(hold, refreshing)).not.toBeNull();
    // B's confirm exchanges, reads /user, links, then waits for A's refresh before ending A.
    const confirming = confirmConnect("ev-3", ticketB);
    await new Promise((r) => setTimeout(r, 300));
    const deleting = callApi("DELETE", "/users/ev-3");
    await new Promise((r) => setTimeout(r, 200));
    await emulator.release(hold);
    const [confirmed, deleted] = await Promise.all([confirming, deleting, refreshing]);
    expect(confirmed.body.reason).toBe("invalid_ticket");
    expect(deleted.status).toBe(200);
    const events = await waitForEvents("ev-3", 2);
    expect(events.map((e) => [e.type, e.githubUserId])).toEqual([
      ["connected", "8810"],
      ["deleted", "8810"],
    ]);
  });

  it("a revocation webhook while the stored access token has expired: one revoked event, not reconnect_required first", async () => {
    const gh = { id: 8812, login: "idle", name: null, repos: { "acme/app": "push" as const } };
    await connectUser("ev-4", gh);
    await emulator.revoke("standard", gh.id);
    await setStoredExpiry("ev-4", "standard", Date.now() - 1);
    expect((await webhookRevoked(gh.id)).status).toBe(202);
    expect((await callApi("GET", "/users/ev-4/connection?appType=standard")).body).toMatchObject({ status: "revoked", reason: "user_revoked" });
    const events = await waitForEvents("ev-4", 3);
    expect(events.map((e) => e.type)).toEqual(["connected", "revoked"]);
  });

  it("verifyBrokerEvent refuses a wrong key, an altered body and a malformed header", async () => {
    const body = JSON.stringify({ id: "x", type: "connected" });
    const { signEvent } = await import("../src/actor/event-outbox");
    const signature = await signEvent(body, EVENTS_SIGNING_KEY);
    expect(await verifyBrokerEvent(body, signature, EVENTS_SIGNING_KEY)).toBe(true);
    expect(await verifyBrokerEvent(body, signature, "another-key")).toBe(false);
    expect(await verifyBrokerEvent(body.replace("x", "y"), signature, EVENTS_SIGNING_KEY)).toBe(false);
    for (const bad of [null, "", "sha256=", "sha1=abc", signature.toUpperCase(), `${signature}0`]) {
      expect(await verifyBrokerEvent(body, bad, EVENTS_SIGNING_KEY)).toBe(false);
    }
  });
});

describe("audit trail", () => {
  it("lists, newest first, what was done with the identity; pages with before; nothing token-shaped; gone with the account", async () => {
    const gh = { id: 8803, login: "audited", name: null, repos: { "acme/app": "push" as const } };
    await connectUser("au-1", gh);
    for (let i = 0; i < 5; i++) expect((await requestToken("au-1", { repository: "acme/app" })).status).toBe(200);
    const issued = await callApi("POST", "/users/au-1/capabilities", { appType: "standard", repository: "acme/app", sessionId: "sess-9" });
    const cap = issued.body.capability as string;
    for (let i = 0; i < 3; i++) {
      const res = await publicFetch("/git/acme/app.git/info/refs?service=git-upload-pack", { headers: { authorization: `Basic ${btoa(`x:${cap}`)}` } });
      expect(res.status).toBe(200);
      await res.body?.cancel();
    }
    await callApi("DELETE", "/users/au-1/capabilities/sess-9");
    await callApi("DELETE", "/users/au-1/connection?appType=standard");

    const page = await callApi("GET", "/users/au-1/audit");
    expect(page.status).toBe(200);
    const kinds = page.body.entries.map((e: { kind: string }) => e.kind);
    expect(kinds).toEqual(["disconnected", "capability_revoked", "capability_redeemed", "capability_issued", "token_issued", "connected"]);
    const tokens = page.body.entries.find((e: { kind: string }) => e.kind === "token_issued");
    expect(tokens).toMatchObject({ appType: "standard", count: 5, detail: { repository: "acme/app", identity: "user", scope: "user" } });
    const redeemed = page.body.entries.find((e: { kind: string }) => e.kind === "capability_redeemed");
    expect(redeemed).toMatchObject({ count: 3, detail: { repository: "acme/app", sessionId: "sess-9", service: "git-upload-pack" } });
    expect(JSON.stringify(page.body)).not.toMatch(/gh[usr]_|gcap1\.|v1\.k[12]\./);
    expect(JSON.stringify(page.body)).not.toContain(cap);

    const first = await callApi("GET", "/users/au-1/audit?limit=2");
    expect(first.body.entries.length).toBe(2);
    const second = await callApi("GET", `/users/au-1/audit?limit=2&before=${first.body.nextBefore}`);
    expect(second.body.entries[0].id).toBeLessThan(first.body.entries[1].id);
    for (const bad of ["limit=0", "limit=501", "limit=x", "before=-1", "before=1.5"]) {
      expect((await callApi("GET", `/users/au-1/audit?${bad}`)).status, bad).toBe(400);
    }
    expect((await callApi("DELETE", "/users/au-1")).status).toBe(200);
    expect((await callApi("GET", "/users/au-1/audit")).body.entries).toEqual([]);
  });

  it("a push whose ref commands arrive after the account's deletion records nothing: the deleted user's storage stays empty", async () => {
    const gh = { id: 8805, login: "latepusher", name: null, repos: { "acme/app": "push" as const } };
    await connectUser("au-3", gh);
    const cap = (await callApi("POST", "/users/au-3/capabilities", { appType: "standard", repository: "acme/app", sessionId: "late", branches: ["agent/*"] })).body.capability as string;
    // The push is redeemed at once; its ref commands are held back until after the deletion.
    let send!: (bytes: Uint8Array) => void;
    const body = new ReadableStream<Uint8Array>({ start: (controller) => void (send = (bytes) => (controller.enqueue(bytes), controller.close())) });
    const pushed = publicFetch("/git/acme/app.git/git-receive-pack", {
      method: "POST",
      headers: { authorization: `Basic ${btoa(`x:${cap}`)}`, "content-type": "application/x-git-receive-pack-request" },
      body,
      duplex: "half",
    } as RequestInit);
    await new Promise((r) => setTimeout(r, 200));
    expect((await callApi("DELETE", "/users/au-3")).status).toBe(200);
    expect(await userRows("au-3")).toEqual([]);
    const command = pktLine(`${"1".repeat(40)} ${"2".repeat(40)} refs/heads/main\0report-status`);
    send(new Uint8Array([...command, ...new TextEncoder().encode("0000PACK")]));
    const res = await pushed;
    await res.body?.cancel();
    expect(await userRows("au-3")).toEqual([]);
  });

  it("the hot path writes at most one audit entry per minute per repository", async () => {
    const gh = { id: 8804, login: "busy", name: null, repos: { "acme/app": "push" as const } };
    await connectUser("au-2", gh);
    const writesBefore = await runInDurableObject(actor("au-2"), (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM audit").one().n);
    for (let i = 0; i < 20; i++) await requestToken("au-2", { repository: "acme/app" });
    const rows = await runInDurableObject(actor("au-2"), (_i, state) => state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM audit").one().n);
    expect(rows - writesBefore).toBeLessThanOrEqual(2); // one, or two across a minute boundary
    const entries = (await callApi("GET", "/users/au-2/audit")).body.entries;
    expect(entries.filter((e: { kind: string }) => e.kind === "token_issued").reduce((n: number, e: { count: number }) => n + e.count, 0)).toBe(20);
  });
});

describe("metrics", () => {
  it("one data point per operation where METRICS is bound, in the documented layout; nothing where it is not", () => {
    const writeDataPoint = vi.fn();
    const point = { operation: "token", outcome: "ok", appType: "standard", durationMs: 3, githubCalls: 1 };
    recordMetric({ METRICS: { writeDataPoint } } as unknown as Env, point);
    expect(writeDataPoint).toHaveBeenCalledWith({ indexes: ["standard"], blobs: ["token", "ok", "standard"], doubles: [3, 1] });
    expect(() => recordMetric({} as Env, point)).not.toThrow();
    const broken = { METRICS: { writeDataPoint: () => { throw new Error("dataset down"); } } } as unknown as Env;
    expect(() => recordMetric(broken, point)).not.toThrow();
  });
});
