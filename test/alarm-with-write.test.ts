/**
 * Work the alarm must do is stored together with the alarm that does it. A state change's
 * event and a grant to revoke are written in one synchronous step with the alarm set to run
 * at once, so a crash right after the write (before the operation's own scheduling, which
 * comes after its awaits and only for lifecycle writers) cannot leave them waiting for the
 * daily alarm. The crash soak (scripts/crash-soak.ts) found both: an event and a revocation
 * stranded a day by a SIGKILL at that point.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { beforeEach, expect, it } from "vitest";
import { actor, callApi, connectUser, emulator, setStoredExpiry } from "./support/helpers";

/** How far away the user's alarm is now (ms), or `null` when none is set. */
function alarmIn(userId: string): Promise<number | null> {
  return runInDurableObject(actor(userId), async (_i, state) => {
    const at = await state.storage.getAlarm();
    return at === null ? null : at - Date.now();
  });
}

beforeEach(async () => {
  await emulator.reset();
  await fetch("http://events.receiver/_control/reset", { method: "POST" }).catch(() => undefined);
});

it("a refresh refused on a token request: its reconnect_required event has the alarm at once, not the daily one", async () => {
  await connectUser("alarm-refused", { id: 7101, login: "alarm7101" });
  // Whatever the connect left for the alarm done: the next one is the daily one.
  await runDurableObjectAlarm(actor("alarm-refused"));
  expect(await alarmIn("alarm-refused")).toBeGreaterThan(3600_000);
  await emulator.revoke("standard", 7101); // no webhook: the broker learns it from the refresh
  await setStoredExpiry("alarm-refused", "standard", Date.now() - 1);
  const res = await callApi("POST", "/users/alarm-refused/token", { appType: "standard", repository: "acme/app" });
  expect(res.body.reason).toBe("reconnect_required");
  const due = await alarmIn("alarm-refused");
  expect(due === null ? Infinity : due).toBeLessThan(5_000);
});

it("a disconnect whose revocation is still at GitHub: the pending revocation already has its alarm", async () => {
  await connectUser("alarm-pending", { id: 7102, login: "alarm7102" });
  await runDurableObjectAlarm(actor("alarm-pending"));
  expect(await alarmIn("alarm-pending")).toBeGreaterThan(3600_000);
  const hold = await emulator.hold({ match: ["revoke_grant"] });
  const disconnect = callApi("DELETE", "/users/alarm-pending/connection?appType=standard");
  expect(await emulator.waitHeld(hold, disconnect)).not.toBeNull();
  // The revocation row is stored and the request is held at GitHub: a crash now must find the alarm set.
  const due = await alarmIn("alarm-pending");
  await emulator.release(hold);
  expect((await disconnect).status).toBe(200);
  expect(due === null ? Infinity : due).toBeLessThan(5_000);
});
