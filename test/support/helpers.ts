/**
 * Test helpers: drive the GitHub emulator, call the broker as its callers do, and look
 * inside a user's actor storage.
 */
import { sign } from "@octokit/webhooks-methods";
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env, exports } from "cloudflare:workers";
import type { Endpoint, EmulatorSettings, FaultKind, TokenState } from "../../emulator/github";
import { APPS, EMULATOR_URL, INTERNAL_API_TOKEN, PUBLIC_BASE_URL, RETURN_ORIGIN } from "./env";
import { forgetConnectionRows } from "../../src/actor/connection-store";

export type AppType = keyof typeof APPS;

/** A call to the GitHub emulator's `/_emulator/` control routes; throws on anything but 2xx. */
export async function control<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${EMULATOR_URL}/_emulator/${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`emulator ${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** The GitHub emulator's control API. */
export const emulator = {
  reset: () => control("POST", "reset"),
  addUser: (user: { id: number; login: string; name?: string | null; repos?: Record<string, "push" | "pull"> }) =>
    control("POST", "users", { name: null, repos: {}, ...user }),
  settings: (settings: Partial<EmulatorSettings>) => control("POST", "settings", settings),
  clock: (offsetSeconds: number) => control("POST", "clock", { offsetSeconds }),
  fault: (fault: { endpoint: Endpoint; kind: FaultKind; count?: number; delayMs?: number }) => control("POST", "faults", fault),
  clearFaults: () => control("DELETE", "faults"),
  stats: () => control<{ counts: Record<Endpoint, number>; faultsInjected: Record<string, number> }>("GET", "stats"),
  authorize: (p: { clientId: string; userId: number; redirectUri: string; codeChallenge?: string | null }) =>
    control<{ code: string }>("POST", "authorize", p),
  tokenState: (token: string) =>
    control<{ refresh: TokenState | null; access: TokenState | null }>("GET", `token?token=${encodeURIComponent(token)}`),
  /** Waits until the hold has caught a request; `null` when `done` settles first (nothing to hold). */
  async waitHeld(id: number, done: Promise<unknown>, timeoutMs = 5000): Promise<{ endpoint: string; seq: number } | null> {
    let finished = false;
    void done.then(
      () => (finished = true),
      () => (finished = true),
    );
    const until = Date.now() + timeoutMs;
    for (;;) {
      const caught = await emulator.held(id);
      if (caught) return caught;
      if (finished || Date.now() > until) return null;
      await new Promise((r) => setTimeout(r, 5));
    }
  },
  liveRefreshTokens: (appType: AppType, githubUserId: number) =>
    control<{ refreshTokens: string[]; scopedTokens: string[] }>("GET", `live?clientId=${APPS[appType].clientId}&userId=${githubUserId}`),
  /** Arms a hold on the `skip + 1`-th matching request from now (every endpoint when `match` is omitted). */
  hold: (options: { match?: string[]; skip?: number } = {}) => control<{ id: number }>("POST", "holds", options).then((r) => r.id),
  held: (id: number) => control<{ caught: { endpoint: string; seq: number } | null }>("GET", `holds/${id}`).then((r) => r.caught),
  release: (id: number) => control("POST", `holds/${id}/release`),
  /** An arrival number: every request the emulator numbered below it has arrived. */
  mark: () => control<{ seq: number }>("POST", "mark").then((r) => r.seq),
  /** A rename or transfer: GitHub answers the old name with 301 from then on. */
  move: (from: string, to: string) => control("POST", "moved", { from, to }),
  /** The git requests the emulator served from index `since` on, with the login each token belonged to. */
  gitRequests: (since = 0) => control<{ requests: { repository: string; login: string; push: boolean; seq: number }[] }>("GET", `git-requests?since=${since}`).then((r) => r.requests),
  revoke: (appType: AppType, githubUserId: number, notify = false) =>
    control<{ status?: number; deliveryId?: string }>("POST", "revoke", { clientId: APPS[appType].clientId, userId: githubUserId, notify }),
};


/** Calls the broker's public URL, as an operator or GitHub would. */
export function publicFetch(path: string, init: RequestInit = {}): Promise<Response> {
  return exports.default.fetch(new Request(`${PUBLIC_BASE_URL}${path}`, { redirect: "manual", ...init }));
}

/** Calls the internal API on the public URL with the bearer token; JSON in, JSON out. */
export async function callApi<T = any>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
  const res = await publicFetch(`/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${INTERNAL_API_TOKEN}`, "content-type": "application/json" },
    body: body === undefined ? undefined : typeof body === "string" ? body : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: (text ? JSON.parse(text) : null) as T };
}

export function requestToken(userId: string, body: Record<string, unknown>) {
  return callApi("POST", `/users/${encodeURIComponent(userId)}/token`, { appType: "standard", ...body });
}

export function actor(userId: string) {
  return env.USER_ACTOR.get(env.USER_ACTOR.idFromName(userId));
}

/** The user's stored connection row, read straight from the actor's SQLite storage. */
export function storedRow(userId: string, appType: AppType = "standard"): Promise<Record<string, any> | null> {
  return runInDurableObject(actor(userId), (_instance, state) => {
    return (state.storage.sql.exec("SELECT * FROM connections WHERE app_type = ?", appType).toArray()[0] as Record<string, any>) ?? null;
  });
}

/** Moves the stored access-token expiry (as if time had passed for the broker). */
export function setStoredExpiry(userId: string, appType: AppType, accessTokenExpiresAt: number): Promise<void> {
  return runInDurableObject(actor(userId), (_instance, state) => {
    state.storage.sql.exec("UPDATE connections SET access_token_expires_at = ? WHERE app_type = ?", accessTokenExpiresAt, appType);
    forgetConnectionRows(state.storage.sql);
  });
}

/** Every value in the actor's storage, as one string, to search for plaintext. */
export function dumpStorage(userId: string): Promise<string> {
  return runInDurableObject(actor(userId), (_instance, state) => {
    const tables = state.storage.sql
      .exec<{ name: string }>("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE '_cf_%'")
      .toArray()
      .map((r) => r.name);
    return JSON.stringify(tables.map((t) => state.storage.sql.exec(`SELECT * FROM "${t}"`).toArray()));
  });
}

/**
 * The user revokes the standard App in their GitHub settings, and GitHub's signed
 * `github_app_authorization` webhook reaches the broker; the broker's answer.
 */
export async function revokeOnGitHub(user: { id: number; login: string }): Promise<Response> {
  await emulator.revoke("standard", user.id);
  const body = JSON.stringify({ action: "revoked", sender: { login: user.login, id: user.id, type: "User" } });
  const res = await publicFetch("/webhooks/github/standard", {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": "github_app_authorization",
      "x-github-delivery": crypto.randomUUID(),
      "x-hub-signature-256": await sign(APPS.standard.webhookSecret, body),
    },
    body,
  });
  await res.body?.cancel();
  return res;
}

/** Every row of the user's storage outside bookkeeping (`_migrations`, SQLite's AUTOINCREMENT counters). */
export async function userRows(userId: string): Promise<unknown[]> {
  return (JSON.parse(await dumpStorage(userId)) as unknown[][]).flat().filter((r) => !(r && typeof r === "object" && ("applied_at" in r || ("name" in r && "seq" in r))));
}

/** Grants the user's actor still has to revoke (0 where it has no schema). */
export function pendingRevocations(userId: string): Promise<number> {
  return runInDurableObject(actor(userId), (_i, state) => {
    const exists = state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'pending_revocations'").toArray().length > 0;
    return exists ? state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM pending_revocations").one().n : 0;
  });
}

/** Runs the actor's alarm now with every pending revocation due (their backoff skipped). */
export async function retryRevocationsNow(userId: string): Promise<void> {
  await runInDurableObject(actor(userId), (_i, state) => {
    if (state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'pending_revocations'").toArray().length) {
      state.storage.sql.exec("UPDATE pending_revocations SET next_attempt_at = 0");
    }
  });
  await runDurableObjectAlarm(actor(userId));
}

/**
 * Connects `userId` to the App through the real two-phase flow: connect → the emulator's
 * consent (as if the user clicked Authorize) → the callback → the web app's confirmation
 * with the ticket, as `userId`. Returns the confirmation's body.
 */
export async function connectUser(
  userId: string,
  githubUser: { id: number; login: string; name?: string | null; repos?: Record<string, "push" | "pull"> },
  appType: AppType = "standard",
): Promise<Record<string, any>> {
  await emulator.addUser(githubUser);
  const ticket = await callbackTicket(await authorizeAs(userId, githubUser.id, appType));
  const confirmed = await confirmConnect(userId, ticket);
  if (confirmed.status !== 200) throw new Error(`confirm answered ${confirmed.status}: ${JSON.stringify(confirmed.body)}`);
  await flushEvents(userId);
  return confirmed.body;
}

/**
 * Delivers the user's pending connection events now (the actor's alarm would, a moment
 * later), so a test that compares storage before and after sees no delivery in between.
 */
export async function flushEvents(userId: string): Promise<void> {
  const pending = await runInDurableObject(actor(userId), (_i, state) => state.storage.sql.exec("UPDATE event_outbox SET next_attempt_at = 0").rowsWritten);
  if (pending > 0) await runDurableObjectAlarm(actor(userId));
}

/** Follows the callback path; returns the ticket from the redirect (throws on anything else). */
export async function callbackTicket(callbackPath: string): Promise<string> {
  const res = await publicFetch(callbackPath);
  if (res.status !== 302) throw new Error(`callback answered ${res.status}: ${await res.text()}`);
  const back = new URL(res.headers.get("location")!);
  const ticket = back.searchParams.get("connect_ticket");
  if (back.searchParams.get("github_connect") !== "confirm" || !ticket) throw new Error(`callback redirected to ${back.search}`);
  return ticket;
}

/** The web app's server confirming a connect for the user signed in to its session. */
export function confirmConnect(userId: string, ticket: string) {
  return callApi("POST", `/users/${encodeURIComponent(userId)}/connect/confirm`, { ticket });
}

/** Starts a connect and has the emulator's user approve it; returns the callback path. */
export async function authorizeAs(userId: string, githubUserId: number, appType: AppType = "standard"): Promise<string> {
  const started = await callApi("POST", `/users/${encodeURIComponent(userId)}/connect`, {
    appType,
    returnTo: `${RETURN_ORIGIN}/settings/github`,
  });
  if (started.status !== 200) throw new Error(`connect answered ${started.status}: ${JSON.stringify(started.body)}`);
  const authorize = new URL(started.body.authorizeUrl);
  const { code } = await emulator.authorize({
    clientId: authorize.searchParams.get("client_id")!,
    userId: githubUserId,
    redirectUri: authorize.searchParams.get("redirect_uri")!,
    codeChallenge: authorize.searchParams.get("code_challenge"),
  });
  const callback = new URL(authorize.searchParams.get("redirect_uri")!);
  callback.searchParams.set("code", code);
  callback.searchParams.set("state", authorize.searchParams.get("state")!);
  return callback.pathname + callback.search;
}
