/**
 * The event outbox's delivery schedule (docs/events.md): an event written on any path (a
 * token request, a redemption) is delivered at once, not at the next daily alarm; a dead
 * receiver makes the queue back off as one (the alarm does not spin); every event is tried
 * at least once before the give-up rule may drop it; events turned off drop the queue.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { EventOutbox, GIVE_UP_MS } from "../src/actor/event-outbox";
import type { ConnectionEvent } from "../src/contract";
import { EVENTS_URL } from "./support/env";
import { actor, callApi, connectUser, emulator, publicFetch, requestToken, setStoredExpiry } from "./support/helpers";

const RECEIVER = new URL(EVENTS_URL).origin;
const receiver = {
  reset: () => fetch(`${RECEIVER}/_control/reset`, { method: "POST" }),
  fault: (kind: "status_5xx" | "hang", count = -1) => fetch(`${RECEIVER}/_control/fault`, { method: "POST", body: JSON.stringify({ kind, count }) }),
  async events(userId: string): Promise<ConnectionEvent[]> {
    const { deliveries } = (await (await fetch(`${RECEIVER}/_control/deliveries`)).json()) as { deliveries: { body: string }[] };
    return deliveries.map((d) => JSON.parse(d.body) as ConnectionEvent).filter((e) => e.userId === userId);
  },
};

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

beforeEach(async () => {
  await emulator.reset();
  await receiver.reset();
});

/** Waits (without running the alarm by hand) until `type` reached the receiver for `userId`. */
async function arrives(userId: string, type: string, withinMs: number): Promise<boolean> {
  const until = Date.now() + withinMs;
  while (Date.now() < until) {
    if ((await receiver.events(userId)).some((e) => e.type === type)) return true;
    await sleep(50);
  }
  return false;
}

function outboxOf(userId: string) {
  return runInDurableObject(actor(userId), async (_i, state) => ({
    rows: state.storage.sql.exec<{ attempts: number; next_attempt_at: number }>("SELECT attempts, next_attempt_at FROM event_outbox ORDER BY seq").toArray(),
    alarm: await state.storage.getAlarm(),
  }));
}

describe("event delivery is scheduled by every write", () => {
  it("a reconnect_required written by a token request arrives within seconds, not at the daily alarm", async () => {
    const gh = { id: 9101, login: "tokenpath", name: null, repos: { "acme/app": "push" as const } };
    await connectUser("ob-1", gh);
    await emulator.revoke("standard", gh.id);
    await setStoredExpiry("ob-1", "standard", Date.now() - 1);
    expect((await requestToken("ob-1", { repository: "acme/app" })).body.reason).toBe("reconnect_required");
    expect(await arrives("ob-1", "reconnect_required", 5000)).toBe(true);
  });

  it("a reconnect_required written by a capability redemption arrives within seconds", async () => {
    const gh = { id: 9102, login: "redeempath", name: null, repos: { "acme/app": "push" as const } };
    await connectUser("ob-2", gh);
    const cap = (await callApi("POST", "/users/ob-2/capabilities", { appType: "standard", repository: "acme/app", sessionId: "s" })).body.capability as string;
    await emulator.revoke("standard", gh.id);
    await setStoredExpiry("ob-2", "standard", Date.now() - 1);
    const res = await publicFetch("/git/acme/app.git/info/refs?service=git-upload-pack", { headers: { authorization: `Basic ${btoa(`x:${cap}`)}` } });
    await res.body?.cancel();
    expect(res.status).not.toBe(200);
    expect(await arrives("ob-2", "reconnect_required", 5000)).toBe(true);
  });

  it("an event first tried 24 hours after it was written is sent, not dropped unsent", async () => {
    const gh = { id: 9103, login: "latecomer", name: null, repos: {} };
    await connectUser("ob-3", gh);
    const late = { id: crypto.randomUUID(), type: "disconnected", userId: "ob-3", appType: "standard", githubUserId: "9103", at: "2020-01-01T00:00:00Z" };
    await runInDurableObject(actor("ob-3"), (_i, state) => {
      const written = Date.now() - GIVE_UP_MS - 60_000;
      state.storage.sql.exec("INSERT INTO event_outbox (id, body, created_at, attempts, next_attempt_at) VALUES (?, ?, ?, 0, ?)", late.id, JSON.stringify(late), written, written);
    });
    await runDurableObjectAlarm(actor("ob-3"));
    expect((await receiver.events("ob-3")).map((e) => e.id)).toContain(late.id);
    expect((await outboxOf("ob-3")).rows).toEqual([]);
  });
});

describe("a dead receiver", () => {
  it("makes the queue back off as one: rows behind a failing head do not bring the alarm back every 100 ms", async () => {
    const gh = { id: 9104, login: "deadend", name: null, repos: {} };
    await receiver.fault("status_5xx");
    await connectUser("ob-4", gh);
    expect((await callApi("DELETE", "/users/ob-4/connection?appType=standard")).status).toBe(200);
    await connectUser("ob-4", gh);
    await sleep(300); // long enough for a spinning alarm to have fired a few times
    const { rows, alarm } = await outboxOf("ob-4");
    expect(rows.length).toBe(3);
    expect(rows[0]!.attempts).toBeGreaterThan(0);
    // The alarm waits for the head's backoff (5 s at first), whatever is queued behind it.
    expect(alarm! - Date.now()).toBeGreaterThan(3000);
    expect(await receiver.events("ob-4")).toEqual([]);
  });

  it("with events turned off, the queued rows are dropped and nothing comes due again", async () => {
    const gh = { id: 9105, login: "turnedoff", name: null, repos: {} };
    await receiver.fault("status_5xx");
    await connectUser("ob-5", gh);
    const left = await runInDurableObject(actor("ob-5"), async (_i, state) => {
      const off = new EventOutbox(state.storage.sql, { ...env, EVENTS_URL: "" } as Env);
      expect(off.nextAttemptAt()).not.toBeNull();
      await off.deliverDue();
      return { rows: state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM event_outbox").one().n, next: off.nextAttemptAt() };
    });
    expect(left).toEqual({ rows: 0, next: null });
  });
});
