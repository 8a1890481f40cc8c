/**
 * The interleaving explorer, for GitHub and GitLab connections alike. For every ordered pair
 * (A, B) of one user's operations, and for every point where A waits on something outside the
 * actor (a GitHub or GitLab request, or a call into the identity index), it holds A there, runs
 * B to completion (or until B is visibly waiting for A, which is serialization doing its job),
 * releases A, and checks the invariants against the emulator's truth:
 *
 * - a `connected` row's refresh token is live at the provider, and its identity-index link exists;
 * - every token handed out was live when handed out: it was not killed by a rotation that had
 *   already reached the provider when the answer arrived ("doomed"), and it is valid for the
 *   `minValiditySeconds` asked; a token killed by a revocation is excused only when the pair
 *   revoked, disconnected, deleted or replaced the connection;
 * - after a deletion nothing of the user remains and no grant the broker obtained is live;
 * - no grant is live at the provider that the broker has forgotten (without faults there is no
 *   lost rotation to excuse one);
 * - no answer is a 5xx.
 *
 * Both emulators number arrivals and hold requests with one counter (vitest.config.ts), so a
 * hold point is a GitHub request, a GitLab request or an index call alike. GitLab sends no
 * revocation webhook, so its operations are the seven others.
 *
 * A rotation by a *later* request can still kill a token handed out earlier: single-use
 * refresh makes that unavoidable, and `/token/rejected` is how an agent recovers.
 */
import { runDurableObjectAlarm, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import { describe, expect, it } from "vitest";
import { loadKeyring, open } from "../src/crypto";
import { identityIndexByKey } from "../src/identity-index";
import { APPS } from "./support/env";
import { authorizeGitLab, connectGitLabUser, gitlab } from "./support/gitlab";
import { apps } from "./support/installations";
import {
  actor,
  authorizeAs,
  callApi,
  callbackTicket,
  confirmConnect,
  connectUser,
  emulator,
  pendingRevocations,
  publicFetch,
  retryRevocationsNow,
  revokeOnGitHub,
  setStoredExpiry,
  storedRow,
  userRows,
} from "./support/helpers";
import { GITHUB_TRUTH, GITLAB_TRUTH, type ProviderTruth } from "./support/truth";

type Op =
  | "refreshBig"
  | "tokenSmall"
  | "confirm"
  | "disconnect"
  | "delete"
  | "webhook"
  | "redeem"
  | "redeemEither"
  | "rejected"
  | "scoped"
  | "reconnect"
  | "revokeCap"
  | "otherRetry";
/** Operations that legitimately end the grant a token belongs to. */
const ENDS_GRANT: ReadonlySet<Op> = new Set(["confirm", "disconnect", "delete", "webhook"]);
/** A same-account reconnect keeps the grant but ends the generation, and its scoped tokens with it. */
const ENDS_SCOPED: ReadonlySet<Op> = new Set([...ENDS_GRANT, "reconnect"]);

/**
 * The operations that came with scoped tokens, capability revocation and cross-user pending
 * revocations are paired only with the operations that can interfere with them (both orders),
 * which keeps the explorer's length bounded; the nine lifecycle and token operations are
 * paired with each other exhaustively.
 */
const PARTNERS: Partial<Record<Op, ReadonlySet<Op>>> = {
  // A mint from one generation against everything that rotates or ends it.
  scoped: new Set(["refreshBig", "rejected", "confirm", "reconnect", "disconnect", "delete", "webhook", "scoped"]),
  // Confirming the same account again: a new generation of the same grant.
  reconnect: new Set(["refreshBig", "confirm", "reconnect", "disconnect", "delete", "webhook", "redeem", "scoped", "otherRetry"]),
  // `DELETE /capabilities/{sessionId}` against the redemptions it must stop.
  revokeCap: new Set(["redeem", "redeemEither"]),
  // Another platform user's pending revocation of the same GitHub account, retried by its
  // alarm, against everything that changes this user's link to that account.
  otherRetry: new Set(["confirm", "reconnect", "disconnect", "delete", "webhook"]),
};

/** Whether the explorer runs the ordered pair (a, b). */
function paired(a: Op, b: Op): boolean {
  if (!PARTNERS[a] && !PARTNERS[b]) return true;
  return !!PARTNERS[a]?.has(b) || !!PARTNERS[b]?.has(a);
}

/** What differs between the providers: connecting an account, the emulator's truth, the paths. */
interface Side extends ProviderTruth {
  repository: string;
  /** `info/refs` of the repository through the git proxy, where a capability is redeemed. */
  refsPath: string;
  ops: readonly Op[];
  /** Account ids start here (fresh ones per interleaving). */
  base: number;
  connect(userId: string, account: number): Promise<unknown>;
  addAccount(account: number): Promise<unknown>;
  /** Starts a connect as `account` and consents: the callback path. */
  consent(userId: string, account: number): Promise<string>;
  /** An access token's truth: alive, or what killed it and when (arrival number). */
  accessTruth(token: string): Promise<{ alive: boolean; killed?: { cause: string; seq: number } } | null>;
}

const GITHUB: Side = {
  ...GITHUB_TRUTH,
  repository: "acme/app",
  refsPath: "/git/acme/app.git/info/refs?service=git-upload-pack",
  // `redeemEither`: a `user_or_app` capability (the App is installed on acme in every run).
  ops: ["refreshBig", "tokenSmall", "confirm", "disconnect", "delete", "webhook", "redeem", "redeemEither", "rejected", "scoped", "reconnect", "revokeCap", "otherRetry"],
  base: 500_000,
  connect: (userId, id) => connectUser(userId, { id, login: `a${id}`, name: null, repos: { "acme/app": "push" } }),
  addAccount: (id) => emulator.addUser({ id, login: `b${id}`, name: null, repos: { "acme/app": "push" } }),
  consent: (userId, id) => authorizeAs(userId, id),
  accessTruth: async (token) => {
    const access = (await emulator.tokenState(token)).access;
    return access && { alive: access.alive, killed: access.killedBy };
  },
};

/** The standard test App's bot (test/support/env.ts): who pushes with its installation token. */
const BOT_LOGIN = `${APPS.standard.slug}[bot]`;

const GITLAB_PROJECT = "acme/platform/api";
const GITLAB: Side = {
  ...GITLAB_TRUTH,
  repository: GITLAB_PROJECT,
  refsPath: `/git/gitlab/${GITLAB_PROJECT}.git/info/refs?service=git-upload-pack`,
  // Scoped tokens are GitHub's; a GitLab reconnect is a confirm (every authorization is its own
  // token); a deletion's GitLab revocation has no cross-user check to race; and the GitLab
  // emulator does not number git requests, which the capability revocation's check reads.
  ops: ["refreshBig", "tokenSmall", "confirm", "disconnect", "delete", "redeem", "rejected"],
  base: 700_000,
  connect: (userId, id) => connectGitLabUser(userId, { id, username: `a${id}`, projects: { [GITLAB_PROJECT]: { level: 30 } } }),
  addAccount: (id) => gitlab.addUser({ id, username: `b${id}`, projects: { [GITLAB_PROJECT]: { level: 30 } } }),
  consent: async (userId, id) => (await authorizeGitLab(userId, id)).callbackPath,
  accessTruth: async (token) => {
    const state = await gitlab.tokenState(token);
    return state && { alive: state.alive, killed: state.killedBy ? { cause: state.killedBy, seq: state.killedSeq ?? 0 } : undefined };
  },
};

interface World {
  side: Side;
  userId: string;
  A: number;
  B: number;
  ticketB: string;
  capability: string;
  /** A `user_or_app` capability of the same session, where the side has `redeemEither`. */
  capabilityEither: string | null;
  currentToken: string;
  /** How many git requests the emulator had served when the world was set up. */
  gitSince: number;
  /** A second ticket for account A (a same-account reconnect), where the pair has `reconnect`. */
  ticketA: string | null;
  /**
   * Another platform user who connected the same account A and was deleted while GitHub
   * refused the revocation (pending), where the pair has `otherRetry`; and the refresh token
   * of that user's pair, which the broker leaves live so as not to end this user's grant.
   */
  other: { userId: string; refreshToken: string } | null;
}

interface Outcome {
  op: Op;
  status: number;
  reason?: string;
  /** `X-Broker-Identity` of a redemption that went through. */
  identity?: string | null;
  /** A capability revocation's `revoked`, and the arrival mark taken when it answered. */
  revoked?: { n: number; mark: number };
  handedOut?: { token: string; mark: number; minValidity: number; expiresInSeconds: number };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const settlesWithin = (p: Promise<unknown>, ms: number) => Promise.race([p.then(() => true, () => true), sleep(ms).then(() => false)]);

let counter = 0;

async function setup(side: Side, pair: readonly Op[] = []): Promise<World> {
  counter++;
  const userId = `ix-${side.appType}-${counter}`;
  const A = side.base + counter * 2;
  const B = A + 1;
  let other: World["other"] = null;
  // First, so that this user's connection is the later one: the deletion finds nobody else
  // connected with A, revokes, and GitHub refuses: the revocation stays pending.
  if (pair.includes("otherRetry")) {
    const otherId = `${userId}-other`;
    await connectUser(otherId, { id: A, login: `a${A}`, name: null, repos: { "acme/app": "push" } });
    const otherRow = (await storedRow(otherId, "standard"))!;
    const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
    const refreshToken = (await open(keyring, otherRow.refresh_token, { userId: otherId, appType: "standard", field: "refresh_token" }))!;
    await emulator.fault({ endpoint: "revoke_grant", kind: "status_5xx" });
    const deleted = await callApi("DELETE", `/users/${otherId}`);
    if (deleted.body?.githubGrants?.standard !== "pending") throw new Error(`the other user's deletion answered ${JSON.stringify(deleted.body)}`);
    other = { userId: otherId, refreshToken };
  }
  await side.connect(userId, A);
  await side.addAccount(B);
  const ticketB = await callbackTicket(await side.consent(userId, B));
  const issue = async (body: Record<string, unknown>) =>
    (await callApi("POST", `/users/${userId}/capabilities`, { appType: side.appType, repository: side.repository, sessionId: "s", ...body })).body.capability as string;
  const capability = await issue({});
  const capabilityEither = side.ops.includes("redeemEither") ? await issue({ identity: "user_or_app" }) : null;
  // Valid for 30 more minutes: a small request takes it, a big one refreshes.
  await setStoredExpiry(userId, side.appType as never, Date.now() + 1800_000);
  const currentToken = (await token(side, userId, 60)).body.token;
  // Against a capability revocation, the redemption must refresh first (less than the two
  // minutes a redemption needs): the window between the capability check and the token.
  if (pair.includes("revokeCap")) await setStoredExpiry(userId, side.appType as never, Date.now() + 60_000);
  const ticketA = pair.includes("reconnect") ? await callbackTicket(await side.consent(userId, A)) : null;
  const gitSince = (await emulator.gitRequests()).length;
  return { side, userId, A, B, ticketB, capability, capabilityEither, currentToken, gitSince, ticketA, other };
}

function token(side: Side, userId: string, minValiditySeconds: number) {
  return callApi("POST", `/users/${userId}/token`, { appType: side.appType, repository: side.repository, minValiditySeconds });
}

async function tokenOp(op: Op, w: World, minValidity: number, call: () => Promise<{ status: number; body: any }>): Promise<Outcome> {
  const res = await call();
  const mark = await emulator.mark();
  const out: Outcome = { op, status: res.status, reason: res.body?.reason };
  if (res.status === 200) out.handedOut = { token: res.body.token, mark, minValidity, expiresInSeconds: res.body.expiresInSeconds };
  return out;
}

const RUN: Record<Op, (w: World) => Promise<Outcome>> = {
  refreshBig: (w) => tokenOp("refreshBig", w, 3600, () => token(w.side, w.userId, 3600)),
  tokenSmall: (w) => tokenOp("tokenSmall", w, 60, () => token(w.side, w.userId, 60)),
  rejected: (w) => tokenOp("rejected", w, 0, () => callApi("POST", `/users/${w.userId}/token/rejected`, { appType: w.side.appType, token: w.currentToken })),
  confirm: async (w) => {
    const res = await confirmConnect(w.userId, w.ticketB);
    return { op: "confirm", status: res.status, reason: res.body?.reason };
  },
  disconnect: async (w) => {
    const res = await callApi("DELETE", `/users/${w.userId}/connection?appType=${w.side.appType}`);
    return { op: "disconnect", status: res.status, reason: res.body?.reason ?? res.body?.githubGrant };
  },
  delete: async (w) => {
    const res = await callApi("DELETE", `/users/${w.userId}`);
    return { op: "delete", status: res.status, reason: res.body?.reason };
  },
  webhook: async (w) => ({ op: "webhook", status: (await revokeOnGitHub({ id: w.A, login: `a${w.A}` })).status }),
  scoped: (w) =>
    tokenOp("scoped", w, 60, () => callApi("POST", `/users/${w.userId}/token`, { appType: w.side.appType, repository: w.side.repository, scope: "repository", minValiditySeconds: 60 })),
  reconnect: async (w) => {
    const res = await confirmConnect(w.userId, w.ticketA!);
    return { op: "reconnect", status: res.status, reason: res.body?.reason };
  },
  revokeCap: async (w) => {
    const res = await callApi("DELETE", `/users/${w.userId}/capabilities/s`);
    return { op: "revokeCap", status: res.status, reason: res.body?.reason, revoked: { n: res.body?.revoked ?? 0, mark: await emulator.mark() } };
  },
  otherRetry: async (w) => {
    await retryRevocationsNow(w.other!.userId);
    return { op: "otherRetry", status: 200 };
  },
  redeem: (w) => redeemOp("redeem", w, w.capability),
  redeemEither: (w) => redeemOp("redeemEither", w, w.capabilityEither!),
};

/** `info/refs` through the git proxy with a capability: what git's first request of a clone does. */
async function redeemOp(op: Op, w: World, capability: string): Promise<Outcome> {
  const res = await publicFetch(w.side.refsPath, { headers: { authorization: `Basic ${btoa(`x:${capability}`)}` } });
  if (res.status === 200) {
    await res.body?.cancel();
    return { op, status: 200, identity: res.headers.get("x-broker-identity") };
  }
  return { op, status: res.status, reason: (await res.text()).split(":")[0] };
}

/**
 * The 5xx answers the contract gives when the other operation changed the connection under
 * this one: a scoped mint whose generation ended (or whose grant GitHub revoked) while GitHub
 * minted answers `github_unavailable` (try again: the retry sees the new state), and a
 * same-account reconnect whose grant the user revoked at GitHub mid-confirm cannot exchange.
 */
function excused5xx(o: Outcome, pair: readonly Op[]): boolean {
  if (o.op === "scoped") return o.reason === "github_unavailable" && pair.some((p) => ENDS_SCOPED.has(p));
  if (o.op === "reconnect") return o.reason === "exchange_failed" && pair.includes("webhook");
  return false;
}

async function violations(w: World, pair: [Op, Op], outcomes: Outcome[]): Promise<string[]> {
  const { side } = w;
  const found: string[] = [];
  for (const o of outcomes) if (o.status >= 500 && !excused5xx(o, pair)) found.push(`${o.op} answered ${o.status} ${o.reason ?? ""}`);
  const row = await storedRow(w.userId, side.appType as never);
  const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
  let storedRefresh: string | null = null;
  if (row?.status === "connected") {
    storedRefresh = await open(keyring, row.refresh_token, { userId: w.userId, appType: side.appType, field: "refresh_token" });
    if (!storedRefresh || !(await side.refreshAlive(storedRefresh))) found.push(`connected with a refresh token ${side.name} does not honour`);
    if (!(await identityIndexByKey(env, side.indexKey(row.github_user_id)).users({ appType: side.appType })).includes(w.userId)) found.push("connected without its identity-index link");
  }
  for (const o of outcomes) {
    if (!o.handedOut) continue;
    const truth = await side.accessTruth(o.handedOut.token);
    if (!truth) {
      found.push(`${o.op} handed out a token ${side.name} never issued`);
      continue;
    }
    if (o.handedOut.expiresInSeconds < o.handedOut.minValidity) found.push(`${o.op} handed out a token valid for ${o.handedOut.expiresInSeconds}s < ${o.handedOut.minValidity}s`);
    const killed = truth.killed;
    if (!truth.alive && killed?.cause === "rotation" && killed.seq < o.handedOut.mark) found.push(`${o.op} handed out a doomed token (rotation #${killed.seq} had reached ${side.name} before answer mark #${o.handedOut.mark})`);
    const ends = o.op === "scoped" ? ENDS_SCOPED : ENDS_GRANT;
    if (!truth.alive && killed?.cause === "revocation" && !pair.some((p) => ends.has(p))) found.push(`${o.op}'s token was revoked though nothing in the pair ended the grant`);
  }
  const deleted = outcomes.find((o) => o.op === "delete" && o.status === 200);
  if (deleted) {
    const rows = await userRows(w.userId);
    if (rows.length > 0) found.push(`after the deletion ${rows.length} rows of the user remain: ${JSON.stringify(rows).slice(0, 300)}`);
    for (const account of [w.A, w.B]) {
      if ((await identityIndexByKey(env, side.indexKey(account)).users({ appType: side.appType })).includes(w.userId)) found.push(`after the deletion the index still links ${account}`);
    }
  }
  const pending = (await pendingRevocations(w.userId)) + (w.other ? await pendingRevocations(w.other.userId) : 0);
  if (pending > 0) found.push(`${pending} grant revocations still pending with ${side.name} up`);
  for (const account of [w.A, w.B]) {
    const live = await side.liveRefreshTokens(account);
    const connectedHere = row?.status === "connected" && row.github_user_id === String(account);
    const known = connectedHere && storedRefresh ? [storedRefresh] : [];
    // The other user's pair of the same grant: revoking it would end this user's connection.
    if (w.other && account === w.A && connectedHere) known.push(w.other.refreshToken);
    // A same-account reconnect keeps the grant: its older pair is the grant this row holds.
    if (pair.includes("reconnect") && connectedHere) known.push(...live);
    const forgotten = live.filter((t) => !known.includes(t));
    if (forgotten.length > 0) found.push(`${forgotten.length} live grant token(s) of ${side.name} user ${account === w.A ? "A" : "B"} the broker has forgotten`);
  }
  for (const o of outcomes) {
    if (!o.revoked || o.revoked.n === 0) continue;
    const late = (await emulator.gitRequests(w.gitSince)).filter((r) => r.seq > o.revoked!.mark);
    if (late.length > 0) found.push(`${late.length} git request(s) reached ${side.name} after the capability revocation answered revoked: ${o.revoked.n}`);
  }
  if (side === GITHUB && pair.some((p) => p === "scoped" || p === "reconnect")) found.push(...(await forgottenScopedTokens(w, row)));
  if (side === GITHUB) {
    // Whose tokens reached GitHub's git endpoint: the capabilities were issued under account A,
    // so A's token, or the App's bot for the `user_or_app` one, and never account B's.
    const allowed = new Set([`a${w.A}`, ...(pair.includes("redeemEither") ? [BOT_LOGIN] : [])]);
    for (const r of await emulator.gitRequests(w.gitSince)) if (!allowed.has(r.login)) found.push(`a redemption carried ${r.login}'s token`);
    for (const o of outcomes) if (o.status === 200 && (o.op === "redeem" ? o.identity !== "user" : o.op === "redeemEither" && !["user", "app"].includes(o.identity ?? ""))) found.push(`${o.op} said X-Broker-Identity: ${o.identity}`);
  }
  return found;
}

/**
 * Every scoped token GitHub still honours for account A or B must be one the broker holds
 * for the connection's current generation; anything else is a live token nobody will revoke.
 * The actor's alarm runs first: old generations' rows are its to revoke.
 */
async function forgottenScopedTokens(w: World, row: Record<string, any> | null): Promise<string[]> {
  await runDurableObjectAlarm(actor(w.userId));
  const rows = await runInDurableObject(actor(w.userId), (_i, state) =>
    state.storage.sql.exec("SELECT * FROM sqlite_master WHERE name = 'scoped_tokens'").toArray().length
      ? (state.storage.sql.exec("SELECT * FROM scoped_tokens").toArray() as Record<string, any>[])
      : [],
  );
  const keyring = await loadKeyring(env.TOKEN_ENCRYPTION_KEYS);
  const held: string[] = [];
  for (const r of rows) {
    if (row?.status !== "connected" || r.generation !== row.generation) continue;
    const field = `scoped:${r.generation}:${r.repository}:${r.permissions}`;
    const token = await open(keyring, r.token, { userId: w.userId, appType: r.app_type, field });
    if (token) held.push(token);
  }
  const found: string[] = [];
  for (const account of [w.A, w.B]) {
    const live = (await emulator.liveRefreshTokens("standard", account)).scopedTokens.filter((t) => !held.includes(t));
    if (live.length > 0) found.push(`${live.length} live scoped token(s) of account ${account === w.A ? "A" : "B"} the broker does not hold for its current generation`);
  }
  return found;
}

/** How many hold-eligible requests an operation makes when it runs alone. */
async function pointsOf(side: Side, op: Op): Promise<number> {
  const w = await setup(side, [op]);
  const before = await emulator.mark();
  await RUN[op](w);
  const after = await emulator.mark();
  return after - before - 1;
}

describe.each([GITHUB, GITLAB])("explorer, $name connections", (side) => {
  it("every ordered pair of one user's operations, held at each of the first one's waits", async () => {
    await emulator.reset();
    await gitlab.reset();
    await apps.install({ id: 9901, account: "acme", repositories: ["acme/app"], permissions: { contents: "write", pull_requests: "write" } });
    const points = {} as Record<Op, number>;
    for (const op of side.ops) points[op] = await pointsOf(side, op);
    let interleavings = 0;
    let blocked = 0;
    let pairs = 0;
    const failures: string[] = [];
    for (const a of side.ops) {
      for (const b of side.ops) {
        if (!paired(a, b)) continue;
        pairs++;
        for (let k = 0; k < points[a]; k++) {
          const started = Date.now();
          const w = await setup(side, [a, b]);
          const hold = await emulator.hold({ skip: k });
          const pa = RUN[a](w);
          const caught = await emulator.waitHeld(hold, pa);
          if (!caught) {
            await emulator.release(hold);
            await pa;
            break; // A made fewer waits this time; the remaining points do not exist
          }
          const pb = RUN[b](w);
          if (!(await settlesWithin(pb, 250))) blocked++;
          await emulator.release(hold);
          const outcomes = await Promise.all([pa, pb]);
          interleavings++;
          if (Date.now() - started > 4000) console.log(`slow interleaving: ${a} held at ${caught.endpoint} (#${k}), then ${b}: ${Date.now() - started} ms`);
          for (const v of await violations(w, [a, b], outcomes)) failures.push(`${a} held at ${caught.endpoint} (#${k}), then ${b}: ${v}`);
        }
      }
    }
    console.log(
      `interleaving explorer (${side.name}): ${interleavings} interleavings of ${pairs} ordered pairs of ${side.ops.length} operations (${blocked} where the second waited for the first), ${failures.length} violations`,
    );
    expect(failures).toEqual([]);
    expect(interleavings).toBeGreaterThan(pairs);
  }, 480_000);
});
