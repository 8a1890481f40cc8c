/**
 * The GitHub-shaped surface's REST half (`https://<AGENT_HOST>/api/v3/...`), inside workerd:
 * what `gh api` and `gh`'s REST calls get with a session capability as their token.
 */
import { env, exports } from "cloudflare:workers";
import worker from "../src/index";
import { beforeEach, describe, expect, it } from "vitest";
import { AGENT_HOST } from "./support/env";
import { callApi, connectUser, emulator, publicFetch } from "./support/helpers";
import { apps } from "./support/installations";

const DEV = { id: 7070, login: "surf", name: "Sur Fer", repos: { "acme/app": "push" as const, "acme/other": "push" as const } };

beforeEach(async () => {
  await emulator.reset();
});

async function capability(userId: string, body: Record<string, unknown> = {}): Promise<string> {
  const res = await callApi("POST", `/users/${userId}/capabilities`, { appType: "standard", repository: "acme/app", sessionId: "gh-1", branches: ["agent/*"], ...body });
  expect(res.status).toBe(200);
  return res.body.capability as string;
}

/** A request to the surface as `gh` sends it in GitHub Enterprise mode: `Authorization: token <cap>`. */
function gh(path: string, cap: string | null, init: RequestInit = {}): Promise<Response> {
  const headers = new Headers(init.headers);
  if (cap !== null) headers.set("authorization", `token ${cap}`);
  return exports.default.fetch(new Request(`https://${AGENT_HOST}${path}`, { redirect: "manual", ...init, headers }));
}

describe("the GitHub-shaped surface: REST", () => {
  it("serves the bound repository and the identity with the user's token, and says whose it used", async () => {
    await connectUser("surf-1", DEV);
    const cap = await capability("surf-1");
    const repo = await gh("/api/v3/repos/acme/app", cap);
    expect(repo.status).toBe(200);
    expect(repo.headers.get("x-broker-identity")).toBe("user");
    expect(((await repo.json()) as { full_name: string }).full_name).toBe("acme/app");
    const user = await gh("/api/v3/user", cap);
    expect(user.status).toBe(200);
    expect(((await user.json()) as { login: string }).login).toBe("surf");
    // Bearer works too, and the public host does not serve these shapes.
    expect((await gh("/api/v3/repos/acme/app", null, { headers: { authorization: `Bearer ${cap}` } })).status).toBe(200);
    expect((await publicFetch("/api/v3/repos/acme/app", { headers: { authorization: `token ${cap}` } })).status).toBe(404);
  });

  it("refuses what is outside the session with the rule in GitHub's error shape, before anything goes upstream", async () => {
    await connectUser("surf-2", DEV);
    const cap = await capability("surf-2");
    const pull = await capability("surf-2", { sessionId: "gh-pull", permission: "pull" });
    const calls = async () => Object.values((await emulator.stats()).counts).reduce((a, b) => a + b, 0);
    const before = await calls();
    const cases: [string, Promise<Response>, number, string][] = [
      ["no capability", gh("/api/v3/repos/acme/app", null), 401, "invalid_capability"],
      ["a forged capability", gh("/api/v3/repos/acme/app", `${cap.slice(0, -2)}xx`), 401, "invalid_capability"],
      ["another repository", gh("/api/v3/repos/acme/other/pulls", cap), 403, "repository_mismatch"],
      ["a route off the list", gh("/api/v3/repos/acme/app/hooks", cap), 403, "operation_not_allowed"],
      ["a method off the list", gh("/api/v3/repos/acme/app", cap, { method: "DELETE" }), 403, "operation_not_allowed"],
      ["outside /repos", gh("/api/v3/orgs/acme/repos", cap), 403, "operation_not_allowed"],
      ["a write with a pull capability", gh("/api/v3/repos/acme/app/pulls", pull, { method: "POST", body: "{}" }), 403, "insufficient_permission"],
      ["a ref write outside branches", gh("/api/v3/repos/acme/app/git/refs/heads/main", cap, { method: "PATCH", body: '{"sha":"abc"}' }), 403, "branch_not_allowed"],
      ["moving a pull request's base outside branches", gh("/api/v3/repos/acme/app/pulls/1", cap, { method: "PATCH", body: '{"title":"t","base":"main"}' }), 403, "branch_not_allowed"],
      ["a ref name git would refuse", gh("/api/v3/repos/acme/app/git/refs", cap, { method: "POST", body: '{"ref":"refs/heads/agent/../main","sha":"abc"}' }), 403, "branch_not_allowed"],
      ["a new ref outside branches", gh("/api/v3/repos/acme/app/git/refs", cap, { method: "POST", body: '{"ref":"refs/heads/main","sha":"abc"}' }), 403, "branch_not_allowed"],
      ["a tag", gh("/api/v3/repos/acme/app/git/refs", cap, { method: "POST", body: '{"ref":"refs/tags/v1","sha":"abc"}' }), 403, "branch_not_allowed"],
      ["a deletion", gh("/api/v3/repos/acme/app/git/refs/heads/agent/x", cap, { method: "DELETE" }), 403, "operation_not_allowed"],
      ["an encoded path", gh("/api/v3/repos/acme/app/contents/%2e%2e/x", cap), 403, "operation_not_allowed"],
    ];
    for (const [name, pending, status, reason] of cases) {
      const res = await pending;
      expect(res.status, name).toBe(status);
      const body = (await res.json()) as { message: string; reason: string };
      expect(body.reason, name).toBe(reason);
      // `gh` prints `message`: the rule is in it, in words.
      expect(body.message, name).toMatch(new RegExp(`^${reason}: .+`));
      expect(body.message, name).not.toContain(cap);
    }
    // Nothing went to GitHub for any of them.
    expect(await calls()).toBe(before);
  });

  it("answers the App's bot for /user on an App session", async () => {
    await connectUser("surf-3", DEV);
    await apps.install({ id: 8301, account: "acme", repositories: ["acme/app"], permissions: { contents: "write", pull_requests: "write" } });
    const cap = await capability("surf-3", { identity: "app" });
    const user = await gh("/api/v3/user", cap);
    expect(user.status).toBe(200);
    expect(user.headers.get("x-broker-identity")).toBe("app");
    expect(((await user.json()) as { login: string; type: string })).toMatchObject({ type: "Bot" });
  });

  it("a broken configuration is the operator's 503 app_misconfigured, never the runtime's bare 500", async () => {
    await connectUser("surf-4", DEV);
    const cap = await capability("surf-4");
    const broken = async (patch: Partial<Env>, url: string) => {
      const res = await worker.fetch(new Request(url, { headers: { authorization: `token ${cap}` } }) as Request<unknown, IncomingRequestCfProperties>, { ...env, ...patch } as Env);
      return { status: res.status, reason: ((await res.json()) as { reason?: string }).reason };
    };
    // The capability's key is read only when one is presented, on the GitHub-shaped surface.
    expect(await broken({ STATE_SIGNING_KEY: "" }, `https://${AGENT_HOST}/api/v3/repos/acme/app`)).toEqual({ status: 503, reason: "app_misconfigured" });
    // The configuration itself is read before any route is chosen.
    expect(await broken({ GITHUB_APPS: "{not json" }, `https://${AGENT_HOST}/api/v3/user`)).toEqual({ status: 503, reason: "app_misconfigured" });
    expect(await broken({ GITHUB_APPS: "{not json" }, "https://broker.test/healthz")).toEqual({ status: 503, reason: "app_misconfigured" });
  });

  it("is off where AGENT_HOST is another host: the public paths stay as they are", async () => {
    const res = await exports.default.fetch(new Request("https://elsewhere.test/api/v3/user"));
    expect(res.status).toBe(404);
  });
});
