/**
 * The connect flow, in two phases (contract: "Two-phase connect"):
 *
 * 1. {@link ConnectFlow.begin}: a pending connect (nonce, sealed PKCE verifier, `returnTo`),
 *    named in the signed OAuth `state`.
 * 2. {@link ConnectFlow.callback}: GitHub sent *some* browser back with a code. The state's
 *    nonce is spent, the code is sealed with its verifier under a fresh ticket (stored only as
 *    a SHA-256), and the browser goes to `returnTo` with the ticket. Nothing is connected: the
 *    state proves which user *started* the connect, not which browser finished it.
 * 3. {@link ConnectFlow.confirm}: the web app's server, which knows who is signed in to that
 *    browser, presents the ticket to *that* user's actor. Only the actor of the user who
 *    started the connect holds the ticket; any other user gets `invalid_ticket`. Then the
 *    code is exchanged and the connection stored, as a lifecycle writer.
 */
import { failure, type CallbackErrorCode, type ConnectConfirmed, type Failure } from "../contract";
import { base64urlEncode, randomString, sha256 } from "../crypto";
import { CONNECTION_KEPT_CHANGING, exchangeFailure, INVALID_TICKET, missingKeyFailure } from "../failures";
import type { TokenSet } from "../providers/provider";
import { mintTicket } from "../connect-ticket";
import { identityIndexByKey } from "../identity-index";
import { logEvent } from "../log";
import type { ConnectionRow, ConnectionStore } from "./connection-store";
import type { CallContext } from "./context";
import type { GrantRevoker } from "./grant-revoker";
import type { Lifecycle } from "./lifecycle";
import type { Refresher } from "./refresher";
import type { TokenVault } from "./token-vault";

/** How long an authorize URL (and its PKCE verifier) stays usable. */
export const CONNECT_TTL_MS = 10 * 60_000;
/** How long a ticket waits for the web app's confirmation. */
export const TICKET_TTL_MS = 5 * 60_000;
/** Connects (and tickets) a user may have open at once; the oldest make room. */
const MAX_OPEN = 10;

export type CallbackResult = { ok: true; returnTo: string; ticket: string } | { ok: false; code: CallbackErrorCode; returnTo: string | null };

export interface ConnectFlowDeps {
  env: Env;
  sql: SqlStorage;
  store: ConnectionStore;
  refresher: Refresher;
  vault: TokenVault;
  revoker: GrantRevoker;
  lifecycle: Lifecycle;
  /** Makes sure the actor's alarm fires by `at` (sooner is kept). */
  alarmBy: (at: number) => Promise<void>;
}

/**
 * A confirm's grant is recorded for revocation before anything can interrupt the confirm, due
 * this much later, with the alarm set for it before the exchange: a confirm that completes
 * withdraws the record long before (an attempt that comes due meanwhile finds the App's
 * revocations paused), one cut short by a reset is revoked then.
 */
const CONFIRM_GRACE_MS = 60_000;

export class ConnectFlow {
  readonly #d: ConnectFlowDeps;

  constructor(deps: ConnectFlowDeps) {
    this.#d = deps;
  }

  /** Phase 1: records a pending connect; returns the nonce and the PKCE challenge. */
  async begin(c: CallContext, returnTo: string): Promise<{ nonce: string; codeChallenge: string; expiresAt: number }> {
    const nonce = randomString(18);
    const verifier = randomString(48);
    const sealed = await this.#d.vault.seal(c.keyring, c.userId, c.app.appType, `pkce:${nonce}`, verifier);
    const now = Date.now();
    const sql = this.#d.sql;
    sql.exec("DELETE FROM pending_connects WHERE expires_at <= ?", now);
    sql.exec(
      `DELETE FROM pending_connects WHERE nonce IN (SELECT nonce FROM pending_connects ORDER BY expires_at DESC LIMIT -1 OFFSET ?)`,
      MAX_OPEN - 1,
    );
    sql.exec(
      "INSERT INTO pending_connects (nonce, app_type, code_verifier, return_to, expires_at) VALUES (?, ?, ?, ?, ?)",
      nonce,
      c.app.appType,
      sealed,
      returnTo,
      now + CONNECT_TTL_MS,
    );
    return { nonce, codeChallenge: base64urlEncode(await sha256(verifier)), expiresAt: now + CONNECT_TTL_MS };
  }

  /** Phase 2: spends the state's nonce; keeps the code, sealed, under a new ticket. */
  async callback(c: CallContext, nonce: string, code: string | null): Promise<CallbackResult> {
    const sql = this.#d.sql;
    const pending = sql
      .exec<{ app_type: string; code_verifier: string; return_to: string; expires_at: number }>(
        "SELECT app_type, code_verifier, return_to, expires_at FROM pending_connects WHERE nonce = ?",
        nonce,
      )
      .toArray()[0];
    // Spent before anything else: a state is accepted once, whatever happens next.
    sql.exec("DELETE FROM pending_connects WHERE nonce = ?", nonce);
    if (!pending || pending.app_type !== c.app.appType) return { ok: false, code: "invalid_state", returnTo: null };
    const returnTo = pending.return_to;
    if (pending.expires_at <= Date.now()) return { ok: false, code: "expired_state", returnTo };
    if (code === null) return { ok: false, code: "access_denied", returnTo };

    const verifier = await this.#d.vault.open(c.keyring, c.userId, c.app.appType, `pkce:${nonce}`, pending.code_verifier);
    if (!verifier.ok) return { ok: false, code: "invalid_state", returnTo };
    const epoch = this.#d.lifecycle.epoch;
    const ticket = await mintTicket(this.#d.env.STATE_SIGNING_KEY, c.userId);
    const hash = await ticketHash(ticket);
    const [sealedCode, sealedVerifier] = await Promise.all([
      this.#d.vault.seal(c.keyring, c.userId, c.app.appType, `ticket:${hash}:code`, code),
      this.#d.vault.seal(c.keyring, c.userId, c.app.appType, `ticket:${hash}:verifier`, verifier.value),
    ]);
    // An account deletion that arrived meanwhile wiped this connect's user.
    if (epoch !== this.#d.lifecycle.epoch) return { ok: false, code: "invalid_state", returnTo };
    const now = Date.now();
    sql.exec("DELETE FROM connect_tickets WHERE expires_at <= ?", now);
    sql.exec(
      `DELETE FROM connect_tickets WHERE ticket_hash IN (SELECT ticket_hash FROM connect_tickets ORDER BY expires_at DESC LIMIT -1 OFFSET ?)`,
      MAX_OPEN - 1,
    );
    sql.exec(
      "INSERT INTO connect_tickets (ticket_hash, app_type, code, code_verifier, expires_at) VALUES (?, ?, ?, ?, ?)",
      hash,
      c.app.appType,
      sealedCode,
      sealedVerifier,
      now + TICKET_TTL_MS,
    );
    return { ok: true, returnTo, ticket };
  }

  /**
   * Spends a ticket that a confirm under another user id presented (api.ts routed it here by
   * the owner named in it): the owner's confirm with it is refused from now on.
   */
  async burn(ticket: string): Promise<void> {
    const spent = this.#d.sql.exec("DELETE FROM connect_tickets WHERE ticket_hash = ?", await ticketHash(ticket)).rowsWritten;
    if (spent > 0) logEvent({ event: "connect", outcome: "ticket_spent", detail: "presented by a confirm for another user" });
  }

  /** The App a ticket was issued for, without spending it; `null` for an unknown ticket. */
  async ticketApp(ticket: string): Promise<string | null> {
    const hash = await ticketHash(ticket);
    return this.#d.sql.exec<{ app_type: string }>("SELECT app_type FROM connect_tickets WHERE ticket_hash = ?", hash).toArray()[0]?.app_type ?? null;
  }

  /**
   * Phase 3 (`POST /v1/users/{userId}/connect/confirm`), a lifecycle writer: spends the
   * ticket, exchanges the code with its verifier, requires a refresh token, reads `/user`,
   * links the identity and stores a new generation. Once GitHub has issued tokens, every
   * way out that stores nothing hands the grant to the revoker.
   */
  confirm(c: CallContext, ticket: string): Promise<ConnectConfirmed | Failure> {
    const epoch = this.#d.lifecycle.epoch;
    return this.#d.lifecycle.run(async () => {
      if (epoch !== this.#d.lifecycle.epoch) return INVALID_TICKET;
      const hash = await ticketHash(ticket);
      const sql = this.#d.sql;
      const row = sql
        .exec<{ app_type: string; code: string; code_verifier: string; expires_at: number }>(
          "SELECT app_type, code, code_verifier, expires_at FROM connect_tickets WHERE ticket_hash = ?",
          hash,
        )
        .toArray()[0];
      sql.exec("DELETE FROM connect_tickets WHERE ticket_hash = ?", hash);
      if (!row || row.app_type !== c.app.appType || row.expires_at <= Date.now()) return INVALID_TICKET;
      const appType = c.app.appType;
      const code = await this.#d.vault.open(c.keyring, c.userId, appType, `ticket:${hash}:code`, row.code);
      const verifier = await this.#d.vault.open(c.keyring, c.userId, appType, `ticket:${hash}:verifier`, row.code_verifier);
      if (!code.ok || !verifier.ok) return (!code.ok && code.problem === "missing_key") || (!verifier.ok && verifier.problem === "missing_key") ? missingKeyFailure() : INVALID_TICKET;

      const log = (outcome: string, detail?: string) => logEvent({ event: "connect", userId: c.userId, appType, outcome, detail });
      // No revocation of this App's grants reaches GitHub from here until the new generation is
      // stored: on GitHub, revoking an old pair of this account's grant would end the new one.
      const resume = this.#d.revoker.pause(appType);
      try {
        await this.#d.revoker.settle(appType);
        return await this.#exchangeAndStore(c, code.value, verifier.value, epoch, resume, log);
      } finally {
        resume();
      }
    });
  }

  /** The rest of {@link confirm}, while the App's revocations are paused (`resume` ends that). */
  async #exchangeAndStore(c: CallContext, code: string, verifier: string, epoch: number, resume: () => void, log: (outcome: string, detail?: string) => void): Promise<ConnectConfirmed | Failure> {
    const appType = c.app.appType;
    // Set before the exchange: after it, the only awaits until the grant is recorded are local.
    await this.#d.alarmBy(Date.now() + CONFIRM_GRACE_MS);
    const exchanged = await c.provider.exchangeCode(c.app, code, verifier);
    if (!exchanged.ok) {
      log(exchanged.error.kind, exchanged.error.detail);
      return exchangeFailure(exchanged.error, c.provider.name);
    }
    const tokens = exchanged.value;
    // GitHub has issued a grant that lives in memory only: recorded for revocation before the
    // first await that reaches the network (sealing is local), withdrawn in the very step that
    // stores the generation. A reset anywhere in between leaves the record for the alarm.
    const record = await this.#d.revoker.prepare(c, appType, tokens, null);
    this.#d.revoker.enqueue(record, { dueAt: Date.now() + CONFIRM_GRACE_MS });
    if (tokens.refreshToken === null) {
      log("exchange_failed", "no refresh token: the App must have 'Expire user authorization tokens' on");
      resume();
      await this.#abandon(c, record.id, null);
      return failure("exchange_failed", c.provider.noRefreshToken);
    }
    const deleted = () => epoch !== this.#d.lifecycle.epoch;
    // Links this connect wrote (the new account's): a connect that ends up storing nothing
    // removes them again. The previous account's link stays with its connection.
    const unlinkOnLoss: string[] = [];
    let account: string | null = null;
    const lost = async (f: Failure, why: string) => {
      log("abandoned", why);
      resume();
      await this.#abandon(c, record.id, account);
      for (const gh of unlinkOnLoss) await this.#unlinkQuietly(c, gh);
      return f;
    };
    if (deleted()) return lost(INVALID_TICKET, "account deleted during the connect");
    const user = await c.provider.getUser(tokens.accessToken);
    if (!user.ok) return lost(exchangeFailure(user.error, c.provider.name), user.error.detail);
    account = user.value.id;
    if (deleted()) return lost(INVALID_TICKET, "account deleted during the connect");
    // The link is written before the connection, so no connection is ever unreachable by
    // the revocation webhook.
    try {
      await identityIndexByKey(this.#d.env, c.provider.identityKey(user.value.id)).link({ appType, userId: c.userId });
    } catch {
      return lost(failure("broker_unavailable", "The broker could not record the connection; try again.", 1), "identity index unreachable");
    }
    const before = this.#d.store.get(appType);
    if (!before || before.github_user_id !== user.value.id) unlinkOnLoss.push(user.value.id);
    if (deleted()) return lost(INVALID_TICKET, "account deleted during the connect");
    // Another account's grant is not forgotten: it goes to the revoker. So do the previous
    // tokens of the same account where each authorization is its own token (GitLab).
    const otherAccount = before !== null && before.github_user_id !== user.value.id;
    const retiring = otherAccount || (before !== null && c.provider.separateAuthorizations);
    const pair = await this.#d.vault.sealPair(c.keyring, c.userId, appType, tokens);
    // The previous generation ends in the same synchronous step as the new one starts (its end
    // is reported by the new one's `connected`): a connect that stores nothing, because a
    // deletion came meanwhile, leaves it as it was, for the deletion to end with its event.
    let stored: ConnectionRow | null = null;
    for (let round = 0; round < 3 && !stored; round++) {
      const retirement = retiring ? await this.#d.lifecycle.prepareRetirement(c, appType) : null;
      if (retirement && !retirement.ok) return lost(retirement, "could not retire the previous connection");
      await this.#d.refresher.settle(appType);
      if (deleted()) return lost(INVALID_TICKET, "account deleted during the connect");
      // One synchronous step: the previous generation to the revoker, a new generation stored
      // (the previous one's capabilities die with it). A refresh in between: prepare again.
      if (retirement?.value && !this.#d.lifecycle.commitRetirement(retirement.value, "replaced")) continue;
      stored = this.#d.store.startGeneration(appType, user.value, pair);
      // The grant is kept now: no longer one to revoke (the same synchronous step as the store).
      if (stored) this.#d.revoker.withdraw(record.id);
    }
    if (!stored) return lost(CONNECTION_KEPT_CHANGING, "the previous connection kept changing");
    this.#d.vault.remember(appType, pair.accessToken, tokens.accessToken);
    resume();
    if (retiring) {
      if (otherAccount) await this.#unlinkQuietly(c, before!.github_user_id);
      await Promise.all(this.#d.revoker.pending(appType).map((id) => this.#d.revoker.attempt(c, id)));
    }
    log("connected");
    return { ok: true, status: "connected", appType, githubUserId: stored.github_user_id, githubLogin: stored.github_login };
  }

  purgeExpired(now: number): void {
    this.#d.sql.exec("DELETE FROM pending_connects WHERE expires_at <= ?", now);
    this.#d.sql.exec("DELETE FROM connect_tickets WHERE expires_at <= ?", now);
  }

  /** A grant obtained by a connect that will store nothing (recorded as `id`): revoke it now, or from the alarm. */
  async #abandon(c: CallContext, id: string, account: string | null): Promise<void> {
    this.#d.revoker.identify(id, account);
    await this.#d.revoker.attempt(c, id);
  }

  async #unlinkQuietly(c: CallContext, githubUserId: string): Promise<void> {
    try {
      await identityIndexByKey(this.#d.env, c.provider.identityKey(githubUserId)).unlink({ appType: c.app.appType, userId: c.userId });
    } catch {
      // A stale link is harmless: the actor checks its own row before acting on a revocation.
    }
  }
}

async function ticketHash(ticket: string): Promise<string> {
  return [...(await sha256(ticket))].map((b) => b.toString(16).padStart(2, "0")).join("");
}
