/**
 * Hostile input, generated: every public and internal route gets malformed and huge JSON,
 * odd unicode and path tricks, forged and replayed states and signatures, wrong methods,
 * missing headers. Whatever comes in: no 5xx, every error a contract reason, no secret
 * echoed, and no stored byte changed by a rejected request.
 */
import { sign } from "@octokit/webhooks-methods";
import { listDurableObjectIds, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import fc from "fast-check";
import { beforeAll, describe, expect, it } from "vitest";
import { CAPABILITY_REASON_STATUS, REASON_STATUS } from "../src/contract";
import { APPS, INTERNAL_API_TOKEN, KEY_K1, KEY_K2, RETURN_ORIGIN, STATE_SIGNING_KEY } from "./support/env";
import { authorizeAs, confirmConnect, connectUser, dumpStorage, emulator, flushEvents, publicFetch } from "./support/helpers";

const VICTIM = "fuzz-victim";
const SECRETS = [INTERNAL_API_TOKEN, STATE_SIGNING_KEY, KEY_K1, KEY_K2, APPS.standard.clientSecret, APPS.lite.clientSecret, APPS.standard.webhookSecret];
const REASONS = new Set([...Object.keys(REASON_STATUS), ...Object.keys(CAPABILITY_REASON_STATUS)]);
const RUNS = 150;

const trickySegment = fc.oneof(
  fc.string({ maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 20 }),
  fc.constantFrom("..", "%2e%2e", "a%2Fb", "%00", "%", "%zz", "..%2F..", "ＡＢ", "\u202e", "a b", "x".repeat(200), VICTIM, `${VICTIM}%2F..`),
  fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,20}$/),
);
const method = fc.constantFrom("GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD");
const body = fc.oneof(
  fc.constant(undefined),
  fc.json(),
  fc.string({ maxLength: 200 }),
  fc.record({
    appType: fc.oneof(fc.constantFrom("standard", "lite", "Standard", "", "__proto__"), fc.string()),
    repository: fc.oneof(fc.constantFrom("acme/app", "acme/../app", "https://github.emulator/acme/app.git", "acme/app?x"), fc.string()),
    permission: fc.oneof(fc.constantFrom("push", "pull", "admin"), fc.anything()),
    minValiditySeconds: fc.oneof(fc.integer(), fc.double(), fc.string()),
    returnTo: fc.oneof(fc.constantFrom(`${RETURN_ORIGIN}/x`, "javascript:alert(1)", "https://evil.example"), fc.string()),
    token: fc.string(),
    ticket: fc.oneof(fc.string(), fc.stringMatching(/^[A-Za-z0-9_-]{43}$/), fc.anything()),
    selectAccount: fc.oneof(fc.boolean(), fc.anything()),
  }, { requiredKeys: [] }).map((o) => JSON.stringify(o)),
  fc.constant(JSON.stringify({ pad: "x".repeat(20_000) })),
);
const tail = fc.constantFrom("token", "token/rejected", "connection", "connect", "connect/confirm", "", "x", "token/../connection", "capabilities", "capabilities/s1");

function b64url(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

async function expectContractAnswer(res: Response, label: string): Promise<string> {
  const text = await res.text();
  expect(res.status, label).toBeLessThan(500);
  for (const secret of SECRETS) expect(text.includes(secret), `${label} echoes a secret`).toBe(false);
  if (text && res.headers.get("content-type")?.includes("application/json")) {
    const parsed = JSON.parse(text) as { ok?: boolean; reason?: string };
    if (parsed.ok === false) expect(REASONS.has(parsed.reason!), `${label}: reason ${parsed.reason}`).toBe(true);
  }
  return text;
}

beforeAll(async () => {
  await emulator.reset();
  await connectUser(VICTIM, { id: 8080, login: "victim", name: null, repos: { "acme/app": "push" } });
  // Let the connect's event go out now, so the alarm changes nothing during the properties.
  await runInDurableObject(env.USER_ACTOR.get(env.USER_ACTOR.idFromName(VICTIM)), (_i, state) => state.storage.sql.exec("UPDATE event_outbox SET next_attempt_at = 0"));
  await runDurableObjectAlarm(env.USER_ACTOR.get(env.USER_ACTOR.idFromName(VICTIM)));
});

describe("fuzz", () => {
  it("internal API: any method, path, body → a contract answer; a rejected request changes nothing stored", async () => {
    await fc.assert(
      fc.asyncProperty(method, fc.boolean(), trickySegment, tail, body, fc.boolean(), async (m, targetVictim, seg, t, b, queryApp) => {
        const userId = targetVictim ? VICTIM : seg;
        if (targetVictim) await flushEvents(VICTIM); // an earlier accepted request's event goes out first
        const before = targetVictim ? await dumpStorage(VICTIM) : "";
        const path = `/v1/users/${userId}/${t}${queryApp ? "?appType=standard" : ""}`;
        const res = await publicFetch(path, {
          method: m,
          headers: { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" },
          body: m === "GET" || m === "HEAD" ? undefined : b,
        });
        const label = `${m} ${path}`;
        await expectContractAnswer(res, label);
        if (targetVictim && res.status >= 400) expect(await dumpStorage(VICTIM), `${label} changed storage`).toBe(before);
      }),
      { numRuns: RUNS },
    );
  });

  it("public URL: /v1 without the right bearer is 401, unknown paths 404, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(method, fc.array(trickySegment, { maxLength: 4 }), fc.option(fc.string()), async (m, segs, auth) => {
        const headers: Record<string, string> = {};
        if (auth !== null) headers.authorization = auth;
        const res = await publicFetch(`/v1/${segs.join("/")}`, { method: m, headers });
        await expectContractAnswer(res, `v1 ${segs.join("/")}`);
        // Dot segments can resolve the path out of /v1 (then it is simply not found).
        const underV1 = new URL(`/v1/${segs.join("/")}`, "https://x").pathname.startsWith("/v1/");
        if (auth !== `Bearer ${INTERNAL_API_TOKEN}`) expect(res.status).toBe(underV1 ? 401 : 404);
        const other = await publicFetch(`/${segs.join("/")}x`, { method: m });
        expect(other.status).toBeLessThan(500);
      }),
      { numRuns: RUNS },
    );
  });

  it("webhooks: random bodies, events and signatures → 400/401/404, never accepted without a valid signature", async () => {
    const before = await dumpStorage(VICTIM);
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom("standard", "lite", "nope", "%2e%2e"),
        fc.oneof(fc.json(), fc.string(), fc.constant(JSON.stringify({ action: "revoked", sender: { id: 8080 } }))),
        fc.oneof(fc.constant(null), fc.string(), fc.string({ unit: fc.constantFrom(..."0123456789abcdef"), minLength: 64, maxLength: 64 }).map((h) => `sha256=${h}`)),
        fc.option(fc.constantFrom("github_app_authorization", "ping", "push", "")),
        async (appType, payload, signature, event) => {
          const headers: Record<string, string> = {};
          if (signature !== null) headers["x-hub-signature-256"] = signature;
          if (event !== null) headers["x-github-event"] = event;
          const res = await publicFetch(`/webhooks/github/${appType}`, { method: "POST", headers, body: payload });
          await expectContractAnswer(res, `webhook ${appType}`);
          expect([400, 401, 404]).toContain(res.status);
        },
      ),
      { numRuns: RUNS },
    );
    // A correctly signed body with one byte changed is refused too.
    const payload = JSON.stringify({ action: "revoked", sender: { id: 8080 } });
    const signature = await sign(APPS.standard.webhookSecret, payload);
    await fc.assert(
      fc.asyncProperty(fc.nat({ max: payload.length - 1 }), fc.string({ minLength: 1, maxLength: 1 }), async (i, c) => {
        fc.pre(payload[i] !== c);
        const tampered = payload.slice(0, i) + c + payload.slice(i + 1);
        const res = await publicFetch("/webhooks/github/standard", {
          method: "POST",
          headers: { "x-hub-signature-256": signature, "x-github-event": "github_app_authorization" },
          body: tampered,
        });
        expect(res.status).toBe(401);
      }),
      { numRuns: 60 },
    );
    expect(await dumpStorage(VICTIM)).toBe(before);
  });

  it("git and REST proxies: any path, method and credentials → a stable reason, never a 5xx", async () => {
    await fc.assert(
      fc.asyncProperty(
        method,
        fc.constantFrom("/git/", "/api/repos/"),
        fc.array(trickySegment, { maxLength: 5 }),
        fc.option(fc.oneof(fc.string(), fc.constant("gcap1.ZnV6ei12aWN0aW0.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"))),
        async (m, prefix, segs, cap) => {
          const headers: Record<string, string> = {};
          if (cap !== null) headers.authorization = prefix === "/git/" ? `Basic ${btoa(`x:${cap.replace(/[^\x00-\xff]/g, "")}`)}` : `Bearer ${cap}`;
          const res = await publicFetch(`${prefix}${segs.join("/")}`, { method: m, headers, body: m === "GET" || m === "HEAD" ? undefined : "0000" });
          const text = await res.text();
          expect(res.status).toBeLessThan(500);
          expect([401, 403, 404, 410]).toContain(res.status);
          // Dot segments can resolve the path out of the proxy (then it is simply not found).
          const inProxy = new URL(`${prefix}${segs.join("/")}`, "https://x").pathname.startsWith(prefix);
          if (m !== "HEAD" && inProxy) expect(text).toMatch(/invalid_capability|expired_capability|repository_mismatch|insufficient_permission|invalid_upstream_request|source_unavailable/);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it("connect/confirm: guessed, mutated and foreign tickets → invalid_ticket, nothing stored changes, no GitHub call", async () => {
    await emulator.addUser({ id: 9191, login: "ticketed", name: null, repos: {} });
    const real = new URL(`https://x${await authorizeAs("fuzz-ticket", 9191)}`);
    const back = new URL((await publicFetch(real.pathname + real.search)).headers.get("location")!);
    const ticket = back.searchParams.get("connect_ticket")!;
    const before = await dumpStorage("fuzz-ticket");
    await flushEvents(VICTIM);
    const victimBefore = await dumpStorage(VICTIM);
    const exchanges = (await emulator.stats()).counts.exchange;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.stringMatching(/^[A-Za-z0-9_-]{43}$/),
          fc.tuple(fc.nat({ max: ticket.length - 1 }), fc.constantFrom(..."ABCxyz019-_")).map(([i, c]) => ticket.slice(0, i) + c + ticket.slice(i + 1)),
          fc.anything(),
        ),
        fc.constantFrom("fuzz-ticket", VICTIM, "someone-else"),
        async (t, user) => {
          fc.pre(t !== ticket);
          const res = await publicFetch(`/v1/users/${user}/connect/confirm`, {
            method: "POST",
            headers: { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" },
            body: JSON.stringify({ ticket: t }),
          });
          // A label for any value fast-check makes (`String` throws on `{toString: false}`).
          await expectContractAnswer(res, `confirm ${typeof t === "string" ? t : JSON.stringify(t, (_k, v) => (typeof v === "bigint" ? String(v) : v)) ?? typeof t}`);
          expect(res.status).toBe(400);
        },
      ),
      // Pinned: a value fast-check once made that the test itself could not label.
      { numRuns: RUNS, examples: [[{ toString: false }, "fuzz-ticket"]] },
    );
    // Nothing above was a ticket the broker issued: the real one is still there.
    expect(await dumpStorage("fuzz-ticket")).toBe(before);
    // The real ticket confirmed by another user is refused too, and spent for its owner.
    const foreign = await publicFetch(`/v1/users/${VICTIM}/connect/confirm`, {
      method: "POST",
      headers: { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ ticket }),
    });
    expect(foreign.status).toBe(400);
    expect((await confirmConnect("fuzz-ticket", ticket)).body.reason).toBe("invalid_ticket");
    expect(await dumpStorage(VICTIM)).toBe(victimBefore);
    expect((await emulator.stats()).counts.exchange).toBe(exchanges);
  });

  it("forged capabilities wake no Durable Object and create no storage", async () => {
    const objectsBefore = (await listDurableObjectIds(env.USER_ACTOR)).length;
    await fc.assert(
      fc.asyncProperty(
        fc.stringMatching(/^[A-Za-z0-9_.:@-]{1,40}$/),
        fc.uint8Array({ minLength: 32, maxLength: 32 }),
        async (userId, secret) => {
          const forged = `gcap1.${b64url(new TextEncoder().encode(userId))}.${b64url(secret)}`;
          const res = await publicFetch("/git/acme/app.git/info/refs?service=git-upload-pack", { headers: { authorization: `Basic ${btoa(`x:${forged}`)}` } });
          expect(res.status).toBe(401);
          expect(await res.text()).toMatch(/^invalid_capability/);
        },
      ),
      { numRuns: 60 },
    );
    expect((await listDurableObjectIds(env.USER_ACTOR)).length).toBe(objectsBefore);
    // A real write does show up in this count (so the count can see a new database)...
    await publicFetch("/v1/users/now-connecting/connect", {
      method: "POST",
      headers: { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ appType: "standard", returnTo: `${RETURN_ORIGIN}/x` }),
    });
    expect((await listDurableObjectIds(env.USER_ACTOR)).length).toBe(objectsBefore + 1);
    // ...and an authenticated lookup for a user who never connected creates no schema.
    await publicFetch("/v1/users/never-connected/connection?appType=standard", { headers: { authorization: `Bearer ${INTERNAL_API_TOKEN}` } });
    await publicFetch("/v1/users/never-connected/token", {
      method: "POST",
      headers: { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ appType: "standard", repository: "acme/app" }),
    });
    const tables = await runInDurableObject(env.USER_ACTOR.get(env.USER_ACTOR.idFromName("never-connected")), (_i, state) =>
      state.storage.sql.exec("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%'").toArray(),
    );
    expect(tables).toEqual([]);
  });

  it("OAuth callback: forged, mutated and replayed states never connect anyone and never leak the code", async () => {
    await emulator.addUser({ id: 9090, login: "fuzzed", name: null, repos: {} });
    const real = new URL(`https://x${await authorizeAs("fuzz-cb", 9090)}`);
    const state = real.searchParams.get("state")!;
    await fc.assert(
      fc.asyncProperty(
        fc.oneof(
          fc.string(),
          fc.tuple(fc.nat({ max: state.length - 1 }), fc.string({ minLength: 1, maxLength: 1 })).map(([i, c]) => state.slice(0, i) + c + state.slice(i + 1)),
          fc.constant(state.split(".")[0]!),
        ),
        fc.option(fc.string({ minLength: 1 })),
        fc.option(fc.string({ minLength: 1 })),
        async (s, code, error) => {
          fc.pre(s !== state);
          const q = new URLSearchParams({ state: s });
          if (code !== null) q.set("code", code);
          if (error !== null) q.set("error", error);
          const res = await publicFetch(`/oauth/callback?${q}`);
          expect([302, 400]).toContain(res.status);
          const location = res.headers.get("location");
          if (location) {
            expect(new URL(location).origin).toBe(RETURN_ORIGIN);
            if (code && code.length > 3) expect(location).not.toContain(encodeURIComponent(code));
          }
        },
      ),
      { numRuns: RUNS },
    );
    expect((await publicFetch(real.pathname + real.search)).headers.get("location")).toContain("github_connect=confirm");
    // Replayed, the real one is refused.
    expect((await publicFetch(real.pathname + real.search)).headers.get("location")).toContain("reason=invalid_state");
  });

  it("a state whose MAC is spelled another way (the same bytes, not canonical base64url) is refused and spends nothing", async () => {
    // The fuzz above found it: the last character of a base64url string carries unused bits, so
    // another character can decode to the same MAC. It must not pass for the real state.
    await emulator.addUser({ id: 9092, login: "spelled", name: null, repos: {} });
    const real = new URL(`https://x${await authorizeAs("fuzz-spelling", 9092)}`);
    const [payload, mac] = real.searchParams.get("state")!.split(".") as [string, string];
    const ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    const variant = `${payload}.${mac.slice(0, -1)}${ALPHABET[ALPHABET.indexOf(mac.at(-1)!) ^ 1]}`;
    const spelled = new URL(real);
    spelled.searchParams.set("state", variant);
    const res = await publicFetch(spelled.pathname + spelled.search);
    expect(res.status).toBe(400);
    expect(res.headers.get("location")).toBeNull();
    expect((await publicFetch(real.pathname + real.search)).headers.get("location")).toContain("github_connect=confirm");
  });
});
