/**
 * The git proxy's push check inside workerd, with handcrafted receive-pack bodies: what is
 * refused never reaches GitHub (the emulator's git counter does not move), a malformed or
 * signed command list is `invalid_upstream_request`, and a gzip-encoded push is judged on its
 * decompressed commands. (The real `git` client against it: test-node/push-policy.test.ts.)
 */
import { beforeEach, describe, expect, it } from "vitest";
import { concatBytes, pktLine } from "../src/proxy/receive-pack";
import { callApi, connectUser, emulator, publicFetch } from "./support/helpers";

const DEV = { id: 7070, login: "pusher", repos: { "acme/app": "push" as const } };
const ID = "1".repeat(40);
const ZERO = "0".repeat(40);

beforeEach(async () => {
  await emulator.reset();
});

async function capability(body: Record<string, unknown>): Promise<string> {
  const res = await callApi("POST", "/users/pusher/capabilities", { appType: "standard", repository: "acme/app", sessionId: "s1", ...body });
  expect(res.status).toBe(200);
  return res.body.capability;
}

function commands(lines: [string, string, string][], caps = "report-status side-band-64k"): Uint8Array {
  const parts = lines.map(([o, n, ref], i) => pktLine(i === 0 ? `${o} ${n} ${ref}\0${caps}` : `${o} ${n} ${ref}`));
  parts.push(new TextEncoder().encode("0000PACK..."));
  return concatBytes(parts);
}

function push(cap: string, body: BodyInit, headers: Record<string, string> = {}) {
  return publicFetch("/git/acme/app.git/git-receive-pack", {
    method: "POST",
    headers: { authorization: `Basic ${btoa(`x:${cap}`)}`, "content-type": "application/x-git-receive-pack-request", ...headers },
    body,
  });
}

/** A git response body as text (`.text()` warns on git's content types). */
async function textOf(res: Response): Promise<string> {
  return new TextDecoder().decode(await res.arrayBuffer());
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  return new Uint8Array(await new Response(new Blob([bytes]).stream().pipeThrough(new CompressionStream("gzip"))).arrayBuffer());
}

describe("push check at the proxy", () => {
  it("a forbidden push is answered with report-status (HTTP 200) and never reaches GitHub", async () => {
    await connectUser("pusher", DEV);
    const cap = await capability({ branches: ["agent/*"] });
    const before = (await emulator.stats()).counts.git;
    const res = await push(cap, commands([[ID, ID.replace(/1/g, "2"), "refs/heads/agent/x"], [ID, ZERO, "refs/heads/agent/y"]]));
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/x-git-receive-pack-result");
    const text = await textOf(res);
    expect(text).toContain("ng refs/heads/agent/x push refused as a whole: another ref is not allowed\n");
    expect(text).toContain("ng refs/heads/agent/y deleting refs is not allowed for this session\n");
    expect((await emulator.stats()).counts.git).toBe(before);
  });

  it("without report-status the refusal is plain text that git prints", async () => {
    await connectUser("pusher", DEV);
    const cap = await capability({ branches: ["agent/*"] });
    const res = await push(cap, commands([[ID, ID, "refs/heads/main"]], "side-band-64k"));
    expect(res.status).toBe(403);
    expect(await res.text()).toBe("insufficient_permission: refs/heads/main: branch not allowed for this session: agent/*\n");
  });

  it("malformed, truncated and signed command lists are invalid_upstream_request, and nothing is forwarded", async () => {
    await connectUser("pusher", DEV);
    const cap = await capability({});
    const before = (await emulator.stats()).counts.git;
    const cert = new Uint8Array([...pktLine("push-cert\0report-status\n"), ...new TextEncoder().encode("0000")]);
    for (const body of ["", "zzzz", "0003", `${ID} ${ID} refs/heads/main`, commands([[ID, ID, "refs/heads/main"]]).slice(0, 30), cert]) {
      const res = await push(cap, body);
      expect(res.status).toBe(404);
      expect(await res.text()).toMatch(/^invalid_upstream_request: /);
    }
    const unknownEncoding = await push(cap, commands([[ID, ID, "refs/heads/main"]]), { "content-encoding": "br" });
    expect(await unknownEncoding.text()).toMatch(/^invalid_upstream_request: /);
    expect((await emulator.stats()).counts.git).toBe(before);
  });

  it("git's probe (a bare flush) goes upstream; so does an allowed push", async () => {
    await connectUser("pusher", DEV);
    const cap = await capability({ branches: ["agent/*"] });
    const before = (await emulator.stats()).counts.git;
    const res = await push(cap, "0000");
    expect(res.status).toBe(200);
    await res.arrayBuffer();
    expect((await emulator.stats()).counts.git).toBe(before + 1);
  });

  it("a gzip-encoded push is judged on its decompressed commands", async () => {
    await connectUser("pusher", DEV);
    const cap = await capability({ branches: ["agent/*"] });
    const before = (await emulator.stats()).counts.git;
    const refused = await push(cap, await gzip(commands([[ID, ID, "refs/heads/main"]])), { "content-encoding": "gzip" });
    expect(await textOf(refused)).toContain("ng refs/heads/main branch not allowed for this session: agent/*");
    expect((await emulator.stats()).counts.git).toBe(before);
    const allowed = await push(cap, await gzip(new TextEncoder().encode("0000")), { "content-encoding": "gzip" });
    await allowed.arrayBuffer();
    expect((await emulator.stats()).counts.git).toBe(before + 1);
  });
});
