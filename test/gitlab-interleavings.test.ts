/**
 * Interleavings for GitLab connections: for each operation A that waits on GitLab (a refresh,
 * a connect's code exchange, a disconnect's revocation), hold A's request at the emulator,
 * run another operation B of the same user to completion (or until it visibly waits for A),
 * release A, and check against the emulator's truth:
 *
 * - a `connected` row's refresh token is live at GitLab;
 * - no live refresh token at GitLab that the broker forgot (a reconnect's previous pair,
 *   a disconnected or deleted connection), unless a rotation's answer may have been lost;
 * - no answer is a 5xx other than `github_unavailable`.
 */
import { env } from "cloudflare:workers";
import { expect, it } from "vitest";
import { loadKeyring, open } from "../src/crypto";
import type { GitLabEndpoint } from "../emulator/gitlab";
import { authorizeGitLab, connectGitLabUser, gitlab, gitlabToken } from "./support/gitlab";
import { callApi, callbackTicket, confirmConnect, setStoredExpiry, storedRow } from "./support/helpers";

type Op = "refresh" | "token" | "reconnect" | "disconnect" | "delete";
const A_OPS: [Op, GitLabEndpoint][] = [
  ["refresh", "refresh"],
  ["reconnect", "exchange"],
  ["disconnect", "revoke"],
];
const B_OPS: Op[] = ["refresh", "token", "reconnect", "disconnect", "delete"];
const PROJECT = "acme/platform/api";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function run(op: Op, userId: string, gitlabId: number): Promise<{ status: number; reason?: string }> {
  const done = (r: { status: number; body: any }) => ({ status: r.status, reason: r.body?.reason });
  switch (op) {
    case "refresh":
      return done(await gitlabToken(userId, { repository: PROJECT, minValiditySeconds: 3600 }));
    case "token":
      return done(await gitlabToken(userId, { repository: PROJECT, minValiditySeconds: 0 }));
    case "reconnect": {
      const { callbackPath } = await authorizeGitLab(userId, gitlabId);
      return done(await confirmConnect(userId, await callbackTicket(callbackPath)));
    }
    case "disconnect":
      return done(await callApi("DELETE", `/users/${userId}/connection?appType=gitlab`));
    case "delete":
      return done(await callApi("DELETE", `/users/${userId}`));
  }
}

it("GitLab interleavings: every held GitLab request against every other operation keeps the truth", async () => {
  await gitlab.reset();
  await gitlab.settings({ clientTimeoutMs: Number((env as unknown as Record<string, string>).GITHUB_TIMEOUT_MS) });
  const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
  const problems: string[] = [];
  let explored = 0;
  let n = 0;
  for (const [a, endpoint] of A_OPS) {
    for (const b of B_OPS) {
      const userId = `gl-il-${++n}`;
      const gitlabId = 90_000 + n;
      await connectGitLabUser(userId, { id: gitlabId, username: `il${gitlabId}`, projects: { [PROJECT]: { level: 30 } } });
      await setStoredExpiry(userId, "gitlab" as never, Date.now() + 60_000);
      const hold = await gitlab.hold({ match: [endpoint] });
      const first = run(a, userId, gitlabId);
      let caught = false;
      for (let i = 0; i < 100 && !caught; i++) {
        caught = (await gitlab.held(hold)) !== null;
        if (!caught) await sleep(5);
      }
      // B runs to completion, or for a moment when it waits for A (serialization at work).
      const second = run(b, userId, gitlabId);
      await Promise.race([second, sleep(400)]);
      await gitlab.release(hold);
      const answers = await Promise.all([first, second]);
      if (caught) explored++;
      const label = `${a}(held) vs ${b}`;
      for (const r of answers) if (r.status >= 500 && r.reason !== "github_unavailable") problems.push(`${label}: ${r.status} ${r.reason}`);
      await sleep(50); // revocations attempted right after an answer
      const row = await storedRow(userId, "gitlab" as never);
      const live = await gitlab.liveRefreshTokens(gitlabId);
      const excused = (await gitlab.history(gitlabId)).lostRotations;
      let stored: string | null = null;
      if (row?.status === "connected") {
        stored = await open(keyring, row.refresh_token, { userId, appType: "gitlab", field: "refresh_token" });
        if (!(await gitlab.tokenState(stored!))?.alive) problems.push(`${label}: connected with a dead refresh token`);
      }
      const forgotten = live.filter((t) => t !== stored);
      if (forgotten.length > 0 && excused === 0) problems.push(`${label}: ${forgotten.length} live refresh token(s) the broker forgot (row ${row?.status ?? "none"})`);
    }
  }
  expect(problems).toEqual([]);
  // Every A reached GitLab and was held while B ran.
  expect(explored).toBe(A_OPS.length * B_OPS.length);
}, 120_000);
