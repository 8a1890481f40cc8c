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
 */
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
}

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
  /** Called in the same synchronous step as every enqueue (the actor makes sure its alarm runs). */
  onEnqueue: () => void = () => undefined;

  constructor(sql: SqlStorage, vault: TokenVault, objectId: string, connectedAccount: (appType: string) => string | null) {
    this.#sql = sql;
    this.#vault = vault;
    this.#owner = `object:${objectId}`;
    this.#connectedAccount = connectedAccount;
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

  /** Synchronous: the grant is now the revoker's to finish. */
  enqueue(p: PreparedRevocation): void {
    const now = Date.now();
    this.#sql.exec(
      `INSERT INTO pending_revocations (id, app_type, access_token, access_token_expires_at, refresh_token, refresh_token_expires_at,
         attempts, next_attempt_at, created_at, account) VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?, ?)`,
      p.id,
      p.appType,
      p.pair.accessToken,
      p.pair.accessTokenExpiresAt,
      p.pair.refreshToken,
      p.pair.refreshTokenExpiresAt,
      now,
      now,
      p.account,
    );
    this.onEnqueue();
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
    const app = c.config.apps.get(row.app_type);
    if (!app) return this.#later(row, "the App is no longer configured");
    const provider = c.providerFor(app);
    // Checked first too, so a pair of the connected account's grant is not even refreshed.
    if (this.#reconnected(provider, row, row.account)) return this.#done(row, "already_gone", RECONNECTED);
    const field = (name: string) => `revocation:${id}:${name}`;
    let access = await this.#vault.open(c.keyring, this.#owner, row.app_type, field("access_token"), row.access_token);
    if (!access.ok) return access.problem === "missing_key" ? this.#later(row, "encryption key missing") : this.#done(row, "already_gone", "undecryptable");
    let accessToken = access.value;
    const now = Date.now();
    if (row.access_token_expires_at - EXPIRY_MARGIN_MS <= now) {
      // The access token cannot revoke anything any more; the refresh token still can.
      if (!row.refresh_token || (row.refresh_token_expires_at !== null && row.refresh_token_expires_at <= now)) {
        return this.#done(row, "already_gone", "tokens expired");
      }
      const refresh = await this.#vault.open(c.keyring, this.#owner, row.app_type, field("refresh_token"), row.refresh_token);
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
      if (account === null && this.#connectedAccount(row.app_type) !== null) {
        // Whose grant is it? Only the token can say (a connect abandoned before reading the user).
        const who = await provider.getUser(accessToken);
        if (!who.ok) return who.error.kind === "unauthorized" ? this.#done(row, "already_gone", "token refused") : this.#later(row, who.error.detail);
        account = who.value.id;
      }
      // From here to the request to GitHub: no await.
      if (this.#paused.has(row.app_type)) return this.#later(row, "a connect of this App is in progress");
      if (this.#reconnected(provider, row, account)) return this.#done(row, "already_gone", RECONNECTED);
    }
    const outcome = await provider.revokeGrant(app, accessToken);
    if (outcome === "failed") return this.#later(row, "the provider did not confirm");
    return this.#done(row, outcome, "github answered");
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
