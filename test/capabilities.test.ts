/** Session capabilities and the proxies, inside workerd (the real git client is in test-node/). */
import { beforeEach, describe, expect, it } from "vitest";
import { PUBLIC_BASE_URL } from "./support/env";
import { callApi, connectUser, emulator, publicFetch, requestToken, setStoredExpiry } from "./support/helpers";

const DEV = { id: 6060, login: "dev", name: "Dev Eloper", repos: { "acme/app": "push" as const, "acme/other": "push" as const, "acme/docs": "pull" as const } };

beforeEach(async () => {
  await emulator.reset();
});

async function issue(userId: string, body: Record<string, unknown> = {}) {
  return callApi("POST", `/users/${userId}/capabilities`, { appType: "standard", repository: "acme/app", sessionId: "s1", ...body });
}

function gitGet(path: string, capability?: string) {
  const headers: Record<string, string> = {};
  if (capability !== undefined) headers.authorization = `Basic ${btoa(`x:${capability}`)}`;
  return publicFetch(path, { headers });
}

const refs = (repo = "acme/app", service = "git-upload-pack") => `/git/${repo}.git/info/refs?service=${service}`;

describe("capabilities", () => {
  it("issues a capability with the git remote URL and the committer identity; git info/refs works through the proxy", async () => {
    await connectUser("cap-1", DEV);
    const res = await issue("cap-1");
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      ok: true,
      gitRemoteUrl: `${PUBLIC_BASE_URL}/git/acme/app.git`,
      committer: { name: "Dev Eloper", email: "6060+dev@users.noreply.github.com" },
    });
    expect(res.body.capability).toMatch(/^gcap1\.[\w-]+\.[\w-]{43}$/);
    expect(res.body.capability).not.toContain("ghu_");
    const expires = Date.parse(res.body.expiresAt) - Date.now();
    expect(expires).toBeGreaterThan(3500_000);
    expect(expires).toBeLessThanOrEqual(3600_000);

    const ok = await gitGet(refs(), res.body.capability);
    expect(ok.status).toBe(200);
    expect(ok.headers.get("content-type")).toBe("application/x-git-upload-pack-advertisement");
    expect(await ok.text()).toContain("refs/heads/main");
    // The same repository in another case, as GitHub treats it.
    expect((await gitGet(refs("ACME/App"), res.body.capability)).status).toBe(200);
  });

  it("is checked like a token at issuance: no access, no capability", async () => {
    await connectUser("cap-2", DEV);
    expect((await issue("cap-2", { repository: "acme/secret" })).body.reason).toBe("no_repo_access");
    expect((await issue("cap-2", { repository: "acme/docs" })).body.reason).toBe("no_repo_access");
    expect((await issue("cap-2", { repository: "acme/docs", permission: "pull" })).status).toBe(200);
    expect((await issue("cap-never")).body.reason).toBe("not_connected");
    for (const bad of [{ sessionId: "" }, { sessionId: "a/b" }, { ttlSeconds: 0 }, { ttlSeconds: 99_999 }, { repository: "../x" }]) {
      expect((await issue("cap-2", bad)).status, JSON.stringify(bad)).toBe(400);
    }
  });

  it("failures have stable reasons that git prints legibly", async () => {
    await connectUser("cap-3", DEV);
    const cap = (await issue("cap-3")).body.capability as string;
    const pull = (await issue("cap-3", { sessionId: "s-pull", permission: "pull" })).body.capability as string;
    const cases: [string, Promise<Response>, number, string][] = [
      ["no credentials", gitGet(refs()), 401, "invalid_capability"],
      ["garbage", gitGet(refs(), "not-a-capability"), 401, "invalid_capability"],
      ["tampered secret", gitGet(refs(), cap.slice(0, -3) + (cap.endsWith("AAA") ? "BBB" : "AAA")), 401, "invalid_capability"],
      ["another user's id", gitGet(refs(), cap.replace(/^gcap1\.[\w-]+\./, `gcap1.${btoa("cap-x").replace(/=+$/, "")}.`)), 401, "invalid_capability"],
      ["another repository", gitGet(refs("acme/other"), cap), 403, "repository_mismatch"],
      ["push with a pull capability", gitGet(refs("acme/app", "git-receive-pack"), pull), 403, "insufficient_permission"],
      ["not a git path", gitGet("/git/acme/app.git/objects/info/packs", cap), 404, "invalid_upstream_request"],
      ["unknown service", gitGet("/git/acme/app.git/info/refs?service=git-upload-archive", cap), 404, "invalid_upstream_request"],
      ["dot segments", gitGet("/git/acme/%2e%2e/app.git/info/refs?service=git-upload-pack", cap), 404, "invalid_upstream_request"],
      ["encoded slash", gitGet("/git/acme%2Fapp.git/info/refs?service=git-upload-pack", cap), 404, "invalid_upstream_request"],
    ];
    for (const [name, pending, status, reason] of cases) {
      const res = await pending;
      expect(res.status, name).toBe(status);
      expect(res.headers.get("content-type"), name).toContain("text/plain");
      expect(await res.text(), name).toMatch(new RegExp(`^${reason}: `));
    }
    expect((await gitGet(refs())).headers.get("www-authenticate")).toContain("Basic");
    // A POST upload-pack is refused the same way for another repository.
    const post = await publicFetch("/git/acme/other.git/git-upload-pack", {
      method: "POST",
      headers: { authorization: `Basic ${btoa(`x:${cap}`)}`, "content-type": "application/x-git-upload-pack-request" },
      body: "0000",
    });
    expect(post.status).toBe(403);
  });

  it("expires, and never outlives the connection", async () => {
    await connectUser("cap-4", DEV);
    const short = (await issue("cap-4", { ttlSeconds: 1 })).body.capability as string;
    await new Promise((r) => setTimeout(r, 1100));
    const res = await gitGet(refs(), short);
    expect(res.status).toBe(401);
    expect(await res.text()).toMatch(/^expired_capability/);
  });

  it("dies with the connection: revoked, disconnected, reconnected, deleted; and early by session", async () => {
    await connectUser("cap-5", DEV);
    const a = (await issue("cap-5", { sessionId: "sa" })).body.capability as string;
    const b = (await issue("cap-5", { sessionId: "sb" })).body.capability as string;
    expect((await callApi("DELETE", "/users/cap-5/capabilities/sa")).body).toEqual({ ok: true, revoked: 1 });
    expect((await gitGet(refs(), a)).status).toBe(401);
    expect((await gitGet(refs(), b)).status).toBe(200);

    await callApi("DELETE", "/users/cap-5/connection?appType=standard");
    const gone = await gitGet(refs(), b);
    expect(gone.status).toBe(410);
    expect(await gone.text()).toMatch(/^source_unavailable/);
    // Reconnecting does not bring an old capability back.
    await connectUser("cap-5", DEV);
    expect((await gitGet(refs(), b)).status).toBe(410);

    const c = (await issue("cap-5", { sessionId: "sc" })).body.capability as string;
    expect((await gitGet(refs(), c)).status).toBe(200);
    await callApi("DELETE", "/users/cap-5");
    expect((await gitGet(refs(), c)).status).toBe(401);
  });

  it("a session keeps working across a refresh triggered by another session", async () => {
    await connectUser("cap-6", DEV);
    const cap = (await issue("cap-6")).body.capability as string;
    expect((await gitGet(refs(), cap)).status).toBe(200);
    const before = (await emulator.stats()).counts.refresh;
    await setStoredExpiry("cap-6", "standard", Date.now() - 1);
    const other = await requestToken("cap-6", { repository: "acme/app" });
    expect(other.status).toBe(200);
    expect((await emulator.stats()).counts.refresh).toBe(before + 1);
    expect((await gitGet(refs(), cap)).status).toBe(200);
  });

  it("REST proxy: an allow-list under the bound repository, with the user's token", async () => {
    await connectUser("cap-7", DEV);
    const cap = (await issue("cap-7")).body.capability as string;
    const auth = { authorization: `Bearer ${cap}` };
    const repo = await publicFetch("/api/repos/acme/app", { headers: auth });
    expect(repo.status).toBe(200);
    expect(((await repo.json()) as { permissions: { push: boolean } }).permissions.push).toBe(true);
    const cases: [string, RequestInit, number, string][] = [
      ["/api/repos/acme/other", { headers: auth }, 403, "repository_mismatch"],
      ["/api/repos/acme/app/collaborators", { headers: auth }, 404, "invalid_upstream_request"],
      ["/api/repos/acme/app/hooks", { method: "POST", headers: auth, body: "{}" }, 404, "invalid_upstream_request"],
      ["/api/repos/acme/app", { method: "DELETE", headers: auth }, 404, "invalid_upstream_request"],
      ["/api/repos/acme/app", {}, 401, "invalid_capability"],
    ];
    for (const [path, init, status, reason] of cases) {
      const res = await publicFetch(path, init);
      expect(res.status, path).toBe(status);
      expect(((await res.json()) as { reason: string }).reason, path).toBe(reason);
    }
  });
});
