/**
 * The soak for GitLab connections: several users with several agent sessions each, 3-second
 * access tokens (every few calls a rotation that kills both old tokens), and GitLab
 * misbehaving the whole time (502s, hangs, 429s, rotations whose answer is lost, a wrong
 * client secret), while actors are evicted and users disconnect and reconnect. Then the
 * truth check against the GitLab emulator:
 *
 * - a `connected` user's stored refresh token is alive at GitLab, and it is the user's only
 *   live one (a reconnect revoked the previous pair; nothing live is forgotten);
 * - `reconnect_required` only where a rotation's answer was (or may have been) lost;
 * - a rotated refresh token is presented again only after a lost rotation.
 *
 * Half the users are never evicted and get the strict check (an eviction mid-rotation loses
 * the answer exactly like a dropped response, which the emulator cannot see).
 */
import { evictDurableObject, runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { loadKeyring, open } from "../src/crypto";
import { connectGitLabUser, gitlab, gitlabToken } from "./support/gitlab";
import { actor, callApi, setStoredExpiry, storedRow } from "./support/helpers";

const bindings = env as unknown as Record<string, string>;
const SECONDS = Math.max(5, Math.round(Number(bindings.SOAK_SECONDS ?? 15) / 2));
const USERS = Math.max(4, Math.round(Number(bindings.SOAK_USERS ?? 12) / 2));
const SESSIONS = Number(bindings.SOAK_SESSIONS ?? 3);
const TIMEOUT_MS = Number(bindings.GITHUB_TIMEOUT_MS);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

interface SoakUser {
  userId: string;
  gitlabId: number;
  busy: boolean;
  last: "connected" | "disconnected";
  evictable: boolean;
  evicted: number;
  /** `github_unavailable` answers that took the broker's whole timeout: each may hide a lost rotation. */
  timeouts: number;
}

const PROJECT = "acme/platform/api";

async function connect(u: SoakUser) {
  await connectGitLabUser(u.userId, { id: u.gitlabId, username: `soak${u.gitlabId}`, projects: { [PROJECT]: { level: 30 } } });
  u.last = "connected";
}

it(`GitLab soak: ${USERS} users x ${SESSIONS} sessions for ${SECONDS}s under faults and churn, then the truth check`, async () => {
  await gitlab.reset();
  await gitlab.settings({ accessTokenExpiresIn: 3, hangMs: 2500, clientTimeoutMs: TIMEOUT_MS });
  const users: SoakUser[] = Array.from({ length: USERS }, (_, i) => ({
    userId: `gl-soak-${i}`,
    gitlabId: 80_000 + i,
    busy: false,
    last: "connected",
    evictable: i % 2 === 0,
    evicted: 0,
    timeouts: 0,
  }));
  for (const u of users) await connect(u);

  const reasons: Record<string, number> = {};
  let requests = 0;
  let unexpected5xx = 0;
  const end = Date.now() + SECONDS * 1000;

  async function lifecycle(u: SoakUser, what: "reconnect" | "disconnect") {
    if (u.busy) return;
    u.busy = true;
    try {
      if (what === "reconnect") await connect(u);
      else if ((await callApi("DELETE", `/users/${u.userId}/connection?appType=gitlab`)).status === 200) u.last = "disconnected";
    } catch {
      // Interrupted by an eviction or a fault: the web app would retry later.
    } finally {
      u.busy = false;
    }
  }

  async function session(u: SoakUser) {
    while (Date.now() < end) {
      const started = Date.now();
      // One call in four asks for more validity than a 3-second token has: a rotation each time.
      const res = await gitlabToken(u.userId, { repository: PROJECT, minValiditySeconds: pick([1, 1, 1, 5]) });
      if (res.body?.reason === "github_unavailable" && Date.now() - started >= 0.9 * TIMEOUT_MS) u.timeouts++;
      requests++;
      if (res.status >= 500 && !["github_unavailable", "app_misconfigured", "broker_unavailable", "rate_limited"].includes(res.body?.reason)) unexpected5xx++;
      const reason = res.body?.ok ? "ok" : String(res.body?.reason);
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      if (["reconnect_required", "not_connected"].includes(reason) && Math.random() < 0.3) await lifecycle(u, "reconnect");
      await sleep(5 + Math.random() * 25);
    }
  }

  let rolls = 0;
  async function chaos() {
    while (Date.now() < end) {
      rolls++;
      const roll = Math.random();
      if (roll < 0.25) await gitlab.fault({ endpoint: pick(["refresh", "refresh", "project"] as const), kind: pick(["status_5xx", "hang", "rate_limit"] as const) });
      else if (roll < 0.33) await gitlab.fault({ endpoint: "refresh", kind: "drop_after_rotate" });
      else if (roll < 0.37) await gitlab.fault({ endpoint: "refresh", kind: "bad_client" });
      else if (roll < 0.6) {
        // Not awaited: an eviction waits for the actor's requests in flight, which never stop here.
        const u = pick(users.filter((x) => x.evictable));
        u.evicted++;
        void evictDurableObject(actor(u.userId)).catch(() => undefined);
      } else if (roll < 0.68) void lifecycle(pick(users), "reconnect");
      else if (roll < 0.73) void lifecycle(pick(users), "disconnect");
      await sleep(40 + Math.random() * 80);
    }
  }

  await Promise.all([chaos(), ...users.flatMap((u) => Array.from({ length: SESSIONS }, () => session(u)))]);
  while (users.some((u) => u.busy)) await sleep(50);

  await gitlab.clearFaults();
  await gitlab.settings({ accessTokenExpiresIn: 7200 });
  const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
  const lost: string[] = [];
  for (const u of users) {
    // Pending revocations get their retry now.
    await runInDurableObject(actor(u.userId), (_i, state) => {
      if (state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'pending_revocations'").toArray().length) {
        state.storage.sql.exec("UPDATE pending_revocations SET next_attempt_at = 0");
      }
    });
    await runDurableObjectAlarm(actor(u.userId));
    if ((await storedRow(u.userId, "gitlab" as never))?.status === "connected") {
      // Spend the stored refresh token once more: a dead one shows now.
      await setStoredExpiry(u.userId, "gitlab" as never, Date.now() - 1);
      await gitlabToken(u.userId, { repository: PROJECT });
    }
    const row = await storedRow(u.userId, "gitlab" as never);
    const history = await gitlab.history(u.gitlabId);
    const excused = history.lostRotations + u.evicted + u.timeouts;
    const live = await gitlab.liveRefreshTokens(u.gitlabId);
    if (row?.status === "connected") {
      const refresh = await open(keyring, row.refresh_token, { userId: u.userId, appType: "gitlab", field: "refresh_token" });
      if (!(await gitlab.tokenState(refresh!))?.alive) lost.push(`${u.userId}: connected with a refresh token GitLab does not know as live`);
      if (excused === 0 && (live.length !== 1 || live[0] !== refresh)) lost.push(`${u.userId}: ${live.length} live refresh tokens, the broker knows one`);
    } else if (live.length > 0 && excused === 0) {
      lost.push(`${u.userId}: ${live.length} live refresh token(s) the broker forgot (row ${row?.status ?? "none"})`);
    }
    if (row?.status === "reconnect_required" && excused === 0) lost.push(`${u.userId}: reconnect_required (${row.reason}) with no lost rotation`);
    if (history.rotatedReuses > excused) lost.push(`${u.userId}: ${history.rotatedReuses} rotated refresh tokens presented again, ${excused} lost rotations`);
    if (!row && u.last === "connected") lost.push(`${u.userId}: no connection row, though the last lifecycle answer was a connect`);
  }
  const stats = await gitlab.stats();
  console.log(
    `gitlab soak: ${rolls} chaos rolls, ${requests} requests, ${stats.counts.refresh} refreshes, faults ${JSON.stringify(stats.faultsInjected)}, ` +
      `answers ${JSON.stringify(reasons)}, unexpected 5xx ${unexpected5xx}, lost connections ${lost.length}`,
  );
  expect(lost).toEqual([]);
  expect(unexpected5xx).toBe(0);
  expect(requests).toBeGreaterThan(USERS * SESSIONS * 5);
  expect(stats.counts.refresh).toBeGreaterThan(USERS);
}, 300_000);
