/**
 * Capabilities with `identity` (contract, "Installation tokens"): `user`, `app` and
 * `user_or_app`, redeemed through the REST proxy, which says whose token it used in
 * `X-Broker-Identity`. The real `git` client's side is test-node/identity.test.ts.
 */
import { reset, runInDurableObject } from "cloudflare:test";
import { beforeEach, describe, expect, it } from "vitest";
import type { CapabilityGrant } from "../src/contract";
import { actor, callApi, connectUser, dumpStorage, emulator, publicFetch, revokeOnGitHub, setStoredExpiry } from "./support/helpers";
import { apps } from "./support/installations";

const DEV = { id: 6161, login: "dev", name: "Dev Eloper", repos: { "acme/app": "push" as const } };
const USER = { name: "Dev Eloper", email: "6161+dev@users.noreply.github.com" };
const BOT = { name: "broker-standard[bot]", email: "41898282+broker-standard[bot]@users.noreply.github.com" };

beforeEach(async () => {
  await reset();
  await emulator.reset();
  await apps.install({ id: 8101, account: "acme", repositories: ["acme/app"], permissions: { contents: "write", pull_requests: "write" } });
});

function issue(userId: string, body: Record<string, unknown> = {}) {
  return callApi<CapabilityGrant & { reason?: string }>("POST", `/users/${userId}/capabilities`, { appType: "standard", repository: "acme/app", sessionId: "s1", ...body });
}

/** `GET /api/repos/acme/app` through the REST proxy with the capability. */
async function viaProxy(capability: string): Promise<{ status: number; identity: string | null; body: Record<string, any> }> {
  const res = await publicFetch("/api/repos/acme/app", { headers: { authorization: `Bearer ${capability}` } });
  return { status: res.status, identity: res.headers.get("x-broker-identity"), body: (await res.json()) as Record<string, any> };
}

/** The user revokes the App on GitHub, and GitHub's signed webhook reaches the broker. */
async function revokeDev(): Promise<void> {
  expect((await revokeOnGitHub(DEV)).status).toBe(202);
}

describe("capability identity", () => {
  it("user (the default) says so on every proxied response and dies with the connection", async () => {
    await connectUser("id-user", DEV);
    const cap = await issue("id-user");
    expect(cap.body).toMatchObject({ identity: "user", committer: USER });
    expect(cap.body.coAuthor).toBeUndefined();
    const before = await viaProxy(cap.body.capability);
    expect(before).toMatchObject({ status: 200, identity: "user" });
    await revokeDev();
    const after = await viaProxy(cap.body.capability);
    expect(after).toMatchObject({ status: 410, identity: null, body: { reason: "source_unavailable" } });
  });

  it("user_or_app lends the user while it can, then the App from the moment the user revokes", async () => {
    await connectUser("id-either", DEV);
    const cap = await issue("id-either", { identity: "user_or_app" });
    expect(cap.status).toBe(200);
    expect(cap.body).toMatchObject({ identity: "user_or_app", committer: USER, coAuthor: USER });
    expect(cap.body.fallbackReason).toBeUndefined();
    expect(await viaProxy(cap.body.capability)).toMatchObject({ status: 200, identity: "user" });
    const mintsBefore = (await emulator.stats()).counts.installation_token;

    await revokeDev();
    const first = await viaProxy(cap.body.capability);
    expect(first).toMatchObject({ status: 200, identity: "app", body: { full_name: "acme/app" } });
    // The session holds neither identity's token: not in its grant, not in what the proxy answers.
    expect(JSON.stringify([cap.body, first.body])).not.toMatch(/gh[usr]_/);
    // The installation token is cached by the installation actor: one mint for the session.
    expect(await viaProxy(cap.body.capability)).toMatchObject({ status: 200, identity: "app" });
    expect((await emulator.stats()).counts.installation_token).toBe(mintsBefore + 1);

    const audit = await callApi("GET", "/users/id-either/audit?limit=50");
    const redeemed = audit.body.entries.filter((e: { kind: string }) => e.kind === "capability_redeemed").map((e: { detail: { identity: string } }) => e.detail.identity);
    expect(redeemed).toContain("user");
    expect(redeemed).toContain("app");
  });

  it("user_or_app never masks an outage: a refresh GitHub cannot answer fails the request, not the App's token", async () => {
    await connectUser("id-outage", DEV);
    const cap = await issue("id-outage", { identity: "user_or_app" });
    await setStoredExpiry("id-outage", "standard", Date.now() - 1000);
    await emulator.fault({ endpoint: "refresh", kind: "status_5xx" });
    const res = await viaProxy(cap.body.capability);
    expect(res).toMatchObject({ status: 503, identity: null, body: { reason: "github_unavailable" } });
    // The App's token was not even asked for.
    expect((await emulator.stats()).counts.installation_token).toBe(0);
  });

  it("user_or_app issued while the user cannot lend starts out as the App and never lends a later connection", async () => {
    const cap = await issue("id-later", { identity: "user_or_app" });
    expect(cap.status).toBe(200);
    expect(cap.body).toMatchObject({ identity: "user_or_app", committer: BOT, fallbackReason: "not_connected" });
    expect(cap.body.coAuthor).toBeUndefined();
    expect(await viaProxy(cap.body.capability)).toMatchObject({ status: 200, identity: "app" });
    await connectUser("id-later", DEV);
    expect(await viaProxy(cap.body.capability)).toMatchObject({ status: 200, identity: "app" });
  });

  it("user_or_app hands over to the App when the user reconnects as another GitHub account", async () => {
    await connectUser("id-swap", DEV);
    const cap = await issue("id-swap", { identity: "user_or_app" });
    expect(await viaProxy(cap.body.capability)).toMatchObject({ identity: "user" });
    await connectUser("id-swap", { id: 6262, login: "other", repos: { "acme/app": "push" } });
    expect(await viaProxy(cap.body.capability)).toMatchObject({ status: 200, identity: "app" });
  });

  it("app needs no connection, authors as the bot with the user as co-author where known", async () => {
    const never = await issue("id-app-only", { identity: "app" });
    expect(never.status).toBe(200);
    expect(never.body).toMatchObject({ identity: "app", committer: BOT });
    expect(never.body.coAuthor).toBeUndefined();
    expect(await viaProxy(never.body.capability)).toMatchObject({ status: 200, identity: "app" });

    await connectUser("id-app-known", DEV);
    const known = await issue("id-app-known", { identity: "app" });
    expect(known.body).toMatchObject({ identity: "app", committer: BOT, coAuthor: USER });
    expect(await viaProxy(known.body.capability)).toMatchObject({ status: 200, identity: "app" });
  });

  it("a repository the App is not installed on is refused at issue and stores nothing; revocation still works", async () => {
    const refused = await issue("id-nope", { identity: "app", repository: "elsewhere/app" });
    expect(refused).toMatchObject({ status: 404, body: { ok: false, reason: "not_installed" } });
    const ok = await issue("id-nope", { identity: "app", sessionId: "s2" });
    const revoked = await callApi("DELETE", "/users/id-nope/capabilities/s2");
    expect(revoked.body).toMatchObject({ ok: true, revoked: 1 });
    expect(await viaProxy(ok.body.capability)).toMatchObject({ status: 401, body: { reason: "invalid_capability" } });
  });

  it("an account deletion that arrives while an App capability is being issued wins: nothing is stored", async () => {
    await issue("id-race", { identity: "app", sessionId: "before" }); // the actor exists and holds something
    const outcome = await runInDurableObject(actor("id-race"), async (instance) => {
      const input = {
        userId: "id-race", appType: "standard", repository: "acme/app", permission: "push" as const, minValiditySeconds: 300,
        sessionId: "during", ttlSeconds: 600, policy: { branches: ["**"], allowDelete: false }, identity: "app" as const, app: { committer: BOT },
      };
      // The issue runs to its first await; the deletion arrives while that await is open.
      const issuing = instance.issueCapabilityAsApp(input);
      const deleting = instance.deleteUser({ userId: "id-race" });
      return { issued: await issuing, deleted: await deleting };
    });
    expect(outcome.deleted).toMatchObject({ ok: true });
    expect(outcome.issued).toMatchObject({ ok: false, reason: "invalid_request" });
    expect(await dumpStorage("id-race")).not.toContain("during");
  });

  it("rejects an unknown identity and the App's identity for a GitLab App with invalid_request", async () => {
    expect(await issue("id-bad", { identity: "bot" })).toMatchObject({ status: 400, body: { reason: "invalid_request" } });
    expect(await issue("id-bad", { identity: "app", appType: "gitlab", repository: "group/sub/project" })).toMatchObject({ status: 400, body: { reason: "invalid_request" } });
  });
});
