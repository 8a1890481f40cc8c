/**
 * The egress door inside workerd: `github-token-broker/egress`'s handler, called as a
 * Container's `outboundByHost` handler is (an intercepted request, the platform's `env`, a
 * `ctx.containerId`), over the real `BrokerApi` entrypoint, against the emulator's real
 * repositories. Here the emulator's hosts stand in for github.com and api.github.com (the
 * broker maps by its configured GITHUB_WEB_URL and GITHUB_API_URL). The real `git` through an
 * intercepting proxy: test-node/egress.test.ts.
 */
import { listDurableObjectIds } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { brokerEgress, egressBroker } from "../src/egress";
import { verifyCapability } from "../src/proxy/capability-token";
import { concatBytes, pktLine } from "../src/proxy/receive-pack";
import { AGENT_HOST, EMULATOR_API_URL, EMULATOR_URL } from "./support/env";
import { actor, callApi, connectUser, emulator, publicFetch } from "./support/helpers";

const DEV = { id: 7171, login: "sandboxed", name: "Sand Boxed", repos: { "acme/app": "push" as const, "acme/other": "push" as const } };
const ZERO = "0".repeat(40);
const CONTAINER = "c".repeat(64);
const OTHER_CONTAINER = "d".repeat(64);

/** The platform's trusted storage: container id → capability (the Container object's storage in examples/sandbox). */
const issued = new Map<string, string>();
/** The platform's env: the service binding to the broker's entrypoint. */
const platformEnv = { TOKEN_BROKER: (exports as unknown as { BrokerApi: object }).BrokerApi };
const handler = brokerEgress<typeof platformEnv>({
  broker: (e) => egressBroker(e.TOKEN_BROKER),
  capabilityFor: (ctx) => issued.get(ctx.containerId) ?? null,
});

beforeEach(async () => {
  await emulator.reset();
  issued.clear();
});

async function bound(userId: string, containerId = CONTAINER, body: Record<string, unknown> = {}): Promise<string> {
  const res = await callApi("POST", `/users/${userId}/capabilities`, { appType: "standard", repository: "acme/app", sessionId: "sbx-1", branches: ["agent/*"], containerId, ...body });
  expect(res.status).toBe(200);
  expect(res.body.capability).toMatch(/^gcapc1\./);
  expect(res.body.gitRemoteUrl).toBe(`${EMULATOR_URL}/acme/app.git`);
  expect(res.body.containerId).toBe(containerId);
  return res.body.capability as string;
}

/** What the sandbox sends: its `git`/`gh` holds only the placeholder. */
function intercepted(url: string, init: RequestInit = {}, containerId = CONTAINER): Promise<Response> {
  const headers = new Headers(init.headers);
  headers.set("authorization", `Basic ${btoa("x-access-token:egress-placeholder")}`);
  return handler(new Request(url, { ...init, headers }), platformEnv, { containerId });
}

async function bytesOf(res: Response): Promise<Uint8Array> {
  return new Uint8Array(await res.arrayBuffer());
}


/** A pack with no objects: what git sends to create a ref at a commit the server has. */
async function emptyPack(): Promise<Uint8Array> {
  const head = new Uint8Array([0x50, 0x41, 0x43, 0x4b, 0, 0, 0, 2, 0, 0, 0, 0]);
  return concatBytes([head, new Uint8Array(await crypto.subtle.digest("SHA-1", head))]);
}

/** The commit `main` points at, from the receive-pack advertisement through the handler. */
async function mainSha(): Promise<string> {
  const res = await intercepted(`${EMULATOR_URL}/acme/app.git/info/refs?service=git-receive-pack`);
  expect(res.status).toBe(200);
  const text = new TextDecoder().decode(await bytesOf(res));
  return /([0-9a-f]{40}) refs\/heads\/main/.exec(text)![1]!;
}

async function receivePack(commands: string[]): Promise<Response> {
  const lines = commands.map((c, i) => pktLine(i === 0 ? `${c}\0report-status` : c));
  const body = concatBytes([...lines, new TextEncoder().encode("0000"), await emptyPack()]);
  return intercepted(`${EMULATOR_URL}/acme/app.git/git-receive-pack`, { method: "POST", headers: { "content-type": "application/x-git-receive-pack-request" }, body });
}

describe("the egress handler", () => {
  it("clones the bound repository with nothing but a placeholder in the sandbox", async () => {
    await connectUser("sbx-1", DEV);
    issued.set(CONTAINER, await bound("sbx-1"));
    const refs = await intercepted(`${EMULATOR_URL}/acme/app.git/info/refs?service=git-upload-pack`);
    expect(refs.status).toBe(200);
    expect(refs.headers.get("x-broker-identity")).toBe("user");
    const advertised = new TextDecoder().decode(await bytesOf(refs));
    const head = /([0-9a-f]{40}) refs\/heads\/main/.exec(advertised)![1]!;
    const wants = concatBytes([pktLine(`want ${head}\n`), new TextEncoder().encode("0000"), pktLine("done\n")]);
    const pack = await intercepted(`${EMULATOR_URL}/acme/app.git/git-upload-pack`, { method: "POST", headers: { "content-type": "application/x-git-upload-pack-request" }, body: wants });
    expect(pack.status).toBe(200);
    expect(new TextDecoder().decode(await bytesOf(pack))).toContain("PACK");
    // Every git request upstream carried the user's token, not the placeholder.
    const requests = await emulator.gitRequests();
    expect(requests.length).toBeGreaterThanOrEqual(2);
    expect(requests.every((r) => r.login === "sandboxed" && r.repository === "acme/app")).toBe(true);
  });

  it("pushes within branches, refuses a push to main before it reaches GitHub", async () => {
    await connectUser("sbx-2", DEV);
    issued.set(CONTAINER, await bound("sbx-2"));
    const sha = await mainSha();
    const branch = `refs/heads/agent/egress-${Date.now()}`;
    const ok = await receivePack([`${ZERO} ${sha} ${branch}`]);
    expect(ok.status).toBe(200);
    expect(new TextDecoder().decode(await bytesOf(ok))).toContain(`ok ${branch}`);
    const gitBefore = (await emulator.stats()).counts.git;
    const main = await receivePack([`${sha} ${sha.replace(/^./, sha[0] === "a" ? "b" : "a")} refs/heads/main`]);
    expect(new TextDecoder().decode(await bytesOf(main))).toContain("ng refs/heads/main branch not allowed for this session: agent/*");
    expect((await emulator.stats()).counts.git).toBe(gitBefore);
  });

  it("serves REST on the API host with the same judge, and refuses another repository and other paths", async () => {
    await connectUser("sbx-3", DEV);
    issued.set(CONTAINER, await bound("sbx-3"));
    const repo = await intercepted(`${EMULATOR_API_URL}/repos/acme/app`, { headers: { authorization: "token egress-placeholder" } });
    expect(repo.status).toBe(200);
    expect(((await repo.json()) as { full_name: string }).full_name).toBe("acme/app");
    const other = await intercepted(`${EMULATOR_API_URL}/repos/acme/other`);
    expect(other.status).toBe(403);
    expect(((await other.json()) as { reason: string }).reason).toBe("repository_mismatch");
    const otherGit = await intercepted(`${EMULATOR_URL}/acme/other.git/info/refs?service=git-upload-pack`);
    expect(otherGit.status).toBe(403);
    expect(await otherGit.text()).toMatch(/^repository_mismatch: /);
    // Anything else on the provider's hosts: refused, legibly, and nothing goes upstream.
    const before = Object.values((await emulator.stats()).counts).reduce((a, b) => a + b, 0);
    for (const url of [`${EMULATOR_URL}/acme/app/issues`, `${EMULATOR_URL}/login/oauth/access_token`, `${EMULATOR_URL}/a/b/c/info/refs?service=git-upload-pack`, "https://elsewhere.test/x"]) {
      const res = await intercepted(url, { method: "POST", body: "{}" });
      expect(res.status, url).toBe(403);
      expect(await res.text(), url).toMatch(/operation_not_allowed: /);
    }
    expect(Object.values((await emulator.stats()).counts).reduce((a, b) => a + b, 0)).toBe(before);
  });

  it("refuses a capability of another container, and a container that holds none, waking no Durable Object", async () => {
    await connectUser("sbx-4", DEV);
    const cap = await bound("sbx-4");
    // The platform mixed them up, or another container's copy was planted: refused at the edge.
    issued.set(OTHER_CONTAINER, cap);
    const objects = (await listDurableObjectIds(env.USER_ACTOR)).length;
    const foreign = await intercepted(`${EMULATOR_URL}/acme/app.git/info/refs?service=git-upload-pack`, {}, OTHER_CONTAINER);
    expect(foreign.status).toBe(401);
    expect(await foreign.text()).toMatch(/^invalid_capability: /);
    const none = await intercepted(`${EMULATOR_API_URL}/repos/acme/app`, {}, "e".repeat(64));
    expect(none.status).toBe(401);
    expect(((await none.json()) as { reason: string }).reason).toBe("invalid_capability");
    expect((await listDurableObjectIds(env.USER_ACTOR)).length).toBe(objects);
    expect((await emulator.gitRequests()).length).toBe(0);
  });

  it("a bound capability is worthless at the public proxies and on AGENT_HOST; a forged one wakes nothing", async () => {
    await connectUser("sbx-5", DEV);
    const cap = await bound("sbx-5");
    const basic = { authorization: `Basic ${btoa(`x:${cap}`)}` };
    const git = await publicFetch("/git/acme/app.git/info/refs?service=git-upload-pack", { headers: basic });
    expect(git.status).toBe(401);
    expect(await git.text()).toMatch(/^invalid_capability: /);
    const rest = await publicFetch("/api/repos/acme/app/pulls", { headers: { authorization: `Bearer ${cap}` } });
    expect(rest.status).toBe(401);
    const agent = await exports.default.fetch(new Request(`https://${AGENT_HOST}/acme/app.git/info/refs?service=git-upload-pack`, { headers: basic }));
    expect(agent.status).toBe(401);
    const agentApi = await exports.default.fetch(new Request(`https://${AGENT_HOST}/api/v3/repos/acme/app`, { headers: { authorization: `token ${cap}` } }));
    expect(((await agentApi.json()) as { reason: string }).reason).toBe("invalid_capability");
    // A forgery naming a user who has no object: no Durable Object is created.
    const objects = (await listDurableObjectIds(env.USER_ACTOR)).length;
    const forged = `gcapc1.${btoa("nobody-here").replace(/=+$/, "")}.${cap.split(".")[2]}`;
    const res = await publicFetch("/git/acme/app.git/info/refs?service=git-upload-pack", { headers: { authorization: `Basic ${btoa(`x:${forged}`)}` } });
    expect(res.status).toBe(401);
    const viaEgress = await (issued.set(CONTAINER, forged), intercepted(`${EMULATOR_URL}/acme/app.git/info/refs?service=git-upload-pack`));
    expect(viaEgress.status).toBe(401);
    expect((await listDurableObjectIds(env.USER_ACTOR)).length).toBe(objects);
    expect((await emulator.gitRequests()).length).toBe(0);
  });

  it("an unbound capability the platform keeps works through egress too; containerId is validated at issue", async () => {
    await connectUser("sbx-6", DEV);
    const unbound = await callApi("POST", "/users/sbx-6/capabilities", { appType: "standard", repository: "acme/app", sessionId: "sbx-u" });
    expect(unbound.body.capability).toMatch(/^gcap1\./);
    issued.set(CONTAINER, unbound.body.capability);
    expect((await intercepted(`${EMULATOR_API_URL}/repos/acme/app`)).status).toBe(200);
    for (const containerId of ["", "a b", "x".repeat(129), 42, "/../"]) {
      const res = await callApi("POST", "/users/sbx-6/capabilities", { appType: "standard", repository: "acme/app", sessionId: "sbx-v", containerId });
      expect(res.status, String(containerId)).toBe(400);
      expect(res.body.reason).toBe("invalid_request");
    }
  });

  it("each layer refuses on its own: the MAC binds the container id, and the actor compares the row's", async () => {
    await connectUser("sbx-7", DEV);
    const cap = await bound("sbx-7");
    expect(await verifyCapability(env, cap, CONTAINER)).toMatchObject({ userId: "sbx-7", containerId: CONTAINER });
    expect(await verifyCapability(env, cap, OTHER_CONTAINER)).toBeNull();
    expect(await verifyCapability(env, cap, null)).toBeNull();
    // Past the MAC (as if the key leaked): the actor still answers another container as it answers an unknown capability.
    const { secretHash } = (await verifyCapability(env, cap, CONTAINER))!;
    const redeem = (containerId: string | null) => actor("sbx-7").redeemCapability({ userId: "sbx-7", secretHash, repository: "acme/app", write: false, service: "git-upload-pack", containerId });
    expect(await redeem(OTHER_CONTAINER)).toEqual({ ok: false, reason: "invalid_capability", message: "Unknown or revoked capability." });
    expect(await redeem(null)).toEqual({ ok: false, reason: "invalid_capability", message: "Unknown or revoked capability." });
    expect(await redeem(CONTAINER)).toMatchObject({ ok: true, repository: "acme/app" });
  });

  it("forwards a pull request mutation through GraphQL on the API host, and refuses another repository's id", async () => {
    // The pull request itself is opened by the real gh in test-node/egress.test.ts (this
    // repository has no branch to open it from): here, the judge and the proof.
    await connectUser("sbx-8", DEV);
    issued.set(CONTAINER, await bound("sbx-8"));
    const post = (query: string, variables: Record<string, unknown> = {}) =>
      intercepted(`${EMULATOR_API_URL}/graphql`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ query, variables }) });
    const repo = (await (await post('query { repository(owner: "acme", name: "app") { id } }')).json()) as { data: { repository: { id: string } } };
    const query = "mutation($input: CreatePullRequestInput!) { createPullRequest(input: $input) { pullRequest { number } } }";
    const res = await post(query, { input: { repositoryId: repo.data.repository.id, baseRefName: "main", headRefName: "agent/none", title: "t" } });
    expect(res.status).toBe(200);
    expect(res.headers.get("x-broker-identity")).toBe("user");
    // GitHub's own answer: the mutation reached it, and it judged the branches.
    expect(((await res.json()) as { errors: { type: string; message: string }[] }).errors[0]).toMatchObject({ type: "UNPROCESSABLE", message: expect.stringContaining("Head ref must be a branch") });
    const other = await post(query, { input: { repositoryId: "R_kgDOnotours", baseRefName: "main", headRefName: "agent/x", title: "t" } });
    expect(((await other.json()) as { errors: { message: string }[] }).errors[0]!.message).toMatch(/^repository_mismatch: /);
  });
});
