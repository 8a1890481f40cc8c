/**
 * `POST /v1/installations/token`: App installation tokens minted by the broker, scoped to one
 * repository, cached per (repository, permissions), one mint for any number of callers, and
 * dropped by the installation webhooks.
 */
import { reset } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import type { InstallationTokenBinding } from "../src/client";
import { InstallationTokenClient } from "../src/client";
import { ConfigError } from "../src/crypto";
import { toPkcs8Pem } from "../src/installations/app-jwt";
import { APPS, EMULATOR_API_URL, EMULATOR_URL, INTERNAL_API_TOKEN } from "./support/env";
import { callApi, connectUser, emulator, publicFetch, requestToken } from "./support/helpers";
import {
  apps,
  deliver,
  installationRows,
  installationToken,
  setInstallationTokenExpiry,
} from "./support/installations";

const PERMISSIONS = { contents: "write", pull_requests: "write", issues: "write", metadata: "read" } as const;
const BOT = { name: "broker-standard[bot]", email: "41898282+broker-standard[bot]@users.noreply.github.com" };

/** Installs the standard App on `account` for `repositories`. */
async function install(id: number, account: string, repositories: string[], permissions: Record<string, "read" | "write"> = { ...PERMISSIONS }) {
  await apps.install({ id, account, repositories, permissions });
}

beforeEach(async () => {
  await emulator.reset();
});

afterEach(async () => {
  vi.restoreAllMocks();
  await reset();
});

describe("installation token", () => {
  it("is minted for one repository with the default permissions, the bot's identity and the broker's expiry", async () => {
    await install(7001, "acme", ["acme/app", "acme/other"]);
    const before = Date.now();
    const res = await installationToken({ repository: "acme/app" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      ok: true,
      identity: "app",
      installationId: "7001",
      repository: "acme/app",
      permissions: { contents: "write", pull_requests: "write" },
      committer: BOT,
    });
    // Never more than the default unless asked: `issues` is held by the App, not handed out.
    expect(Object.keys(res.body.permissions).sort()).toEqual(["contents", "pull_requests"]);
    expect(res.body.token).toMatch(/^ghs_/);
    expect(res.body.token.length).toBeGreaterThan(40);
    expect(res.body.expiresAt).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/);
    expect(res.body.expiresInSeconds).toBeGreaterThan(3590);
    expect(res.body.expiresInSeconds).toBeLessThanOrEqual(3600);
    const state = (await apps.tokenState(res.body.token)).state!;
    expect(state).toMatchObject({ alive: true, installationId: 7001, repositories: ["acme/app"] });
    expect(state.permissions).toEqual({ contents: "write", pull_requests: "write" });
    // The App JWT: iss the client id, iat 60 s back, exp at most 10 minutes after iat.
    const jwt = (await apps.stats()).lastJwt!;
    expect(jwt.iss).toBe(APPS.standard.clientId);
    expect(Math.abs(jwt.iat - (Math.floor(before / 1000) - 60))).toBeLessThanOrEqual(2);
    expect(jwt.exp - jwt.iat).toBeLessThanOrEqual(600);
    expect(jwt.exp).toBeGreaterThan(Math.floor(Date.now() / 1000));
  });

  it("is cached per (repository, permissions): repeated calls cost GitHub nothing", async () => {
    await install(7002, "acme", ["acme/app"]);
    const first = await installationToken({ repository: "acme/app" });
    const before = await emulator.stats();
    for (let i = 0; i < 10; i++) {
      const again = await installationToken({ repository: i % 2 ? "ACME/App" : "http://github.emulator/acme/app.git" });
      expect(again.body.token).toBe(first.body.token);
    }
    const after = await emulator.stats();
    expect(after.counts.installation_token).toBe(before.counts.installation_token);
    expect(after.counts.installation).toBe(before.counts.installation);
    // Another scope is another token.
    const read = await installationToken({ repository: "acme/app", permissions: { contents: "read" } });
    expect(read.status).toBe(200);
    expect(read.body.permissions).toEqual({ contents: "read" });
    expect(read.body.token).not.toBe(first.body.token);
  });

  it("500 concurrent requests with nothing cached: one lookup, one mint, one token for all", async () => {
    await install(7003, "acme", ["acme/app"]);
    const before = await emulator.stats();
    const results = await Promise.all(Array.from({ length: 500 }, () => installationToken({ repository: "acme/app" })));
    const after = await emulator.stats();
    expect(results.every((r) => r.status === 200)).toBe(true);
    expect(new Set(results.map((r) => r.body.token)).size).toBe(1);
    expect(after.counts.installation_token - before.counts.installation_token).toBe(1);
    expect(after.counts.installation - before.counts.installation).toBe(1);
  });

  it("mints anew when less than minValiditySeconds remain, and serves the cached one otherwise", async () => {
    await install(7004, "acme", ["acme/app"]);
    const first = await installationToken({ repository: "acme/app" });
    await setInstallationTokenExpiry("acme", Date.now() + 200_000);
    const lenient = await installationToken({ repository: "acme/app", minValiditySeconds: 100 });
    expect(lenient.body.token).toBe(first.body.token);
    expect(lenient.body.expiresInSeconds).toBeLessThanOrEqual(200);
    const strict = await installationToken({ repository: "acme/app" });
    expect(strict.status).toBe(200);
    expect(strict.body.token).not.toBe(first.body.token);
    expect(strict.body.expiresInSeconds).toBeGreaterThan(3590);
    // GitHub keeps older tokens alive; the broker just stops handing the old one out.
    expect((await apps.tokenState(first.body.token)).state!.alive).toBe(true);
  });

  it("measures the expiry on the broker's clock: GitHub's clock running ahead does not shorten or stretch it", async () => {
    await install(7005, "acme", ["acme/app"]);
    await emulator.clock(120);
    const before = Date.now();
    const res = await installationToken({ repository: "acme/app" });
    expect(res.status).toBe(200);
    expect(Math.abs(Date.parse(res.body.expiresAt) - (before + 3_600_000))).toBeLessThan(5_000);
  });

  it("works with a PKCS#8 private key as well as GitHub's PKCS#1 (lite is configured with PKCS#8)", async () => {
    expect(String((env as unknown as Record<string, string>).GITHUB_APP_PRIVATE_KEY_STANDARD)).toContain("BEGIN RSA PRIVATE KEY");
    expect(String((env as unknown as Record<string, string>).GITHUB_APP_PRIVATE_KEY_LITE)).toContain("BEGIN PRIVATE KEY");
    await apps.install({ appType: "lite", id: 7006, account: "acme", repositories: ["acme/app"], permissions: { ...PERMISSIONS } });
    const res = await installationToken({ appType: "lite", repository: "acme/app" });
    expect(res.status).toBe(200);
    expect(res.body.committer).toEqual({ name: "broker-lite[bot]", email: "41898283+broker-lite[bot]@users.noreply.github.com" });
    expect((await apps.stats()).lastJwt!.iss).toBe(APPS.lite.clientId);
  });
});

describe("scope enforced by GitHub (the emulator)", () => {
  it("the token is refused outside its repository, over REST and git", async () => {
    await install(7010, "acme", ["acme/app", "acme/other"]);
    const { token } = (await installationToken({ repository: "acme/app" })).body;
    const rest = (repo: string) => fetch(`${EMULATOR_API_URL}/repos/${repo}`, { headers: { authorization: `Bearer ${token}` } });
    expect((await rest("acme/app")).status).toBe(200);
    expect((await rest("acme/other")).status).toBe(404);
    const git = (repo: string, service: string) =>
      fetch(`${EMULATOR_URL}/${repo}.git/info/refs?service=${service}`, {
        headers: { authorization: `Basic ${btoa(`x-access-token:${token}`)}` },
      });
    const inside = await git("acme/app", "git-upload-pack");
    expect(inside.status).toBe(200);
    await inside.body?.cancel();
    expect((await git("acme/other", "git-upload-pack")).status).toBe(404);
  });

  it("a read-only token cannot push", async () => {
    await install(7011, "acme", ["acme/app"]);
    const { token } = (await installationToken({ repository: "acme/app", permissions: { contents: "read" } })).body;
    const res = await fetch(`${EMULATOR_URL}/acme/app.git/info/refs?service=git-receive-pack`, {
      headers: { authorization: `Basic ${btoa(`x-access-token:${token}`)}` },
    });
    expect(res.status).toBe(403);
  });

  it("permissions beyond what the installation grants: 403 no_repo_access, nothing cached", async () => {
    await install(7012, "acme", ["acme/app"], { contents: "read", metadata: "read" });
    const res = await installationToken({ repository: "acme/app" });
    expect(res.status).toBe(403);
    expect(res.body.reason).toBe("no_repo_access");
    expect((await installationRows("acme")).tokens).toEqual([]);
    expect((await installationToken({ repository: "acme/app", permissions: { contents: "read" } })).status).toBe(200);
  });
});

describe("not installed", () => {
  it("an owner without the App, or a repository outside the installation: 404 not_installed", async () => {
    await install(7020, "acme", ["acme/app"]);
    for (const repository of ["nobody/app", "acme/secret"]) {
      const res = await installationToken({ repository });
      expect(res.status).toBe(404);
      expect(res.body).toMatchObject({ ok: false, reason: "not_installed" });
    }
  });

  it("a renamed repository's old name is not_installed: GitHub's 301 is not an outage, and is never followed", async () => {
    await install(7021, "acme", ["acme/app"]);
    await emulator.move("acme/old-app", "acme/app");
    const res = await installationToken({ repository: "acme/old-app" });
    expect(res.status).toBe(404);
    expect(res.body).toMatchObject({ ok: false, reason: "not_installed" });
    expect(res.body.retryAfterSeconds).toBeUndefined();
    expect((await installationToken({ repository: "acme/app" })).status).toBe(200);
  });

  it("a suspended installation answers not_installed at once after its webhook, and works again after unsuspend", async () => {
    await install(7021, "acme", ["acme/app"]);
    const first = await installationToken({ repository: "acme/app" });
    expect(first.status).toBe(200);
    const hook = await deliver(await apps.suspend(7021));
    expect(hook.status).toBe(202);
    expect(await installationRows("acme")).toEqual({ lookups: [], tokens: [] });
    const suspended = await installationToken({ repository: "acme/app" });
    expect(suspended.status).toBe(404);
    expect(suspended.body.reason).toBe("not_installed");
    expect((await deliver(await apps.unsuspend(7021))).status).toBe(202);
    const back = await installationToken({ repository: "acme/app" });
    expect(back.status).toBe(200);
    expect(back.body.token).not.toBe(first.body.token);
  });

  it("a redelivered installation webhook gets the first delivery's answer and drops nothing again", async () => {
    await install(7025, "acme", ["acme/app"]);
    expect((await installationToken({ repository: "acme/app" })).status).toBe(200);
    const delivery = await apps.suspend(7025);
    const first = await deliver(delivery);
    const firstBody = await first.text();
    expect(first.status).toBe(202);
    expect(JSON.parse(firstBody)).toMatchObject({ lookups: 1, tokens: 1 });
    // Unsuspended meanwhile and cached again: the redelivery must not drop that.
    expect((await deliver(await apps.unsuspend(7025))).status).toBe(202);
    const again = await installationToken({ repository: "acme/app" });
    expect(again.status).toBe(200);
    const redelivered = await deliver(delivery);
    expect(redelivered.status).toBe(202);
    expect(await redelivered.text()).toBe(firstBody);
    expect((await installationRows("acme")).tokens.length).toBe(1);
  });

  it("an uninstalled App answers not_installed at once after the webhook", async () => {
    await install(7022, "acme", ["acme/app"]);
    expect((await installationToken({ repository: "acme/app" })).status).toBe(200);
    expect((await deliver(await apps.uninstall(7022))).status).toBe(202);
    const res = await installationToken({ repository: "acme/app" });
    expect(res.status).toBe(404);
    expect(res.body.reason).toBe("not_installed");
  });

  it("a repository removed from the installation: not_installed for it, the others keep their cached token", async () => {
    await install(7023, "acme", ["acme/app", "acme/other"]);
    await installationToken({ repository: "acme/app" });
    const other = await installationToken({ repository: "acme/other" });
    expect((await deliver(await apps.removeRepositories(7023, ["acme/app"]))).status).toBe(202);
    const before = await emulator.stats();
    expect((await installationToken({ repository: "acme/app" })).body.reason).toBe("not_installed");
    expect((await installationToken({ repository: "acme/other" })).body.token).toBe(other.body.token);
    expect((await emulator.stats()).counts.installation_token).toBe(before.counts.installation_token);
  });

  it("a suspension the broker missed (no webhook): GitHub's 403 on the mint is not_installed", async () => {
    await install(7024, "acme", ["acme/app"]);
    await installationToken({ repository: "acme/app" });
    await apps.suspend(7024); // not delivered
    await setInstallationTokenExpiry("acme", Date.now() + 60_000);
    const res = await installationToken({ repository: "acme/app" });
    expect(res.status).toBe(404);
    expect(res.body.reason).toBe("not_installed");
  });
});

describe("failures", () => {
  it("a private key GitHub does not know (rejected JWT): app_misconfigured, nothing cached", async () => {
    await install(7030, "acme", ["acme/app"]);
    await apps.rotateKey("standard");
    const res = await installationToken({ repository: "acme/app" });
    expect(res.status).toBe(503);
    expect(res.body.reason).toBe("app_misconfigured");
    expect((await apps.stats()).jwtRejections).toBeGreaterThan(0);
    expect(await installationRows("acme")).toEqual({ lookups: [], tokens: [] });
  });

  it("a GitHub outage: github_unavailable with retryAfterSeconds, nothing cached, the next call works", async () => {
    await install(7031, "acme", ["acme/app"]);
    await emulator.fault({ endpoint: "installation_token", kind: "status_5xx" });
    const down = await installationToken({ repository: "acme/app" });
    expect(down.status).toBe(503);
    expect(down.body.reason).toBe("github_unavailable");
    expect(down.body.retryAfterSeconds).toBeGreaterThan(0);
    expect((await installationRows("acme")).tokens).toEqual([]);
    await emulator.fault({ endpoint: "installation", kind: "hang" });
    await reset(); // also forget the cached lookup, so the hang is met
    const hung = await installationToken({ repository: "acme/app" });
    expect(hung.body.reason).toBe("github_unavailable");
    await emulator.clearFaults();
    expect((await installationToken({ repository: "acme/app" })).status).toBe(200);
  });

  it("rejects bad input with 400 invalid_request and never calls GitHub", async () => {
    const before = await emulator.stats();
    const bad: Record<string, unknown>[] = [
      { repository: "not a repo" },
      { appType: "nope", repository: "acme/app" },
      { repository: "acme/app", minValiditySeconds: 3601 },
      { repository: "acme/app", permissions: [] },
      { repository: "acme/app", permissions: {} },
      { repository: "acme/app", permissions: "write" },
      { repository: "acme/app", permissions: { contents: "admin" } },
      { repository: "acme/app", permissions: { members: "read" } },
      { repository: "acme/app", permissions: { "ghs_secret-looking": "read" } },
    ];
    for (const body of bad) {
      const res = await installationToken(body);
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.body.reason).toBe("invalid_request");
      expect(res.body.message).not.toContain("ghs_");
    }
    const after = await emulator.stats();
    expect(after.counts.installation + after.counts.installation_token).toBe(before.counts.installation + before.counts.installation_token);
  });
});

describe("installation webhooks", () => {
  it("other installation events are 200; a signed body that is not a JSON object is 400; a bad signature is 401", async () => {
    await install(7040, "acme", ["acme/app"]);
    const suspend = await apps.suspend(7040);
    const created = { ...suspend, body: suspend.body.replace('"action":"suspend"', '"action":"created"') };
    const { sign } = await import("@octokit/webhooks-methods");
    created.signature = await sign(APPS.standard.webhookSecret, created.body);
    expect((await deliver(created)).status).toBe(200);
    for (const body of ["[]", "123", "null", '"x"']) {
      const res = await deliver({ ...suspend, body, signature: await sign(APPS.standard.webhookSecret, body) });
      expect(res.status, body).toBe(400);
    }
    expect((await deliver({ ...suspend, signature: await sign("wrong", suspend.body) })).status).toBe(401);
  });
});

describe("the private key", () => {
  it("never appears in a log line, an error or a response", async () => {
    const key = String((env as unknown as Record<string, string>).GITHUB_APP_PRIVATE_KEY_STANDARD);
    // Any one line of the key's base64 body is enough to reconstruct a part of it.
    const fragments = key.split("\n").filter((l) => l.length > 20 && !l.startsWith("-----"));
    const seen: string[] = [];
    for (const m of ["log", "error", "warn", "info", "debug"] as const) {
      vi.spyOn(console, m).mockImplementation((...a: unknown[]) => void seen.push(a.map(String).join(" ")));
    }
    await install(7050, "acme", ["acme/app"]);
    seen.push(JSON.stringify((await installationToken({ repository: "acme/app" })).body));
    await emulator.fault({ endpoint: "installation_token", kind: "status_5xx" });
    await setInstallationTokenExpiry("acme", Date.now());
    seen.push(JSON.stringify((await installationToken({ repository: "acme/app" })).body));
    await apps.rotateKey("standard");
    seen.push(JSON.stringify((await installationToken({ repository: "acme/app" })).body));
    seen.push(JSON.stringify((await installationToken({ repository: "other-org/app" })).body));
    // A key that is not a key: the error names the setting, never the value.
    const broken = key.replace("MII", "M!I");
    try {
      toPkcs8Pem(broken, "GITHUB_APP_PRIVATE_KEY_STANDARD");
    } catch (err) {
      expect(err).toBeInstanceOf(ConfigError);
      seen.push(String(err), (err as Error).stack ?? "");
    }
    expect(seen.length).toBeGreaterThan(4);
    const all = seen.join("\n");
    for (const fragment of fragments) expect(all).not.toContain(fragment);
    expect(all).not.toContain("PRIVATE KEY-----");
    // The spies did see the broker's own log lines (the Durable Object's included).
    expect(all).toContain('"event":"installation_token"');
    expect(all).toContain('"outcome":"app_misconfigured"');
  });
});

describe("BrokerApi.getInstallationToken and InstallationTokenClient", () => {
  it("RPC answers as HTTP does; the client caches on expiresInSeconds and coalesces", async () => {
    await install(7060, "acme", ["acme/app"]);
    const api = (exports as unknown as { BrokerApi: InstallationTokenBinding }).BrokerApi;
    const rpc = await api.getInstallationToken({ appType: "standard", repository: "acme/app" });
    const res = await publicFetch("/v1/installations/token", {
      method: "POST",
      headers: { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" },
      body: JSON.stringify({ appType: "standard", repository: "acme/app" }),
    });
    // A grant is JSON that no cache keeps; the same grant over RPC (expiresInSeconds aside: it counts down).
    expect(res.status).toBe(200);
    expect(res.headers.get("cache-control")).toBe("no-store");
    expect(res.headers.get("content-type")).toBe("application/json; charset=utf-8");
    const http = (await res.json()) as Record<string, unknown>;
    expect(rpc.ok).toBe(true);
    expect({ ...rpc, expiresInSeconds: 0 }).toEqual({ ...http, expiresInSeconds: 0 });
    let calls = 0;
    const client = new InstallationTokenClient({
      broker: { getInstallationToken: (r) => (calls++, api.getInstallationToken(r)) },
      appType: "standard",
    });
    const [a, b] = await Promise.all([client.getToken("acme/app"), client.getToken("acme/app")]);
    await client.getToken("acme/app");
    expect(calls).toBe(1);
    expect(a.ok && b.ok && a.token === b.token).toBe(true);
    const missing = await client.getToken("nobody/app");
    expect(missing).toMatchObject({ ok: false, reason: "not_installed" });
  });
});

describe("the route", () => {
  it("a GitLab App is the caller's mistake: 400 invalid_request, no error logged", async () => {
    const logged = vi.spyOn(console, "log");
    const res = await installationToken({ appType: "gitlab", repository: "acme/app" });
    expect(res.status).toBe(400);
    expect(res.body.reason).toBe("invalid_request");
    const fallback = await requestToken("fb-gitlab", { appType: "gitlab", repository: "acme/app", fallback: "app" });
    expect(fallback.status).toBe(400);
    expect(fallback.body.reason).toBe("invalid_request");
    expect(logged.mock.calls.flat().join("\n")).not.toMatch(/"level":"error"/);
    logged.mockRestore();
  });

  it("is internal: /v1/installations/token needs the bearer token on the public URL", async () => {
    const res = await publicFetch("/v1/installations/token", { method: "POST", body: JSON.stringify({ appType: "standard", repository: "acme/app" }) });
    expect(res.status).toBe(401);
  });
});

describe("POST /v1/users/{userId}/token with fallback: \"app\"", () => {
  it("a user who never connected gets an installation token, identity app, fallbackReason, no coAuthor", async () => {
    await install(7070, "acme", ["acme/app"]);
    const res = await requestToken("fb-none", { repository: "acme/app", fallback: "app" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({ ok: true, identity: "app", fallbackReason: "not_connected", installationId: "7070", committer: BOT });
    expect(res.body.coAuthor).toBeUndefined();
    expect(res.body.token).toMatch(/^ghs_/);
    // Without the flag, the failure stays the answer.
    expect((await requestToken("fb-none", { repository: "acme/app" })).body.reason).toBe("not_connected");
  });

  it("a user without access to the repository: the bot's token, the user as co-author; the user's own token has identity user", async () => {
    await install(7071, "acme", ["acme/app", "acme/other"]);
    await connectUser("fb-mona", { id: 5151, login: "mona", name: "Mona", repos: { "acme/app": "push" } });
    const own = await requestToken("fb-mona", { repository: "acme/app", fallback: "app" });
    expect(own.body).toMatchObject({ ok: true, identity: "user", githubLogin: "mona" });
    const res = await requestToken("fb-mona", { repository: "acme/other", fallback: "app" });
    expect(res.status).toBe(200);
    expect(res.body).toMatchObject({
      identity: "app",
      fallbackReason: "no_repo_access",
      repository: "acme/other",
      coAuthor: { name: "Mona", email: "5151+mona@users.noreply.github.com" },
    });
    // The same identity string a capability carries as its co-author.
    const cap = await callApi("POST", "/users/fb-mona/capabilities", { appType: "standard", repository: "acme/other", sessionId: "s", identity: "user_or_app" });
    expect(cap.body.coAuthor).toEqual(res.body.coAuthor);
    const pull = await requestToken("fb-mona", { repository: "acme/other", permission: "pull", fallback: "app" });
    expect(pull.body.permissions).toEqual({ contents: "read" });
  });

  it("outages are never masked, a missing installation is reported, and fallback takes only \"app\"", async () => {
    await connectUser("fb-out", { id: 5152, login: "octo", repos: { "acme/app": "push" } });
    await install(7072, "acme", ["acme/app"]);
    await emulator.fault({ endpoint: "repo", kind: "status_5xx" });
    const down = await requestToken("fb-out", { repository: "acme/app", fallback: "app" });
    expect(down.status).toBe(503);
    expect(down.body.reason).toBe("github_unavailable");
    const nowhere = await requestToken("fb-out", { repository: "elsewhere/app", fallback: "app" });
    expect(nowhere.body.reason).toBe("not_installed");
    // The co-author the user's actor attached for the fallback never rides on a failure.
    expect(Object.keys(nowhere.body).sort()).toEqual(["message", "ok", "reason"]);
    expect(down.body.coAuthor).toBeUndefined();
    expect((await requestToken("fb-out", { repository: "acme/app", fallback: "user" })).status).toBe(400);
  });
});
