/**
 * The request parsers (src/http/requests.ts): every field's failure has the contract's reason
 * and message, and HTTP, RPC and the token routes' one-pass path all give the same answer,
 * because they share one parser per request.
 */
import { env, exports } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import type { Failure } from "../src/contract";
import type { BrokerApi } from "../src/index";
import { publicRouter } from "../src/http/routes";
import { INTERNAL_API_TOKEN, PUBLIC_BASE_URL } from "./support/env";
import { callApi, emulator } from "./support/helpers";

type Rpc = { [K in keyof BrokerApi]: BrokerApi[K] extends (...args: infer A) => infer R ? (...args: A) => Promise<Awaited<R>> : never };

interface Case {
  name: string;
  method: "GET" | "POST" | "DELETE";
  path: string;
  body?: unknown;
  rpc: (api: Rpc) => Promise<unknown>;
  reason: Failure["reason"];
  message: string | RegExp;
}

const NAME_RULE = "1-128 characters of A-Z a-z 0-9 _ . : @ -";
const GOOD = { appType: "standard", repository: "acme/app" };

/** One user-token case: the body differs from a good one in `change`. */
function token(name: string, change: Record<string, unknown>, message: string | RegExp, userId = "rq-1"): Case {
  const body = { ...GOOD, ...change };
  const path = `/users/${encodeURIComponent(userId)}/token`;
  return { name: `token: ${name}`, method: "POST", path, body, rpc: (api) => api.getToken(userId, body as never), reason: "invalid_request", message };
}

function capability(name: string, change: Record<string, unknown>, message: string | RegExp): Case {
  const body = { ...GOOD, sessionId: "s-1", ...change };
  return { name: `capability: ${name}`, method: "POST", path: "/users/rq-1/capabilities", body, rpc: (api) => api.issueCapability("rq-1", body as never), reason: "invalid_request", message };
}

function installation(name: string, change: Record<string, unknown>, message: string | RegExp): Case {
  const body = { ...GOOD, ...change };
  return { name: `installation token: ${name}`, method: "POST", path: "/installations/token", body, rpc: (api) => api.getInstallationToken(body as never), reason: "invalid_request", message };
}

const CASES: Case[] = [
  token("user id", {}, `userId must be ${NAME_RULE}`, "a b"),
  token("appType", { appType: "nope" }, /^appType must be one of: standard, /),
  token("repository", { repository: "acme/.." }, "repository must be owner/name or https://<github host>/owner/name(.git)"),
  token("GitLab repository", { appType: "gitlab", repository: "x" }, "repository must be group/.../project or https://<gitlab host>/group/.../project(.git)"),
  token("permission", { permission: "admin" }, 'permission must be "push" or "pull"'),
  token("minValiditySeconds", { minValiditySeconds: 3601 }, "minValiditySeconds must be an integer from 0 to 3600"),
  token("permissions without scope", { permissions: { contents: "read" } }, 'permissions needs scope: "repository"'),
  token("scope", { scope: "org" }, 'scope must be "repository" (or absent)'),
  token("scoped permissions", { scope: "repository", permissions: { contents: "admin" } }, 'permissions must be an object of 1-30 GitHub permission names to "read" or "write"'),
  token("unknown scoped permission", { scope: "repository", permissions: { contentz: "read" } }, 'permissions: unknown repository permission "contentz"'),
  token("scope on GitLab", { appType: "gitlab", repository: "grp/proj", scope: "repository" }, 'scope "repository" is a GitHub App feature'),
  token("fallback", { fallback: "user" }, 'fallback must be "app"'),
  token("fallback on GitLab", { appType: "gitlab", repository: "grp/proj", fallback: "app" }, 'fallback "app" is a GitHub App feature'),
  token("several bad fields: the first in the contract's order", { repository: "-x/y", permission: "admin", fallback: 1 }, "repository must be owner/name or https://<github host>/owner/name(.git)"),
  {
    name: "rejected token",
    method: "POST",
    path: "/users/rq-1/token/rejected",
    body: { appType: "standard", token: "" },
    rpc: (api) => api.reportRejectedToken("rq-1", { appType: "standard", token: "" }),
    reason: "invalid_request",
    message: "token must be the access token the provider (GitHub or GitLab) refused",
  },
  {
    name: "connection: appType",
    method: "GET",
    path: "/users/rq-1/connection?appType=nope",
    rpc: (api) => api.getConnection("rq-1", "nope"),
    reason: "invalid_request",
    message: /^appType must be one of: /,
  },
  {
    name: "disconnect: user id",
    method: "DELETE",
    path: "/users/a%20b/connection?appType=standard",
    rpc: (api) => api.disconnect("a b", "standard"),
    reason: "invalid_request",
    message: `userId must be ${NAME_RULE}`,
  },
  {
    name: "connect: returnTo",
    method: "POST",
    path: "/users/rq-1/connect",
    body: { appType: "standard", returnTo: "https://evil.example/back" },
    rpc: (api) => api.startConnect("rq-1", { appType: "standard", returnTo: "https://evil.example/back" }),
    reason: "invalid_request",
    message: "returnTo must be an absolute URL on an origin in ALLOWED_RETURN_ORIGINS",
  },
  {
    name: "connect: selectAccount",
    method: "POST",
    path: "/users/rq-1/connect",
    body: { appType: "standard", returnTo: `${env.ALLOWED_RETURN_ORIGINS.split(",")[0]}/back`, selectAccount: "yes" },
    rpc: (api) => api.startConnect("rq-1", { appType: "standard", returnTo: `${env.ALLOWED_RETURN_ORIGINS.split(",")[0]}/back`, selectAccount: "yes" as never }),
    reason: "invalid_request",
    message: "selectAccount must be true or false",
  },
  {
    name: "confirm: a ticket that is not a string is refused as a forged one is",
    method: "POST",
    path: "/users/rq-1/connect/confirm",
    body: { ticket: 42 },
    rpc: (api) => api.confirmConnect("rq-1", { ticket: 42 as never }),
    reason: "invalid_ticket",
    message: "The connect ticket is unknown, used, expired, or was issued for another user.",
  },
  capability("sessionId", { sessionId: "a/b" }, `sessionId must be ${NAME_RULE}`),
  capability("ttlSeconds", { ttlSeconds: 0 }, "ttlSeconds must be an integer from 1 to 28800"),
  capability("branches", { branches: ["a..b"] }, /^branches must be an array of 1-32 ref patterns/),
  capability("allowDelete", { allowDelete: "yes" }, "allowDelete must be true or false"),
  capability("identity", { identity: "bot" }, 'identity must be "user", "app" or "user_or_app"'),
  capability("the App's identity on GitLab", { appType: "gitlab", repository: "grp/proj", identity: "app" }, `identity "app" needs a GitHub App's installation; gitlab is not one`),
  capability("containerId", { containerId: "" }, `containerId must be ${NAME_RULE}`),
  {
    name: "revoke: sessionId",
    method: "DELETE",
    path: "/users/rq-1/capabilities/a%20b",
    rpc: (api) => api.revokeCapabilities("rq-1", "a b"),
    reason: "invalid_request",
    message: `sessionId must be ${NAME_RULE}`,
  },
  {
    name: "audit: limit",
    method: "GET",
    path: "/users/rq-1/audit?limit=501",
    rpc: (api) => api.getAudit("rq-1", { limit: 501 }),
    reason: "invalid_request",
    message: "limit must be an integer from 1 to 500",
  },
  {
    name: "audit: before",
    method: "GET",
    path: "/users/rq-1/audit?before=1.5",
    rpc: (api) => api.getAudit("rq-1", { before: 1.5 }),
    reason: "invalid_request",
    message: "before must be the nextBefore of a previous page",
  },
  {
    name: "delete user: user id",
    method: "DELETE",
    path: `/users/${"x".repeat(129)}`,
    rpc: (api) => api.deleteUser("x".repeat(129)),
    reason: "invalid_request",
    message: `userId must be ${NAME_RULE}`,
  },
  installation("not a GitHub App", { appType: "gitlab", repository: "grp/proj" }, "gitlab is not a GitHub App: installation tokens are a GitHub App feature"),
  installation("repository", { repository: "acme" }, "repository must be owner/name or https://<github host>/owner/name(.git)"),
  installation("permissions", { permissions: { contents: "admin" } }, 'permissions must be an object of GitHub repository permission names to "read" or "write", e.g. {"contents": "write"}'),
  installation("unknown permission", { permissions: { contentz: "read" } }, 'permissions: unknown repository permission "contentz"'),
  installation("minValiditySeconds", { minValiditySeconds: -1 }, "minValiditySeconds must be an integer from 0 to 3600"),
];

beforeEach(async () => {
  await emulator.reset();
});

describe("one parser per request", () => {
  it("every field's failure has the contract's reason and message, the same over HTTP and RPC", async () => {
    const api = (exports as unknown as { BrokerApi: Rpc }).BrokerApi;
    for (const c of CASES) {
      const http = await callApi(c.method, c.path, c.body);
      expect(http.status, c.name).toBe(400);
      expect(http.body, c.name).toMatchObject({ ok: false, reason: c.reason });
      if (typeof c.message === "string") expect(http.body.message, c.name).toBe(c.message);
      else expect(http.body.message, c.name).toMatch(c.message);
      expect(await c.rpc(api), c.name).toEqual(http.body);
    }
  });

  it("the token routes' one-pass path answers every parser failure as the routers do", async () => {
    const { default: entry } = await import("../src/index");
    const headers = { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" };
    const hot = CASES.filter((c) => c.method === "POST" && /^\/(users\/[^/]+\/token|installations\/token)$/.test(c.path));
    expect(hot.length).toBeGreaterThan(15);
    for (const c of hot) {
      const init = { method: "POST", headers, body: JSON.stringify(c.body) };
      const direct = await entry.fetch(new Request(`${PUBLIC_BASE_URL}/v1${c.path}`, init) as Request<unknown, IncomingRequestCfProperties>, env);
      const routed = await publicRouter.fetch(new Request(`${PUBLIC_BASE_URL}/v1${c.path}`, init), env);
      expect(direct.status, c.name).toBe(routed.status);
      expect(await direct.text(), c.name).toBe(await routed.text());
    }
  });
});
