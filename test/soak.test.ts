/**
 * The soak: many users, several agent sessions each, short-lived access tokens, and GitHub
 * misbehaving the whole time (5xx, hangs, rotations whose answer is lost, rate limits, wrong
 * client credentials, revocations with their webhooks), while actors are evicted at random.
 * It ends with the truth check against the emulator, which knows every live refresh token:
 *
 * - a `connected` user's stored refresh token must be alive at GitHub;
 * - `reconnect_required` is allowed only where GitHub rotated but the answer was lost (or the
 *   grant was revoked) since the user last connected;
 * - `revoked` only where the test revoked the grant and sent the webhook;
 * - a spent refresh token is presented to GitHub again only after a lost rotation (one
 *   retry each): more means two callers spent the same token.
 *
 * Anything else is a lost connection and fails the run. Size and length come from
 * SOAK_SECONDS, SOAK_USERS, SOAK_SESSIONS (vitest.config.ts; CI uses the defaults).
 */
import { sign } from "@octokit/webhooks-methods";
import { evictDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { loadKeyring, open } from "../src/crypto";
import type { GrantHistory } from "../emulator/github";
import { APPS } from "./support/env";
import { actor, connectUser, emulator, publicFetch, requestToken, setStoredExpiry, storedRow } from "./support/helpers";

const bindings = env as unknown as Record<string, string>;
const SECONDS = Number(bindings.SOAK_SECONDS ?? 15);
const USERS = Number(bindings.SOAK_USERS ?? 12);
const SESSIONS = Number(bindings.SOAK_SESSIONS ?? 3);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

interface SoakUser {
  userId: string;
  githubId: number;
  /** Emulator history when the user last connected: later entries excuse a loss. */
  baseline: GrantHistory;
  revokedByTest: boolean;
  reconnecting: boolean;
}

async function history(githubId: number) {
  const res = await fetch(`http://github.emulator/_emulator/history?clientId=${APPS.standard.clientId}&userId=${githubId}`);
  return (await res.json()) as GrantHistory;
}

async function connect(u: SoakUser) {
  u.baseline = await history(u.githubId);
  await connectUser(u.userId, { id: u.githubId, login: `soak${u.githubId}`, name: null, repos: { "acme/app": "push" } });
  u.revokedByTest = false;
}

it(`soak: ${USERS} users x ${SESSIONS} sessions for ${SECONDS}s under faults, then the truth check`, async () => {
  await emulator.reset();
  await emulator.settings({ accessTokenExpiresIn: 3, hangMs: 2500 });
  const users: SoakUser[] = Array.from({ length: USERS }, (_, i) => ({
    userId: `soak-${i}`,
    githubId: 50_000 + i,
    baseline: { droppedRotations: 0, revocations: 0, spentTokenReuses: 0 },
    revokedByTest: false,
    reconnecting: false,
  }));
  for (const u of users) await connect(u);

  const reasons: Record<string, number> = {};
  let requests = 0;
  let fiveHundreds = 0;
  const faults: Record<string, number> = { evictions: 0, revocations: 0, reconnects: 0 };
  const end = Date.now() + SECONDS * 1000;

  async function reconnect(u: SoakUser) {
    if (u.reconnecting) return;
    u.reconnecting = true;
    try {
      await connect(u);
      faults.reconnects!++;
    } finally {
      u.reconnecting = false;
    }
  }

  async function session(u: SoakUser) {
    while (Date.now() < end) {
      const res = await requestToken(u.userId, { repository: "acme/app", minValiditySeconds: 1 });
      requests++;
      if (res.status >= 500 && !["github_unavailable", "app_misconfigured"].includes(res.body?.reason)) fiveHundreds++;
      const reason = res.body?.ok ? "ok" : String(res.body?.reason);
      reasons[reason] = (reasons[reason] ?? 0) + 1;
      if ((reason === "reconnect_required" || reason === "revoked") && Math.random() < 0.3) await reconnect(u);
      await sleep(5 + Math.random() * 25);
    }
  }

  async function chaos() {
    while (Date.now() < end) {
      const roll = Math.random();
      if (roll < 0.25) {
        await emulator.fault({ endpoint: pick(["refresh", "refresh", "repo"] as const), kind: pick(["status_5xx", "hang", "rate_limit"] as const) });
      } else if (roll < 0.35) {
        await emulator.fault({ endpoint: "refresh", kind: "drop_after_rotate" });
      } else if (roll < 0.4) {
        await emulator.fault({ endpoint: "refresh", kind: "bad_client" });
      } else if (roll < 0.7) {
        try {
          await evictDurableObject(actor(pick(users).userId));
          faults.evictions!++;
        } catch {
          /* not running right now */
        }
      } else if (roll < 0.75) {
        const u = pick(users.filter((x) => !x.reconnecting));
        if (u) {
          u.revokedByTest = true;
          await emulator.revoke("standard", u.githubId);
          const body = JSON.stringify({ action: "revoked", sender: { id: u.githubId, login: `soak${u.githubId}` } });
          const res = await publicFetch("/webhooks/github/standard", {
            method: "POST",
            headers: {
              "x-github-event": "github_app_authorization",
              "x-github-delivery": crypto.randomUUID(),
              "x-hub-signature-256": await sign(APPS.standard.webhookSecret, body),
            },
            body,
          });
          expect(res.status).toBe(202);
          faults.revocations!++;
        }
      }
      await sleep(40 + Math.random() * 80);
    }
  }

  await Promise.all([chaos(), ...users.flatMap((u) => Array.from({ length: SESSIONS }, () => session(u)))]);

  // Calm: no more faults; every user's next call must settle the truth.
  await emulator.clearFaults();
  await emulator.settings({ accessTokenExpiresIn: 28_800 });
  const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
  const lost: string[] = [];
  for (const u of users) {
    if ((await storedRow(u.userId))?.status === "connected") {
      // Make the broker spend its stored refresh token once more: a dead one shows now.
      await setStoredExpiry(u.userId, "standard", Date.now() - 1);
      await requestToken(u.userId, { repository: "acme/app" });
    }
    const row = await storedRow(u.userId);
    const since = await history(u.githubId);
    const droppedSince = since.droppedRotations - u.baseline.droppedRotations;
    const revokedSince = since.revocations - u.baseline.revocations;
    const reusesSince = since.spentTokenReuses - u.baseline.spentTokenReuses;
    if (reusesSince > droppedSince) lost.push(`${u.userId}: ${reusesSince} spent refresh tokens presented again, ${droppedSince} lost rotations`);
    if (row?.status === "connected") {
      const refresh = await open(keyring, row.refresh_token, { userId: u.userId, appType: "standard", field: "refresh_token" });
      const state = refresh ? (await emulator.tokenState(refresh)).refresh : null;
      if (!state?.alive) lost.push(`${u.userId}: connected with a refresh token GitHub does not know as live`);
    } else if (row?.status === "reconnect_required") {
      if (droppedSince === 0 && revokedSince === 0) lost.push(`${u.userId}: reconnect_required (${row.reason}) with no lost rotation or revocation`);
    } else if (row?.status === "revoked") {
      if (!u.revokedByTest || revokedSince === 0) lost.push(`${u.userId}: revoked, but the test did not revoke it`);
    } else {
      lost.push(`${u.userId}: no connection row`);
    }
  }
  const stats = await emulator.stats();
  console.log(
    `soak: ${requests} requests, ${stats.counts.refresh} refreshes, faults injected ${JSON.stringify({ ...stats.faultsInjected, ...faults })}, ` +
      `answers by reason ${JSON.stringify(reasons)}, unexpected 5xx ${fiveHundreds}, lost connections ${lost.length}`,
  );
  expect(lost).toEqual([]);
  expect(fiveHundreds).toBe(0);
  expect(requests).toBeGreaterThan(USERS * SESSIONS * 5);
  expect(stats.counts.refresh).toBeGreaterThan(USERS);
}, 300_000);
