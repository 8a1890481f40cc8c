/**
 * The soak: many users, GitHub and GitLab connections side by side, several agent sessions
 * each, 3-second access tokens, and both providers misbehaving the whole time (5xx, hangs,
 * rotations whose answer is lost, rate limits, wrong client credentials; on GitHub also
 * revocations with their webhooks), while actors are evicted at random and users disconnect,
 * delete their account and reconnect with another account. It ends with the truth check
 * against the emulators, which know every live refresh token:
 *
 * - a `connected` user's stored refresh token must be alive at the provider, and its
 *   identity-index link must exist;
 * - `reconnect_required` is allowed only where the provider rotated but the answer was lost
 *   (or the grant was revoked) since the user last connected that account;
 * - `revoked` only where the test revoked the grant and sent the webhook;
 * - no grant is live that the broker has forgotten (an account the user is not connected to
 *   has no live token; on GitLab, where every authorization is its own token, a connected
 *   account's only live token is the stored one), except after a lost rotation;
 * - after a deletion that answered, nothing of the user remains until they connect again;
 * - a spent refresh token is presented again only after a lost rotation (one retry each):
 *   more means two callers spent the same token.
 *
 * GitHub users also mint repository-scoped tokens, and redeem a capability through the git
 * proxy while the chaos revokes it: no git request may reach GitHub between a revocation's
 * answer and the next capability, and every scoped token GitHub still honours must be one the
 * broker holds for the connection's current generation. For the middle third of the run the
 * event receiver is down: the outbox must back off (a bounded number of attempts), and once
 * the receiver is back every event is delivered, in order per user, the last one matching
 * the user's final state, and at least one `connected` per connect that answered.
 *
 * Anything else is a lost connection and fails the run. Size and length come from
 * SOAK_SECONDS, SOAK_USERS, SOAK_SESSIONS (vitest.config.ts; CI uses the defaults); a third of
 * the users are GitLab users.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { loadKeyring, open } from "../src/crypto";
import { identityIndexByKey } from "../src/identity-index";
import { APPS, EVENTS_URL } from "./support/env";
import type { ConnectionEvent } from "../src/contract";
import { connectGitLabUser, gitlab } from "./support/gitlab";
import {
  actor,
  callApi,
  connectUser,
  emulator,
  flushEvents,
  publicFetch,
  retryRevocationsNow,
  revokeOnGitHub,
  setStoredExpiry,
  storedRow,
  userRows,
} from "./support/helpers";
import { GITHUB_TRUTH, GITLAB_TRUTH, type ProviderTruth } from "./support/truth";

const bindings = env as unknown as Record<string, string>;
const SECONDS = Number(bindings.SOAK_SECONDS ?? 15);
const USERS = Number(bindings.SOAK_USERS ?? 12);
const SESSIONS = Number(bindings.SOAK_SESSIONS ?? 3);
const TIMEOUT_MS = Number(bindings.GITHUB_TIMEOUT_MS);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The platform's event receiver (emulator/event-receiver.ts). */
const RECEIVER = new URL(EVENTS_URL).origin;
const receiver = {
  reset: () => fetch(`${RECEIVER}/_control/reset`, { method: "POST" }),
  down: () => fetch(`${RECEIVER}/_control/fault`, { method: "POST", body: JSON.stringify({ kind: "status_5xx", count: -1 }) }),
  up: () => fetch(`${RECEIVER}/_control/fault`, { method: "DELETE" }),
  state: async () => {
    const r = (await (await fetch(`${RECEIVER}/_control/deliveries`)).json()) as { deliveries: { body: string }[]; attempts: number };
    return { events: r.deliveries.map((d) => JSON.parse(d.body) as ConnectionEvent), attempts: r.attempts };
  },
};
const REFS = "/git/acme/app.git/info/refs?service=git-upload-pack";
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

/** What happened to an account at the provider: the truth check's excuses and its evidence. */
interface AccountHistory {
  /** Rotations whose answer was (or may have been) lost. */
  lost: number;
  revocations: number;
  /** Spent (rotated) refresh tokens presented again. */
  reuses: number;
}

/** What differs between the providers in the soak. */
interface Side extends ProviderTruth {
  repository: string;
  connect(userId: string, account: number): Promise<unknown>;
  history(account: number): Promise<AccountHistory>;
  /** Live tokens of `account` the broker does not know, given what it stores. */
  forgotten(live: string[], connectedHere: boolean, stored: string | null): string[];
  /** One random fault at this provider. */
  fault(): Promise<unknown>;
  /** The user revokes the App and the provider tells the broker (GitHub only). */
  revoke?: (account: number) => Promise<void>;
}

const GITHUB: Side = {
  ...GITHUB_TRUTH,
  repository: "acme/app",
  connect: (userId, id) => connectUser(userId, { id, login: `soak${id}`, name: null, repos: { "acme/app": "push" } }),
  history: async (id) => {
    const h = (await (await fetch(`http://github.emulator/_emulator/history?clientId=${APPS.standard.clientId}&userId=${id}`)).json()) as {
      droppedRotations: number;
      revocations: number;
      spentTokenReuses: number;
    };
    return { lost: h.droppedRotations, revocations: h.revocations, reuses: h.spentTokenReuses };
  },
  // One grant per (App, account): an older pair of the connected account's grant is that grant.
  forgotten: (live, connectedHere) => (connectedHere ? [] : live),
  fault: async () => {
    const roll = Math.random();
    if (roll < 0.6) return emulator.fault({ endpoint: pick(["refresh", "refresh", "repo"] as const), kind: pick(["status_5xx", "hang", "rate_limit"] as const) });
    return emulator.fault({ endpoint: "refresh", kind: roll < 0.85 ? "drop_after_rotate" : "bad_client" });
  },
  revoke: async (id) => {
    expect([202, 503]).toContain((await revokeOnGitHub({ id, login: `soak${id}` })).status);
  },
};

const GITLAB_PROJECT = "acme/platform/api";
const GITLAB: Side = {
  ...GITLAB_TRUTH,
  repository: GITLAB_PROJECT,
  connect: (userId, id) => connectGitLabUser(userId, { id, username: `soak${id}`, projects: { [GITLAB_PROJECT]: { level: 30 } } }),
  history: async (id) => {
    const h = await gitlab.history(id);
    return { lost: h.lostRotations, revocations: 0, reuses: h.rotatedReuses };
  },
  // Every authorization is its own token: the connected account's only live one is the stored one.
  forgotten: (live, connectedHere, stored) => (connectedHere ? live.filter((t) => t !== stored) : live),
  fault: async () => {
    const roll = Math.random();
    if (roll < 0.6) return gitlab.fault({ endpoint: pick(["refresh", "refresh", "project"] as const), kind: pick(["status_5xx", "hang", "rate_limit"] as const) });
    return gitlab.fault({ endpoint: "refresh", kind: roll < 0.85 ? "drop_after_rotate" : "bad_client" });
  },
};

interface SoakUser {
  userId: string;
  side: Side;
  /** The user's two accounts at the provider; `current` is the one last connected. */
  accounts: [number, number];
  current: number;
  /** Provider history per account when the user last connected it: later entries excuse a loss. */
  baseline: Map<number, AccountHistory>;
  revokedByTest: boolean;
  /** A lifecycle operation (connect, disconnect, deletion) is in progress for this user. */
  busy: boolean;
  /** The last lifecycle operation that answered: what the truth check expects. */
  last: "connected" | "disconnected" | "deleted";
  /**
   * Whether the chaos may evict this user's actor. An eviction in the middle of a rotation
   * or an exchange loses the provider's answer exactly like a dropped response, but the
   * emulator cannot see it; so half the users are never evicted and get the strict check.
   */
  evictable: boolean;
  evicted: number;
  /**
   * Answers that were the broker's own timeout (`github_unavailable` after about
   * `GITHUB_TIMEOUT_MS`). On a loaded machine a refresh can reach the emulator late and be
   * answered after the broker gave up: the rotation happened and its answer is lost, which
   * the emulator cannot always see. Each such answer may excuse one lost rotation.
   */
  timeouts: number;
  /** Connects that answered: each has its `connected` event. */
  connects: number;
  /** A capability of session `cap` (GitHub users), redeemed in a loop while the chaos revokes it. */
  capability: string | null;
  /** A capability is being issued, or revoked (then none may be issued until the window closes). */
  capBusy: boolean;
  /** Arrival marks between which no git request may carry this user's token: (revoked, next issued). */
  capWindows: { from: number; to: number }[];
}

async function connect(u: SoakUser, account: number) {
  u.baseline.set(account, await u.side.history(account));
  await u.side.connect(u.userId, account);
  u.current = account;
  u.revokedByTest = false;
  u.last = "connected";
  u.connects++;
}

/** The scoped tokens the user's actor holds (decrypted) for the connection's current generation. */
async function heldScopedTokens(userId: string, row: Record<string, any> | null): Promise<string[]> {
  if (row?.status !== "connected") return [];
  const rows = await runInDurableObject(actor(userId), (_i, state) =>
    state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'scoped_tokens'").toArray().length
      ? (state.storage.sql.exec("SELECT * FROM scoped_tokens WHERE generation = ?", row.generation).toArray() as Record<string, any>[])
      : [],
  );
  const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
  const held: string[] = [];
  for (const r of rows) {
    const token = await open(keyring, r.token, { userId, appType: r.app_type, field: `scoped:${r.generation}:${r.repository}:${r.permissions}` });
    if (token) held.push(token);
  }
  return held;
}

it(`soak: ${USERS} users (GitHub and GitLab) x ${SESSIONS} sessions for ${SECONDS}s under faults and lifecycle churn, then the truth check`, { timeout: 300_000 }, async () => {
  await emulator.reset();
  await gitlab.reset();
  // The emulators know the broker's timeout, so a rotation answered after it counts as lost.
  await emulator.settings({ accessTokenExpiresIn: 3, hangMs: 2500, clientTimeoutMs: TIMEOUT_MS });
  await gitlab.settings({ accessTokenExpiresIn: 3, hangMs: 2500, clientTimeoutMs: TIMEOUT_MS });
  const users: SoakUser[] = Array.from({ length: USERS }, (_, i) => {
    const side = i % 3 === 2 ? GITLAB : GITHUB;
    const first = (side === GITLAB ? 80_000 : 50_000) + i;
    return {
      userId: `soak-${i}`,
      side,
      accounts: [first, first + 10_000],
      current: first,
      baseline: new Map(),
      revokedByTest: false,
      busy: false,
      last: "connected",
      evictable: i % 2 === 0,
      evicted: 0,
      timeouts: 0,
      connects: 0,
      capability: null,
      capBusy: false,
      capWindows: [],
    };
  });
  await receiver.reset();
  for (const u of users) await connect(u, u.accounts[0]);

  const reasons: Record<string, number> = {};
  let requests = 0;
  let fiveHundreds = 0;
  const churn: Record<string, number> = { evictions: 0, revocations: 0, reconnects: 0, otherAccount: 0, disconnects: 0, deletions: 0, capabilityRevocations: 0 };
  const redemptions: Record<string, number> = {};
  const receiverDown = { from: Date.now() + (SECONDS * 1000) / 3, to: Date.now() + (2 * SECONDS * 1000) / 3, attempts: 0, queued: 0, spinning: [] as string[] };
  const end = Date.now() + SECONDS * 1000;

  /** One lifecycle operation at a time per user, as a web app would send them. */
  async function lifecycle(u: SoakUser, what: "reconnect" | "otherAccount" | "disconnect" | "delete") {
    if (u.busy) return;
    u.busy = true;
    try {
      if (what === "reconnect" || what === "otherAccount") {
        const account = what === "otherAccount" ? u.accounts.find((a) => a !== u.current)! : u.current;
        await connect(u, account);
        churn[what === "reconnect" ? "reconnects" : "otherAccount"]!++;
      } else if (what === "disconnect") {
        const res = await callApi("DELETE", `/users/${u.userId}/connection?appType=${u.side.appType}`);
        if (res.status === 200) {
          u.last = "disconnected";
          churn.disconnects!++;
        }
      } else {
        const res = await callApi("DELETE", `/users/${u.userId}`);
        if (res.status === 200) {
          u.last = "deleted";
          churn.deletions!++;
        }
      }
    } catch {
      // An eviction or a fault interrupted it: the web app would show an error and retry later.
    } finally {
      u.busy = false;
    }
  }

  async function session(u: SoakUser) {
    while (Date.now() < end) {
      const started = Date.now();
      // Now and then more validity than a 3-second token has: a rotation each time.
      const scoped = u.side === GITHUB && Math.random() < 0.2 ? { scope: "repository" } : {};
      const res = await callApi("POST", `/users/${u.userId}/token`, { appType: u.side.appType, repository: u.side.repository, minValiditySeconds: pick([1, 1, 1, 5]), ...scoped });
      if (res.body?.reason === "github_unavailable" && Date.now() - started >= 0.9 * TIMEOUT_MS) u.timeouts++;
      requests++;
      if (res.status >= 500 && !["github_unavailable", "app_misconfigured", "broker_unavailable"].includes(res.body?.reason)) fiveHundreds++;
      const reason = `${u.side.name}${"scope" in scoped ? " scoped" : ""}:${res.body?.ok ? "ok" : String(res.body?.reason)}`;
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      if (/:(reconnect_required|revoked|not_connected)$/.test(reason) && Math.random() < 0.3) await lifecycle(u, "reconnect");
      await sleep(5 + Math.random() * 25);
    }
  }

  /** An agent's git client: redeems the user's capability in a loop, issuing one when it has none. */
  async function redeemer(u: SoakUser) {
    while (Date.now() < end) {
      if (!u.capability && !u.capBusy) {
        u.capBusy = true;
        const issued = await callApi("POST", `/users/${u.userId}/capabilities`, { appType: "standard", repository: "acme/app", sessionId: "cap" }).catch(() => null);
        u.capability = issued?.status === 200 ? issued.body.capability : null;
        u.capBusy = false;
      }
      const capability = u.capability;
      if (capability) {
        const res = await publicFetch(REFS, { headers: { authorization: `Basic ${btoa(`x:${capability}`)}` } });
        const outcome = res.status === 200 ? "ok" : (await res.text()).split(":")[0]!.slice(0, 40);
        await res.body?.cancel().catch(() => undefined);
        redemptions[outcome] = (redemptions[outcome] ?? 0) + 1;
        if (res.status === 401 || res.status === 403) u.capability = null;
      }
      await sleep(20 + Math.random() * 40);
    }
  }

  /** Revokes a user's capability with redemptions in flight; none may reach GitHub until the next one is issued. */
  async function revokeCapability(u: SoakUser) {
    if (u.capBusy) return;
    u.capBusy = true;
    try {
      const res = await callApi("DELETE", `/users/${u.userId}/capabilities/cap`);
      if (res.status === 200 && res.body.revoked > 0) {
        const from = await emulator.mark();
        churn.capabilityRevocations!++;
        await sleep(150 + Math.random() * 200); // the redeemer keeps trying the revoked capability
        u.capWindows.push({ from, to: await emulator.mark() });
      }
      u.capability = null;
    } finally {
      u.capBusy = false;
    }
  }

  /** The event receiver is down for the middle third of the run. */
  async function receiverOutage() {
    await sleep(Math.max(0, receiverDown.from - Date.now()));
    await receiver.down();
    const before = (await receiver.state()).attempts;
    // Queues of several events behind a failing head: three users reconnect twice.
    for (const u of users.filter((x) => !x.busy && x.last === "connected").slice(0, 3)) {
      void lifecycle(u, "reconnect").then(() => lifecycle(u, "reconnect"));
    }
    await sleep(Math.max(0, receiverDown.to - Date.now()));
    receiverDown.attempts = (await receiver.state()).attempts - before;
    // A queue behind a backing-off head: the alarm waits for the head (or a pending grant
    // revocation), never for a row behind it, whose due time has passed. One early alarm can
    // be an operation's own (a write schedules delivery); early in three looks is a spin.
    const early = new Map<string, string>();
    for (let look = 0; look < 3; look++) {
      if (look > 0) await sleep(300);
      for (const u of users) {
        const q = await runInDurableObject(actor(u.userId), async (_i, state) => {
          const sql = state.storage.sql;
          if (!sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'event_outbox'").toArray().length) return null;
          const head = sql.exec<{ t: number }>("SELECT next_attempt_at AS t FROM event_outbox ORDER BY seq LIMIT 1").toArray()[0]?.t ?? null;
          const rows = sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM event_outbox").one().n;
          const revocation = sql.exec<{ t: number | null }>("SELECT MIN(next_attempt_at) AS t FROM pending_revocations").one().t;
          return { head, rows, revocation, alarm: await state.storage.getAlarm() };
        });
        const due = q && q.head !== null && q.rows >= 2 && q.alarm !== null ? Math.min(q.head, q.revocation ?? Infinity) : null;
        if (look === 0 && due !== null) receiverDown.queued++;
        const isEarly = due !== null && q!.alarm! < due - 1000 && due > Date.now() + 1000;
        if (!isEarly) early.delete(u.userId);
        else if (look === 0 || early.has(u.userId)) early.set(u.userId, `${q!.rows} events queued, head due in ${due! - Date.now()} ms, alarm in ${q!.alarm! - Date.now()} ms`);
      }
    }
    for (const [userId, seen] of early) receiverDown.spinning.push(`${userId}: ${seen}`);
    await receiver.up();
  }

  async function chaos() {
    while (Date.now() < end) {
      const roll = Math.random();
      if (roll < 0.32) {
        await pick([GITHUB, GITHUB, GITLAB]).fault();
      } else if (roll < 0.55) {
        // Not awaited: an eviction waits for the actor's requests in flight, which never stop here.
        const u = pick(users.filter((x) => x.evictable));
        u.evicted++;
        churn.evictions!++;
        void evictDurableObject(actor(u.userId)).catch(() => undefined);
      } else if (roll < 0.62) {
        const u = pick(users.filter((x) => !x.busy && x.last === "connected" && x.side.revoke));
        if (u) {
          u.revokedByTest = true;
          await u.side.revoke!(u.current);
          churn.revocations!++;
        }
      } else if (roll < 0.7) {
        void lifecycle(pick(users), "otherAccount");
      } else if (roll < 0.76) {
        void lifecycle(pick(users), "disconnect");
      } else if (roll < 0.8) {
        void lifecycle(pick(users), "delete");
      } else if (roll < 0.88) {
        void revokeCapability(pick(users.filter((x) => x.side === GITHUB)));
      }
      await sleep(40 + Math.random() * 80);
    }
  }

  await Promise.all([
    chaos(),
    receiverOutage(),
    ...users.filter((u) => u.side === GITHUB).map(redeemer),
    ...users.flatMap((u) => Array.from({ length: SESSIONS }, () => session(u))),
  ]);
  while (users.some((u) => u.busy || u.capBusy)) await sleep(50);

  // Calm: no more faults; pending grant revocations get their retry; every connected user's
  // next call must settle the truth.
  await emulator.clearFaults();
  await gitlab.clearFaults();
  await emulator.settings({ accessTokenExpiresIn: 28_800 });
  await gitlab.settings({ accessTokenExpiresIn: 7200 });
  const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
  const lost: string[] = [];
  for (const u of users) {
    const { side } = u;
    await retryRevocationsNow(u.userId);
    if ((await storedRow(u.userId, side.appType as never))?.status === "connected") {
      // Make the broker spend its stored refresh token once more: a dead one shows now.
      await setStoredExpiry(u.userId, side.appType as never, Date.now() - 1);
      await callApi("POST", `/users/${u.userId}/token`, { appType: side.appType, repository: side.repository });
    }
    const row = await storedRow(u.userId, side.appType as never);
    let storedRefresh: string | null = null;
    if (row?.status === "connected") {
      storedRefresh = await open(keyring, row.refresh_token, { userId: u.userId, appType: side.appType, field: "refresh_token" });
      if (!storedRefresh || !(await side.refreshAlive(storedRefresh))) lost.push(`${u.userId}: connected with a refresh token ${side.name} does not know as live`);
      if (!(await identityIndexByKey(env, side.indexKey(row.github_user_id)).users({ appType: side.appType })).includes(u.userId)) lost.push(`${u.userId}: connected without an index link`);
    }
    for (const account of u.accounts) {
      const since = await side.history(account);
      const base = u.baseline.get(account) ?? { lost: 0, revocations: 0, reuses: 0 };
      // Evictions of this user's actor and the broker's own timeouts count as possible lost answers.
      const dropped = since.lost - base.lost + u.evicted + u.timeouts;
      const revoked = since.revocations - base.revocations;
      const reuses = since.reuses - base.reuses;
      if (reuses > dropped) lost.push(`${u.userId}/${account}: ${reuses} spent refresh tokens presented again, ${dropped} lost rotations`);
      const isCurrent = row?.github_user_id === String(account);
      if (isCurrent && row?.status === "reconnect_required" && dropped === 0 && revoked === 0) {
        lost.push(`${u.userId}: reconnect_required (${row.reason}) with no lost rotation or revocation`);
      }
      const forgotten = side.forgotten(await side.liveRefreshTokens(account), isCurrent && row?.status === "connected", storedRefresh);
      if (forgotten.length > 0 && dropped === 0) {
        lost.push(`${u.userId}/${account}: ${forgotten.length} live ${side.name} token(s) the broker forgot (row ${row?.status} ${row?.github_user_id}, last ${u.last})`);
      }
    }
    if (row?.status === "revoked" && !u.revokedByTest) lost.push(`${u.userId}: revoked, but the test did not revoke it`);
    if (!row && u.last === "connected") lost.push(`${u.userId}: no connection row, though the last lifecycle answer was a connect`);
    if (u.last === "deleted") {
      const rows = await userRows(u.userId);
      if (rows.length > 0) lost.push(`${u.userId}: ${rows.length} rows left after the account deletion`);
    }
    if (side === GITHUB) {
      const logins = new Set(u.accounts.map((a) => `soak${a}`));
      const git = (await emulator.gitRequests()).filter((r) => logins.has(r.login));
      for (const { from, to } of u.capWindows) {
        const late = git.filter((r) => r.seq > from && r.seq < to).length;
        if (late > 0) lost.push(`${u.userId}: ${late} git request(s) reached GitHub after the capability revocation answered`);
      }
      // Every scoped token GitHub still honours is one the broker holds for the current generation.
      const held = await heldScopedTokens(u.userId, row);
      const dropped = u.evicted + u.timeouts;
      for (const account of u.accounts) {
        const live = (await emulator.liveRefreshTokens("standard", account)).scopedTokens.filter((t) => !held.includes(t));
        if (live.length > 0 && dropped === 0) lost.push(`${u.userId}/${account}: ${live.length} live scoped token(s) the broker does not hold for its current generation`);
      }
    }
  }

  // The receiver is back: every event is delivered, in order per user, and none is lost.
  const eventProblems: string[] = [];
  for (const u of users) {
    for (let i = 0; i < 5; i++) await flushEvents(u.userId);
    const left = await runInDurableObject(actor(u.userId), (_i, state) =>
      state.storage.sql.exec("SELECT 1 FROM sqlite_master WHERE name = 'event_outbox'").toArray().length
        ? state.storage.sql.exec<{ n: number }>("SELECT COUNT(*) AS n FROM event_outbox").one().n
        : 0,
    );
    if (left > 0) eventProblems.push(`${u.userId}: ${left} events still queued with the receiver up`);
  }
  const delivered = (await receiver.state()).events;
  for (const u of users) {
    const seen = new Set<string>();
    const mine = delivered.filter((e) => e.userId === u.userId && !seen.has(e.id) && seen.add(e.id));
    for (let i = 1; i < mine.length; i++) {
      if (mine[i]!.at < mine[i - 1]!.at) eventProblems.push(`${u.userId}: ${mine[i]!.type} (${mine[i]!.at}) delivered after ${mine[i - 1]!.type} (${mine[i - 1]!.at})`);
    }
    const connected = mine.filter((e) => e.type === "connected").length;
    if (connected < u.connects) eventProblems.push(`${u.userId}: ${connected} connected events for ${u.connects} connects that answered`);
    const row = await storedRow(u.userId, u.side.appType as never);
    const expected = row ? [row.status as string] : ["disconnected", "deleted"];
    const last = mine.at(-1)?.type;
    if (!last || !expected.includes(last)) eventProblems.push(`${u.userId}: last event ${last}, but the connection is ${row?.status ?? "gone"}`);
  }
  // Backing off as a queue: a few attempts per user while the receiver is down, not one every 100 ms.
  const outageSeconds = (receiverDown.to - receiverDown.from) / 1000;
  const attemptBound = USERS * (2 + outageSeconds);
  if (receiverDown.attempts > attemptBound) eventProblems.push(`${receiverDown.attempts} delivery attempts in the ${outageSeconds}s outage (bound ${attemptBound})`);
  eventProblems.push(...receiverDown.spinning.map((s) => `the alarm spins: ${s}`));
  const [github, gitlabStats] = [await emulator.stats(), await gitlab.stats()];
  console.log(
    `soak: ${requests} requests, ${github.counts.refresh} GitHub and ${gitlabStats.counts.refresh} GitLab refreshes, ` +
      `faults and churn ${JSON.stringify({ github: github.faultsInjected, gitlab: gitlabStats.faultsInjected, ...churn })}, ` +
      `answers by provider and reason ${JSON.stringify(reasons)}, redemptions ${JSON.stringify(redemptions)}, ` +
      `events ${delivered.length} delivered, ${receiverDown.attempts} attempts while the receiver was down (${receiverDown.queued} users with a queue),  unexpected 5xx ${fiveHundreds}, lost connections ${lost.length}`,
  );
  expect(lost).toEqual([]);
  expect(eventProblems).toEqual([]);
  expect(churn.capabilityRevocations).toBeGreaterThan(0);
  expect(fiveHundreds).toBe(0);
  expect(requests).toBeGreaterThan(USERS * SESSIONS * 5);
  expect(github.counts.refresh).toBeGreaterThan(USERS / 2);
  expect(gitlabStats.counts.refresh).toBeGreaterThan(USERS / 3);
});
