/** Bad input gets the contract's 4xx and reason, and changes nothing stored. */
import { beforeEach, describe, expect, it } from "vitest";
import { env } from "cloudflare:workers";
import { publicRouter } from "../src/http/routes";
import { INTERNAL_API_TOKEN, PUBLIC_BASE_URL, RETURN_ORIGIN } from "./support/env";
import { callApi, connectUser, dumpStorage, emulator, publicFetch } from "./support/helpers";

const GH = { id: 5, login: "valid", name: null, repos: { "acme/app": "push" as const } };

beforeEach(async () => {
  await emulator.reset();
});

describe("bad input", () => {
  it("malformed JSON, wrong shapes, oversized bodies, bad fields: 400 invalid_request, storage untouched", async () => {
    await connectUser("v-1", GH);
    const before = await dumpStorage("v-1");
    const refreshesBefore = (await emulator.stats()).counts;
    const cases: [string, unknown][] = [
      ["not json", "{oops"],
      ["array body", "[]"],
      ["string body", '"x"'],
      ["oversized body", JSON.stringify({ appType: "standard", repository: "acme/app", pad: "x".repeat(17 * 1024) })],
      ["unknown appType", { appType: "enterprise", repository: "acme/app" }],
      ["missing repository", { appType: "standard" }],
      ["dot-dot repository", { appType: "standard", repository: "../etc/passwd" }],
      ["dot-dot name", { appType: "standard", repository: "acme/.." }],
      ["three segments", { appType: "standard", repository: "acme/app/extra" }],
      ["encoded slash", { appType: "standard", repository: "acme%2Fapp" }],
      ["other host", { appType: "standard", repository: "https://evil.example/acme/app" }],
      ["userinfo", { appType: "standard", repository: "http://x@github.emulator/acme/app" }],
      ["encoded dot segment", { appType: "standard", repository: "http://github.emulator/acme/%2e%2e/app" }],
      ["query string", { appType: "standard", repository: "http://github.emulator/acme/app?x=1" }],
      ["bad owner", { appType: "standard", repository: "-acme/app" }],
      ["unicode", { appType: "standard", repository: "acmé/app" }],
      ["bad permission", { appType: "standard", repository: "acme/app", permission: "admin" }],
      ["minValidity too big", { appType: "standard", repository: "acme/app", minValiditySeconds: 3601 }],
      ["minValidity negative", { appType: "standard", repository: "acme/app", minValiditySeconds: -1 }],
      ["minValidity not int", { appType: "standard", repository: "acme/app", minValiditySeconds: 1.5 }],
    ];
    for (const [name, body] of cases) {
      const res = await callApi("POST", "/users/v-1/token", body);
      expect(res.status, name).toBe(400);
      expect(res.body, name).toMatchObject({ ok: false, reason: "invalid_request" });
      expect(typeof res.body.message, name).toBe("string");
    }
    expect(await dumpStorage("v-1")).toBe(before);
    expect((await emulator.stats()).counts).toEqual(refreshesBefore);
  });

  it("bad user ids are 400, including path tricks", async () => {
    for (const id of ["a%2F..%2Fb", "x".repeat(129), "bad%20space", "%E2%98%83", "a%00b"]) {
      const res = await callApi("POST", `/users/${id}/token`, { appType: "standard", repository: "acme/app" });
      expect(res.status, id).toBe(400);
      expect(res.body.reason, id).toBe("invalid_request");
    }
    const ok = await callApi("GET", `/users/${encodeURIComponent("org:42@team.x_y-z")}/connection?appType=standard`);
    expect(ok.status).toBe(200);
  });

  it("unknown appType on the connection routes is 400", async () => {
    expect((await callApi("GET", "/users/v-2/connection?appType=nope")).body.reason).toBe("invalid_request");
    expect((await callApi("GET", "/users/v-2/connection")).status).toBe(400);
    expect((await callApi("DELETE", "/users/v-2/connection?appType=nope")).status).toBe(400);
  });

  it("/v1 on the public URL needs the bearer token: missing or wrong is 401", async () => {
    const body = JSON.stringify({ appType: "standard", repository: "acme/app" });
    const none = await publicFetch("/v1/users/v-3/token", { method: "POST", body });
    expect(none.status).toBe(401);
    expect(await none.json()).toMatchObject({ ok: false, reason: "unauthorized" });
    for (const header of [`Bearer ${INTERNAL_API_TOKEN}x`, `Basic ${INTERNAL_API_TOKEN}`, `Bearer ${INTERNAL_API_TOKEN.slice(0, -1)}`]) {
      const res = await publicFetch("/v1/users/v-3/token", { method: "POST", body, headers: { authorization: header } });
      expect(res.status, header).toBe(401);
    }
  });

  it("without INTERNAL_API_TOKEN, /v1 on the public URL does not exist (404), with or without a bearer", async () => {
    const closed = { ...env, INTERNAL_API_TOKEN: "" } as Env;
    for (const authorization of [undefined, `Bearer ${INTERNAL_API_TOKEN}`, "Bearer "]) {
      const headers: Record<string, string> = authorization ? { authorization } : {};
      const res = await publicRouter.fetch(new Request(`${PUBLIC_BASE_URL}/v1/users/v-5/connection?appType=standard`, { headers }), closed);
      expect(res.status, String(authorization)).toBe(404);
    }
    const health = await publicRouter.fetch(new Request(`${PUBLIC_BASE_URL}/healthz`), closed);
    expect(health.status).toBe(200);
  });

  it("PUBLIC_BASE_URL is required and must be an origin: without it a connect is 503 app_misconfigured, never a callback on another host", async () => {
    const bearer = { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" };
    const body = JSON.stringify({ appType: "standard", returnTo: `${RETURN_ORIGIN}/done` });
    for (const value of [undefined, "", "not a url", "ftp://broker.test", "https://broker.test/?x=1", "https://user:pw@broker.test"]) {
      const broken = { ...env, PUBLIC_BASE_URL: value } as Env;
      const res = await publicRouter.fetch(new Request(`${PUBLIC_BASE_URL}/v1/users/v-url/connect`, { method: "POST", headers: bearer, body }), broken);
      expect(res.status, String(value)).toBe(503);
      // The operator's detail goes to the log; the caller learns only that the broker is misconfigured.
      expect(((await res.json()) as { reason: string }).reason, String(value)).toBe("app_misconfigured");
    }
  });

  it("the token routes' one-pass path answers exactly as the routers do, refusals included", async () => {
    await connectUser("v-6", GH);
    const open = env;
    const closed = { ...env, INTERNAL_API_TOKEN: "" } as Env;
    const bearer = { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" };
    const good = JSON.stringify({ appType: "standard", repository: "acme/app" });
    const cases: [string, string, RequestInit, Env][] = [
      ["granted", "/v1/users/v-6/token", { method: "POST", headers: bearer, body: good }, open],
      ["trailing slash", "/v1/users/v-6/token/", { method: "POST", headers: bearer, body: good }, open],
      ["no bearer", "/v1/users/v-6/token", { method: "POST", body: good }, open],
      ["wrong bearer", "/v1/users/v-6/token", { method: "POST", headers: { ...bearer, authorization: "Bearer nope" }, body: good }, open],
      ["no INTERNAL_API_TOKEN", "/v1/users/v-6/token", { method: "POST", headers: bearer, body: good }, closed],
      ["not json", "/v1/users/v-6/token", { method: "POST", headers: bearer, body: "{oops" }, open],
      ["undecodable user id", "/v1/users/%E0%A4%A/token", { method: "POST", headers: bearer, body: good }, open],
      ["no repository access", "/v1/users/v-6/token", { method: "POST", headers: bearer, body: JSON.stringify({ appType: "standard", repository: "acme/other" }) }, open],
      ["GET", "/v1/users/v-6/token", { method: "GET", headers: bearer }, open],
      ["installation token", "/v1/installations/token", { method: "POST", headers: bearer, body: good }, open],
      ["installation token, no bearer", "/v1/installations/token", { method: "POST", body: good }, open],
      ["installation token, bad body", "/v1/installations/token/", { method: "POST", headers: bearer, body: "[]" }, open],
    ];
    const { default: entry } = await import("../src/index");
    for (const [name, path, init, which] of cases) {
      const direct = await entry.fetch(new Request(`${PUBLIC_BASE_URL}${path}`, init) as Request<unknown, IncomingRequestCfProperties>, which);
      const routed = await publicRouter.fetch(new Request(`${PUBLIC_BASE_URL}${path}`, init), which);
      expect(direct.status, name).toBe(routed.status);
      expect([...direct.headers].filter(([k]) => k !== "date"), name).toEqual([...routed.headers].filter(([k]) => k !== "date"));
      const [a, b] = [await direct.text(), await routed.text()];
      // A grant's remaining life may tick between the two answers.
      expect(a.replace(/"expiresInSeconds":\d+/, ""), name).toBe(b.replace(/"expiresInSeconds":\d+/, ""));
    }
  });

  it("unknown routes and methods under /v1 answer with a contract body, never a 500", async () => {
    const res = await callApi("PATCH", "/users/v-4/token", {});
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ ok: false, reason: "invalid_request" });
    expect((await callApi("GET", "/nothing")).status).toBe(404);
    expect((await publicFetch("/nothing")).status).toBe(404);
  });
});
