/**
 * A capability revoked (or a connection ended) while a proxied request waits: nothing goes
 * upstream with the user's token after the revocation answered. Two waits: the client's own
 * (a push whose ref-update commands have not arrived yet: the body stream is held by the
 * test), and the actor's (a refresh held at GitHub during the redemption).
 */
import { beforeEach, describe, expect, it } from "vitest";
import { readPush } from "../src/proxy/push-check";
import { pktLine } from "../src/proxy/receive-pack";
import { callApi, connectUser, emulator, publicFetch, setStoredExpiry } from "./support/helpers";

const ID = "1".repeat(40);
const NEXT = "2".repeat(40);
let next = 0;
function account() {
  next++;
  return { id: 8_100 + next, login: `pusher${next}`, name: null, repos: { "acme/app": "push" as const } };
}

beforeEach(async () => {
  await emulator.reset();
});

async function capability(userId: string): Promise<string> {
  const res = await callApi("POST", `/users/${userId}/capabilities`, { appType: "standard", repository: "acme/app", sessionId: "s1" });
  expect(res.status).toBe(200);
  return res.body.capability;
}

/** Starts a push whose body the test writes: nothing of it has been sent yet. */
function heldPush(cap: string) {
  const { readable, writable } = new TransformStream<Uint8Array, Uint8Array>();
  const writer = writable.getWriter();
  const response = publicFetch("/git/acme/app.git/git-receive-pack", {
    method: "POST",
    headers: { authorization: `Basic ${btoa(`x:${cap}`)}`, "content-type": "application/x-git-receive-pack-request" },
    body: readable,
    // @ts-expect-error: a streamed request body (workerd needs no `duplex`, undici does)
    duplex: "half",
  });
  return { writer, response };
}

async function pushesAs(login: string, since: number) {
  return (await emulator.gitRequests(since)).filter((r) => r.login === login);
}

describe("capability revocation against a request in flight", () => {
  const endings = {
    "the session's capabilities are revoked": { end: (u: string) => callApi("DELETE", `/users/${u}/capabilities/s1`), reason: "invalid_capability" },
    "the user disconnects": { end: (u: string) => callApi("DELETE", `/users/${u}/connection?appType=standard`), reason: "source_unavailable" },
  };
  for (const [name, { end, reason }] of Object.entries(endings)) {
    it(`a push whose commands are still on their way when ${name} never reaches GitHub`, async () => {
      const user = `pr-${reason}`;
      const A = account();
      await connectUser(user, A);
      const cap = await capability(user);
      const since = (await emulator.gitRequests()).length;
      const { writer, response } = heldPush(cap);
      // Half of the first command: the proxy has authenticated the capability and waits.
      const command = pktLine(`${ID} ${NEXT} refs/heads/agent/x\0report-status`);
      await writer.write(command.subarray(0, 20));
      await new Promise((r) => setTimeout(r, 100));
      const ended = await end(user);
      expect(ended.status).toBe(200);
      if (reason === "invalid_capability") expect(ended.body.revoked).toBe(1);
      await writer.write(command.subarray(20));
      await writer.write(new TextEncoder().encode("0000PACK"));
      await writer.close();
      const res = await response;
      expect(await res.text()).toMatch(new RegExp(`^${reason}: `));
      expect(res.status).toBe(reason === "invalid_capability" ? 401 : 410);
      expect(await pushesAs(A.login, since)).toEqual([]);
    });
  }

  it("a redemption waiting on a refresh lends nothing once the capability is revoked", async () => {
    const A = account();
    await connectUser("pr-refresh", A);
    const cap = await capability("pr-refresh");
    await setStoredExpiry("pr-refresh", "standard", Date.now() - 1);
    const since = (await emulator.gitRequests()).length;
    const hold = await emulator.hold({ match: ["refresh"] });
    const fetching = publicFetch("/git/acme/app.git/info/refs?service=git-upload-pack", { headers: { authorization: `Basic ${btoa(`x:${cap}`)}` } });
    expect(await emulator.waitHeld(hold, fetching)).not.toBeNull();
    expect((await callApi("DELETE", "/users/pr-refresh/capabilities/s1")).body.revoked).toBe(1);
    await emulator.release(hold);
    const res = await fetching;
    expect(res.status).toBe(401);
    expect(await res.text()).toMatch(/^invalid_capability: /);
    expect(await pushesAs(A.login, since)).toEqual([]);
  });

  it("a push whose commands never come is refused after the bound, its body cancelled", async () => {
    let cancelled = false;
    const body = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(pktLine(`${ID} ${NEXT} refs/heads/agent/x\0report-status`).subarray(0, 10));
      },
      cancel() {
        cancelled = true;
      },
    });
    const request = new Request("https://broker.test/git/acme/app.git/git-receive-pack", { method: "POST", body });
    const read = await readPush(request, 50);
    expect(read.ok).toBe(false);
    if (!read.ok) expect(await read.response.text()).toMatch(/^invalid_upstream_request: .*did not arrive within/);
    expect(cancelled).toBe(true);
  });
});
