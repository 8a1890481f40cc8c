/**
 * The grant revoker: a grant the broker obtained is never forgotten while it is live.
 *
 * Disconnect, account deletion, a connect that lost to a deletion, and a reconnect with
 * another GitHub account all end a grant. They first *move* its tokens into
 * `pending_revocations` (sealed under the object's own id, see token-vault.ts), in the same
 * synchronous step that removes the connection, and only then ask GitHub
 * (`DELETE /applications/{client_id}/grant`). A crash, a timeout or an outage in between
 * leaves the row, which the actor's alarm retries with backoff until GitHub confirms
 * (`revoked`, or `already_gone` on 404/422) or the tokens have expired. Attempts on one row
 * are single-flight, since one may spend the refresh token to get a usable access token.
 *
 * **One grant per (App, account) on GitHub.** A user who disconnects and then connects the same
 * account again holds a new pair of *the same grant*: revoking the old pair would end the new
 * connection. So, for a provider without separate authorizations, an attempt never sends the
 * revocation while a connect of that App is in progress ({@link GrantRevoker.pause}: it waits
 * for the next retry), and drops a row whose account is the one connected now (the grant is
 * the current connection's; its end is that connection's disconnect). Both checks run with no
 * `await` between them and the request to GitHub.
 *
 * **The grant may be another platform user's now.** The same GitHub account can be connected
 * under another platform user (an account deleted, then the person signs up again; two
 * platform accounts of one person). Before a grant is revoked, the identity index of the
 * account is asked ({@link InUseElsewhere}); where another platform user is connected with it,
 * the grant is not revoked; while another user's connect of the App is in flight, the attempt waits. Then only the
 * row's own access token is revoked (`DELETE /applications/{client_id}/token`), the finest
 * revocation that leaves the newer connection alone, and the row is forgotten: its refresh
 * token exists nowhere else and dies on its own (docs/lifecycle.md).
 *
 * **Single tokens** (`scope = 'token'`): a token that must die but whose grant must not (a
 * repository-scoped token minted from a generation that ended while GitHub answered) is revoked
 * alone, the same way, with the same retries.
 *
 * **Expiry first.** A row whose tokens have expired is dropped before anything else is looked
 * at, and a row of an App no longer configured never causes a request: it waits for its
 * expiry, so an actor whose rows are all of a removed App still empties.
 */
import type { AppConfig } from "../config";
import type { GrantOutcome } from "../contract";
import type { TokenSet } from "../providers/provider";
import { logEvent } from "../log";
import type { ServiceContext } from "./context";
import type { SealedPair } from "./connection-store";
import type { TokenVault } from "./token-vault";
import { randomString } from "../crypto";
import { singleFlight } from "../single-flight";

interface PendingRow {
  id: string;
  app_type: string;
  access_token: string;
  access_token_expires_at: number;
  refresh_token: string | null;
  refresh_token_expires_at: number | null;
  attempts: number;
  next_attempt_at: number;
  /** The provider account of the grant, where known. */
  account: string | null;
  /** `grant`: the whole authorization; `token`: that access token alone. */
  scope: "grant" | "token";
}

/**
 * Whether the grant of `account` is in use by another platform user's connection of that App
 * now (`in_use`), surely not (`free`), or cannot be told yet (`unsure`: a fresh link whose
 * connect may still be storing, or the index is unreachable).
 */
export type InUseElsewhere = (appType: string, identityKey: string, account: string) => Promise<"in_use" | "free" | "unsure">;

/** A grant's tokens, sealed for the revocation table, ready to be enqueued synchronously. */
export interface PreparedRevocation {
  id: string;
  appType: string;
  pair: SealedPair;
  account: string | null;
}

/** A token is treated as expired this long before its expiry (GitHub's clock may differ). */
const EXPIRY_MARGIN_MS = 60_000;
const BACKOFF_BASE_MS = 30_000;
const BACKOFF_MAX_MS = 6 * 3600_000;
const RECONNECTED = "the account is connected again: the grant is the current connection's";
const ELSEWHERE = "the account is connected under another platform user: the grant is that connection's";

export class GrantRevoker {
  readonly #sql: SqlStorage;
  readonly #vault: TokenVault;
  /** The seal context's owner for revocation rows: the object's id, not the user's. */
  readonly #owner: string;
  readonly #attempts = new Map<string, Promise<GrantOutcome>>();
  /** Connects in progress per App: no grant of that App is revoked meanwhile. */
  readonly #paused = new Map<string, number>();
  /** The account the App's connection is connected to now, or `null`. */
  readonly #connectedAccount: (appType: string) => string | null;
  readonly #inUseElsewhere: InUseElsewhere;
  /** Called in the same synchronous step as every enqueue (the actor makes sure its alarm runs). */
  onEnqueue: () => void = () => undefined;

  constructor(sql: SqlStorage, vault: TokenVault, objectId: string, connectedAccount: (appType: string) => string | null, inUseElsewhere: InUseElsewhere) {
    this.#sql = sql;
    this.#vault = vault;
    this.#owner = `object:${objectId}`;
    this.#connectedAccount = connectedAccount;
    this.#inUseElsewhere = inUseElsewhere;
  }

  /**
   * A connect of `appType` is about to obtain a grant: until the returned function is called,
   * no revocation of that App is sent (attempts wait for their next retry), and attempts
   * already at GitHub are awaited by {@link GrantRevoker.settle}.
   */
  pause(appType: string): () => void {
    this.#paused.set(appType, (this.#paused.get(appType) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      const left = (this.#paused.get(appType) ?? 1) - 1;
      if (left > 0) this.#paused.set(appType, left);
      else this.#paused.delete(appType);
    };
  }

  /** Whether a connect of `appType` is in progress here. */
  isPaused(appType: string): boolean {
    return this.#paused.has(appType);
  }

  /** Whether a connect of any App is in progress here. */
  anyPaused(): boolean {
    return this.#paused.size > 0;
  }

  /** Waits for the attempts in flight of `appType`'s grants. */
  async settle(appType: string): Promise<void> {
    const running = [...this.#attempts].filter(([id]) => this.appTypeOf(id) === appType).map(([, p]) => p.catch(() => undefined));
    await Promise.all(running);
  }

  /** Seals a grant's tokens for the revocation table (the only `await` of the hand-over). */
  async prepare(c: ServiceContext, appType: string, tokens: TokenSet, account: string | null): Promise<PreparedRevocation> {
    const id = randomString(12);
    return { id, appType, account, pair: await this.#vault.sealPair(c.keyring, this.#owner, appType, tokens, `revocation:${id}:`) };
  }

  /** Seals one access token to be revoked alone (`scope = 'token'`): see the module comment. */
  async prepareToken(c: ServiceContext, appType: string, token: string, expiresAt: number): Promise<PreparedRevocation> {
    return this.prepare(c, appType, { accessToken: token, accessTokenExpiresAt: expiresAt, refreshToken: null, refreshTokenExpiresAt: null }, null);
  }

  /**
   * Synchronous: the grant (or, for `scope: "token"`, the token) is now the revoker's to finish.
   * `dueAt`: its first attempt no sooner (a confirm's record, withdrawn when the confirm
   * completes); the caller has made sure the alarm runs by then.
   */
  enqueue(p: PreparedRevocation, options: { scope?: "grant" | "token"; dueAt?: number } = {}): void {
    const now = Date.now();
    this.#sql.exec(
      `INSERT INTO pending_revocations (id, app_type, access_token, access_token_expires_at, refresh_token, refresh_token_expires_at,
         attempts, next_attempt_at, created_at, account, scope) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?)`,
      p.id,
      p.appType,
      p.pair.accessToken,
      p.pair.accessTokenExpiresAt,
      p.pair.refreshToken,
      p.pair.refreshTokenExpiresAt,
      options.dueAt ?? now,
      now,
      p.account,
      options.scope ?? "grant",
    );
    if (options.dueAt === undefined) this.onEnqueue();
  }

  /** Synchronous: a pending revocation is no longer needed (its grant became a stored connection). */
  withdraw(id: string): void {
    this.#sql.exec("DELETE FROM pending_revocations WHERE id = ?", id);
  }

  /** Synchronous: records whose grant a pending revocation ends, once known; due now. */
  identify(id: string, account: string | null): void {
    this.#sql.exec("UPDATE pending_revocations SET account = COALESCE(?, account), next_attempt_at = ? WHERE id = ?", account, Date.now(), id);
  }

  /** Ids of the pending revocations of one App (or all). */
  pending(appType?: string): string[] {
    const rows = appType
      ? this.#sql.exec<{ id: string }>("SELECT id FROM pending_revocations WHERE app_type = ?", appType)
      : this.#sql.exec<{ id: string }>("SELECT id FROM pending_revocations");
    return rows.toArray().map((r) => r.id);
  }

  appTypeOf(id: string): string | null {
    return this.#sql.exec<{ app_type: string }>("SELECT app_type FROM pending_revocations WHERE id = ?", id).toArray()[0]?.app_type ?? null;
  }

  /** The earliest retry due, or `null` when nothing is pending. */
  nextAttemptAt(): number | null {
    return this.#sql.exec<{ t: number | null }>("SELECT MIN(next_attempt_at) AS t FROM pending_revocations").one().t;
  }

  /** Retries every pending revocation whose time has come. */
  async retryDue(c: ServiceContext): Promise<void> {
    const due = this.#sql.exec<{ id: string }>("SELECT id FROM pending_revocations WHERE next_attempt_at <= ?", Date.now()).toArray();
    await Promise.all(due.map((r) => this.attempt(c, r.id)));
  }

  /** One attempt at revoking a pending grant; single-flight per row. */
  attempt(c: ServiceContext, id: string): Promise<GrantOutcome> {
    return singleFlight(this.#attempts, id, () => this.#attempt(c, id));
  }

  async #attempt(c: ServiceContext, id: string): Promise<GrantOutcome> {
    const row = this.#row(id);
    if (!row) return "already_gone";
    const now = Date.now();
    const accessExpired = row.access_token_expires_at - EXPIRY_MARGIN_MS <= now;
    // Expiry first: a dead pair needs no request, whatever else is true of its App.
    if (accessExpired && (row.scope === "token" || !row.refresh_token || (row.refresh_token_expires_at !== null && row.refresh_token_expires_at <= now))) {
      return this.#done(row, "already_gone", "tokens expired");
    }
    const app = c.config.apps.get(row.app_type);
    // Never a request for an App no longer configured: the row waits for its expiry above.
    if (!app) return this.#later(row, "the App is no longer configured");
    const provider = c.providerFor(app);
    const field = (name: string) => `revocation:${id}:${name}`;
    let access = await this.#vault.open(c.keyring, this.#owner, row.app_type, field("access_token"), row.access_token);
    if (!access.ok) return access.problem === "missing_key" ? this.#later(row, "encryption key missing") : this.#done(row, "already_gone", "undecryptable");
    if (row.scope === "token") return this.#revokeToken(c, app, row, access.value, "a single token");
    // Checked first too, so a pair of the connected account's grant is not even refreshed.
    if (this.#reconnected(provider, row, row.account)) return this.#revokeToken(c, app, row, accessExpired ? null : access.value, RECONNECTED);
    let accessToken = access.value;
    if (accessExpired) {
      // The access token cannot revoke anything any more; the refresh token still can.
      const refresh = await this.#vault.open(c.keyring, this.#owner, row.app_type, field("refresh_token"), row.refresh_token!);
      if (!refresh.ok) return refresh.problem === "missing_key" ? this.#later(row, "encryption key missing") : this.#done(row, "already_gone", "undecryptable");
      const rotated = await provider.refresh(app, refresh.value);
      if (!rotated.ok) {
        if (rotated.error.kind === "bad_grant") return this.#done(row, "already_gone", "refresh token rejected");
        return this.#later(row, rotated.error.detail);
      }
      const pair = await this.#vault.sealPair(c.keyring, this.#owner, row.app_type, rotated.value, `revocation:${id}:`);
      this.#sql.exec(
        "UPDATE pending_revocations SET access_token = ?, access_token_expires_at = ?, refresh_token = ?, refresh_token_expires_at = ? WHERE id = ?",
        pair.accessToken,
        pair.accessTokenExpiresAt,
        pair.refreshToken,
        pair.refreshTokenExpiresAt,
        id,
      );
      accessToken = rotated.value.accessToken;
    }
    if (!provider.separateAuthorizations) {
      let account = row.account;
      if (account === null) {
        // Whose grant is it? Only the token can say (a connect abandoned before reading the
        // user; a row of a deleted account, which names no one).
        const who = await provider.getUser(accessToken);
        if (!who.ok) return who.error.kind === "unauthorized" ? this.#done(row, "already_gone", "token refused") : this.#later(row, who.error.detail);
        account = who.value.id;
      }
      // The grant is per (App, account): another platform user's connection may be using it.
      const elsewhere = await this.#askElsewhere(row.app_type, provider.identityKey(account), account);
      if (elsewhere === "in_use") return this.#revokeToken(c, app, row, accessToken, ELSEWHERE);
      if (elsewhere === "unsure") return this.#later(row, "the account may be connecting under another platform user");
      // From here to the request to GitHub: no await.
      if (!this.#row(id)) return "already_gone";
      if (this.#paused.has(row.app_type)) return this.#later(row, "a connect of this App is in progress");
      if (this.#reconnected(provider, row, account)) return this.#revokeToken(c, app, row, accessToken, RECONNECTED);
    }
    const outcome = await provider.revokeGrant(app, accessToken);
    if (outcome === "failed") return this.#later(row, "the provider did not confirm");
    return this.#done(row, outcome, "github answered");
  }

  /** The identity index's answer; an index that cannot be reached is `unsure`. */
  async #askElsewhere(appType: string, key: string, account: string): Promise<"in_use" | "free" | "unsure"> {
    try {
      return await this.#inUseElsewhere(appType, key, account);
    } catch {
      return "unsure";
    }
  }

  /**
   * Revokes `token` alone (the grant stays: it is in use, or the row is a single token), then
   * forgets the row; `null`: the token has expired, nothing to send. The outcome reported is
   * `already_gone`: the grant is no longer this row's to end.
   */
  async #revokeToken(c: ServiceContext, app: AppConfig, row: PendingRow, token: string | null, why: string): Promise<GrantOutcome> {
    if (token !== null) {
      const outcome = await c.providerFor(app).revokeToken(app, token);
      if (outcome === "failed") return this.#later(row, "GitHub did not confirm the token's revocation");
      if (row.scope === "token") return this.#done(row, outcome, why);
    }
    return this.#done(row, "already_gone", why);
  }

  /** Whether the grant is the current connection's: one grant per (App, account), and that account is connected. */
  #reconnected(provider: { separateAuthorizations: boolean }, row: PendingRow, account: string | null): boolean {
    return !provider.separateAuthorizations && account !== null && account === this.#connectedAccount(row.app_type);
  }

  #row(id: string): PendingRow | null {
    return (this.#sql.exec("SELECT * FROM pending_revocations WHERE id = ?", id).toArray()[0] as unknown as PendingRow | undefined) ?? null;
  }

  #done(row: PendingRow, outcome: "revoked" | "already_gone", detail: string): GrantOutcome {
    this.#sql.exec("DELETE FROM pending_revocations WHERE id = ?", row.id);
    logEvent({ event: "grant_revocation", appType: row.app_type, outcome, attempts: row.attempts + 1, detail });
    return outcome;
  }

  #later(row: PendingRow, detail: string): GrantOutcome {
    const attempts = row.attempts + 1;
    const next = Date.now() + Math.min(BACKOFF_BASE_MS * 2 ** (attempts - 1), BACKOFF_MAX_MS);
    this.#sql.exec("UPDATE pending_revocations SET attempts = ?, next_attempt_at = ? WHERE id = ?", attempts, next, row.id);
    logEvent({ event: "grant_revocation", level: "warn", appType: row.app_type, outcome: "pending", attempts, detail });
    return "pending";
  }
}
