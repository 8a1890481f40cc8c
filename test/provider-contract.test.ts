/**
 * The provider contract: the same cases, through the broker, against every provider's
 * emulator (as hono runs one router suite against every router). A provider that passes is
 * one the actor can serve: exchange, single-flight refresh of single-use refresh tokens,
 * identity, repository permissions, revocation, and the same contract reason for the same
 * kind of failure whatever the provider (the words name the provider that failed).
 *
 * What only one provider has stays in its own suite (GitHub: scoped tokens, SSO, installations,
 * webhooks; GitLab: nested groups, `created_at` expiries, reconnects that revoke the old pair).
 */
import { env } from "cloudflare:workers";
import { beforeEach, describe, expect, it } from "vitest";
import { loadKeyring, open } from "../src/crypto";
import { APPS, EMULATOR_URL, GITLAB_APP, GITLAB_URL } from "./support/env";
import { authorizeGitLab, connectGitLabUser, gitlab } from "./support/gitlab";
import { authorizeAs, callApi, callbackTicket, confirmConnect, connectUser, dumpStorage, emulator, setStoredExpiry, storedRow, type AppType } from "./support/helpers";

type Fault = "status_5xx" | "hang" | "drop_after_rotate" | "bad_client";
type TokenFate = { alive: boolean; killedBy: "rotation" | "revocation" | null } | null;

/** What the suite needs to drive one provider's emulator. */
interface ProviderDriver {
  /** The provider's name, as the broker's messages say it. */
  name: string;
  appType: string;
  /**
   * The provider account `id` (each test has its own: a GitHub grant is per account, and a
   * grant another platform user's connection holds is not revoked).
   */
  account(id: number): { id: string; login: string; committer: { name: string; email: string } };
  /** Repositories every account can push to, only pull from, and not see at all. */
  repos: { push: string; pull: string; none: string };
  reset(): Promise<void>;
  connect(userId: string, account: number): Promise<Record<string, any>>;
  /** Starts a connect and has the account approve it; the callback path. */
  authorize(userId: string, account: number): Promise<string>;
  fault(endpoint: "exchange" | "refresh" | "revoke", kind: Fault, count?: number): Promise<void>;
  clearFaults(): Promise<void>;
  counts(): Promise<{ refresh: number; revoke: number }>;
  fate(token: string): Promise<TokenFate>;
  liveRefreshTokens(account: number): Promise<string[]>;
  /** Presents `refreshToken` to the provider's token endpoint directly: whether it was accepted. */
  spend(refreshToken: string): Promise<boolean>;
}

const MONA = { login: "mona", name: "Mona Lisa", repos: { "acme/widgets": "push", "acme/readme": "pull" } as const };
const ALICE = { username: "alice", name: "Alice Liddell", projects: { "acme/platform/api": { level: 30 }, "acme/docs": { level: 20 } } };

const github: ProviderDriver = {
  name: "GitHub",
  appType: "standard",
  account: (id) => ({ id: String(id), login: MONA.login, committer: { name: MONA.name, email: `${id}+${MONA.login}@users.noreply.github.com` } }),
  repos: { push: "acme/widgets", pull: "acme/readme", none: "acme/secret" },
  reset: () => emulator.reset().then(() => undefined),
  connect: (userId, id) => connectUser(userId, { ...MONA, id }),
  authorize: async (userId, id) => {
    await emulator.addUser({ ...MONA, id });
    return authorizeAs(userId, id);
  },
  fault: (endpoint, kind, count = 1) => emulator.fault({ endpoint: endpoint === "revoke" ? "revoke_grant" : endpoint, kind, count }).then(() => undefined),
  clearFaults: () => emulator.clearFaults().then(() => undefined),
  counts: async () => {
    const { counts } = await emulator.stats();
    return { refresh: counts.refresh, revoke: counts.revoke_grant };
  },
  fate: async (token) => {
    const state = await emulator.tokenState(token);
    const s = state.refresh ?? state.access;
    return s ? { alive: s.alive, killedBy: s.killedBy?.cause ?? null } : null;
  },
  liveRefreshTokens: async (id) => (await emulator.liveRefreshTokens("standard", id)).refreshTokens,
  spend: async (refreshToken) => {
    const res = await fetch(`${EMULATOR_URL}/login/oauth/access_token`, {
      method: "POST",
      headers: { accept: "application/json" },
      body: new URLSearchParams({ client_id: APPS.standard.clientId, client_secret: APPS.standard.clientSecret, grant_type: "refresh_token", refresh_token: refreshToken }),
    });
    return typeof ((await res.json()) as { access_token?: unknown }).access_token === "string";
  },
};

const gitlabDriver: ProviderDriver = {
  name: "GitLab",
  appType: "gitlab",
  account: (id) => ({ id: String(id), login: ALICE.username, committer: { name: ALICE.name, email: `${id}-${ALICE.username}@users.noreply.gitlab.emulator` } }),
  repos: { push: "acme/platform/api", pull: "acme/docs", none: "acme/secret" },
  reset: () => gitlab.reset().then(() => undefined),
  connect: (userId, id) => connectGitLabUser(userId, { ...ALICE, id }),
  authorize: async (userId, id) => {
    await gitlab.addUser({ ...ALICE, id });
    return (await authorizeGitLab(userId, id)).callbackPath;
  },
  fault: (endpoint, kind, count = 1) => gitlab.fault({ endpoint, kind, count }).then(() => undefined),
  clearFaults: () => gitlab.clearFaults().then(() => undefined),
  counts: async () => {
    const { counts } = await gitlab.stats();
    return { refresh: counts.refresh, revoke: counts.revoke };
  },
  fate: async (token) => {
    const s = await gitlab.tokenState(token);
    return s ? { alive: s.alive, killedBy: (s.killedBy as "rotation" | "revocation" | undefined) ?? null } : null;
  },
  liveRefreshTokens: (id) => gitlab.liveRefreshTokens(id),
  spend: async (refreshToken) => {
    const res = await fetch(`${GITLAB_URL}/oauth/token`, {
      method: "POST",
      headers: { accept: "application/json" },
      body: new URLSearchParams({ client_id: GITLAB_APP.clientId, client_secret: GITLAB_APP.clientSecret, grant_type: "refresh_token", refresh_token: refreshToken }),
    });
    return typeof ((await res.json()) as { access_token?: unknown }).access_token === "string";
  },
};

for (const p of [github, gitlabDriver]) {
  const other = p === github ? gitlabDriver : github;
  const appType = p.appType as AppType;
  const token = (userId: string, body: Record<string, unknown> = {}) => callApi("POST", `/users/${userId}/token`, { appType: p.appType, repository: p.repos.push, ...body });
  const user = (name: string) => `${p.appType}-${name}`;
  /** A fresh provider account for each test. */
  let account = 0;
  let nextAccount = p === github ? 4300 : 7100;

  /** A stored token of `userId`, opened. */
  async function stored(userId: string, field: "access_token" | "refresh_token"): Promise<string | null> {
    const row = await storedRow(userId, appType);
    return open(await loadKeyring(env.TOKEN_ENCRYPTION_KEYS), row![field], { userId, appType: p.appType, field });
  }

  /** Connected, with the stored access token expired as far as the broker knows. */
  async function connectedExpired(userId: string) {
    await p.connect(userId, account);
    await setStoredExpiry(userId, appType, Date.now() - 1000);
    return { before: (await storedRow(userId, appType))!, refreshes: (await p.counts()).refresh };
  }

  describe(`provider contract: ${p.name}`, () => {
    beforeEach(async () => {
      await github.reset();
      await gitlabDriver.reset();
      account = nextAccount++;
    });

    it("exchange: the code becomes a stored, sealed pair; the answer names the account", async () => {
      const userId = user("exchange");
      const confirmed = await p.connect(userId, account);
      expect(confirmed).toMatchObject({ status: "connected", appType: p.appType, githubUserId: String(account), githubLogin: p.account(account).login });
      const answer = await token(userId);
      expect(answer.status).toBe(200);
      expect(answer.body.token).toBe(await stored(userId, "access_token"));
      expect(await p.fate(answer.body.token)).toMatchObject({ alive: true });
      expect(await dumpStorage(userId)).not.toContain(answer.body.token);
    });

    it("identity: the connection and every token carry the account and its no-reply committer", async () => {
      const userId = user("identity");
      await p.connect(userId, account);
      expect((await token(userId)).body.committer).toEqual(p.account(account).committer);
      const view = await callApi("GET", `/users/${userId}/connection?appType=${p.appType}`);
      expect(view.body).toMatchObject({ status: "connected", githubUserId: String(account), githubLogin: p.account(account).login });
    });

    it("refresh rotation: 200 concurrent callers on an expired token share one refresh and one new token; exactly one pair lives", async () => {
      const userId = user("rotate");
      const { before, refreshes } = await connectedExpired(userId);
      const oldAccess = await stored(userId, "access_token");
      const oldRefresh = await stored(userId, "refresh_token");
      const results = await Promise.all(Array.from({ length: 200 }, () => token(userId)));
      expect(results.every((r) => r.status === 200)).toBe(true);
      expect((await p.counts()).refresh - refreshes).toBe(1);
      const tokens = new Set(results.map((r) => r.body.token));
      expect(tokens.size).toBe(1);
      expect([...tokens][0]).toBe(await stored(userId, "access_token"));
      expect(await p.fate(oldRefresh!)).toMatchObject({ alive: false, killedBy: "rotation" });
      expect(await p.fate(oldAccess!)).toMatchObject({ alive: false, killedBy: "rotation" });
      expect(await p.liveRefreshTokens(account)).toEqual([await stored(userId, "refresh_token")]);
      expect((await storedRow(userId, appType))!.version).toBe(before.version + 1);
    });

    it("a spent refresh token is dead: the provider refuses it, the broker's new one works", async () => {
      const userId = user("spent");
      await connectedExpired(userId);
      const spent = await stored(userId, "refresh_token");
      expect((await token(userId)).status).toBe(200);
      expect(await p.spend(spent!)).toBe(false);
      await setStoredExpiry(userId, appType, Date.now() - 1000);
      expect((await token(userId)).status).toBe(200);
    });

    it("repository permission: push needs push, pull needs pull, an unseen repository is no_repo_access", async () => {
      const userId = user("perm");
      await p.connect(userId, account);
      expect((await token(userId, { repository: p.repos.push, permission: "push" })).status).toBe(200);
      expect((await token(userId, { repository: p.repos.pull, permission: "pull" })).status).toBe(200);
      for (const [repository, permission] of [[p.repos.pull, "push"], [p.repos.none, "pull"]] as const) {
        const refused = await token(userId, { repository, permission });
        expect(refused.status, `${permission} ${repository}`).toBe(403);
        expect(refused.body.reason).toBe("no_repo_access");
      }
    });

    it("revoke: a disconnect revokes at the provider; both tokens are dead, the user is not connected", async () => {
      const userId = user("revoke");
      await p.connect(userId, account);
      const access = await stored(userId, "access_token");
      const refresh = await stored(userId, "refresh_token");
      const revokes = (await p.counts()).revoke;
      const off = await callApi("DELETE", `/users/${userId}/connection?appType=${p.appType}`);
      expect(off.status).toBe(200);
      expect(off.body.githubGrant).toBe("revoked");
      expect((await p.counts()).revoke - revokes).toBe(1);
      expect(await p.fate(access!)).toMatchObject({ alive: false, killedBy: "revocation" });
      expect(await p.fate(refresh!)).toMatchObject({ alive: false, killedBy: "revocation" });
      expect((await token(userId)).body.reason).toBe("not_connected");
    });

    for (const kind of ["status_5xx", "hang"] as const) {
      it(`error mapping: ${p.name} ${kind === "hang" ? "hanging" : "failing with 5xx"} is github_unavailable, the tokens untouched, then recovery`, async () => {
        const userId = user(kind);
        const { before, refreshes } = await connectedExpired(userId);
        const refresh = await stored(userId, "refresh_token");
        await p.fault("refresh", kind, -1);
        const results = await Promise.all(Array.from({ length: 50 }, () => token(userId)));
        for (const r of results) {
          expect(r.status).toBe(503);
          // The contract's reason whatever the provider; the words name the one that failed.
          expect(r.body.reason).toBe("github_unavailable");
          expect(r.body.retryAfterSeconds).toBeGreaterThan(0);
          expect(r.body.message).toContain(p.name);
          expect(r.body.message).not.toContain(other.name);
        }
        // Callers share attempts: a failed attempt is not cached, but a burst is never one refresh per caller.
        expect((await p.counts()).refresh - refreshes).toBeLessThan(10);
        // The connection row is byte-for-byte the same, and the stored refresh token is still the live one.
        expect(await storedRow(userId, appType)).toEqual(before);
        expect(await p.fate(refresh!)).toMatchObject({ alive: true });
        expect((await callApi("GET", `/users/${userId}/connection?appType=${p.appType}`)).body.status).toBe("connected");
        await p.clearFaults();
        const after = await token(userId);
        expect(after.status).toBe(200);
        expect((await storedRow(userId, appType))!.refresh_token).not.toBe(before.refresh_token);
      });
    }

    it("error mapping: the App's client credentials refused is app_misconfigured, at the exchange and at a refresh, the tokens kept", async () => {
      const userId = user("client");
      await p.fault("exchange", "bad_client");
      const first = await confirmConnect(userId, await callbackTicket(await p.authorize(userId, account)));
      expect(first.status).toBe(503);
      expect(first.body.reason).toBe("app_misconfigured");
      const { before } = await connectedExpired(userId);
      await p.fault("refresh", "bad_client");
      const refused = await token(userId);
      expect(refused.status).toBe(503);
      expect(refused.body.reason).toBe("app_misconfigured");
      expect(await storedRow(userId, appType)).toEqual(before);
      expect((await token(userId)).status).toBe(200);
    });

    it("error mapping: a dead refresh token (its rotation's answer lost) is reconnect_required, and the broker stops asking", async () => {
      const userId = user("lost");
      const { before } = await connectedExpired(userId);
      const oldRefresh = await stored(userId, "refresh_token");
      await p.fault("refresh", "drop_after_rotate");
      const lost = await token(userId);
      expect(lost.body.reason).toBe("github_unavailable");
      // The provider did rotate: the stored refresh token is dead, but the broker could not know.
      expect(await p.fate(oldRefresh!)).toMatchObject({ alive: false, killedBy: "rotation" });
      expect(await storedRow(userId, appType)).toEqual(before);

      const next = await token(userId);
      expect(next.status).toBe(409);
      expect(next.body.reason).toBe("reconnect_required");
      expect(next.body.message).toContain(p.name);
      expect(next.body.message).not.toContain(other.name);
      const view = await callApi("GET", `/users/${userId}/connection?appType=${p.appType}`);
      expect(view.body).toMatchObject({ status: "reconnect_required", reason: "refresh_token_rejected" });
      const row = await storedRow(userId, appType);
      expect(row!.access_token).toBeNull();
      expect(row!.refresh_token).toBeNull();
      // No retry loop: a further call answers from storage without asking the provider.
      const refreshes = (await p.counts()).refresh;
      expect((await token(userId)).body.reason).toBe("reconnect_required");
      expect((await p.counts()).refresh).toBe(refreshes);
    });
  });
}
