/**
 * The connection store: **every write to a user's `connections` rows happens here**, and
 * every method is synchronous. A caller reads a row, awaits whatever it must (GitHub, crypto),
 * then calls one of these with the {@link Stamp} it read; the method compares and writes with
 * no `await` in between, so nothing can slip between the check and the write.
 *
 * ## Generations and versions
 *
 * - `generation` is a random 128-bit id given by {@link ConnectionStore.startGeneration} to
 *   every confirmed connect. It is never reused: not after a disconnect, not after an account
 *   deletion wipes storage (a counter restarting at 1 would be; that was the "version ABA").
 * - `version` counts pair rotations and state changes within a generation.
 *
 * A refresh carries both and writes only if both are unchanged; a lifecycle writer
 * (revocation) acts only on the generation it confirmed.
 *
 * Row format (migrations/user-actor): tokens are sealed strings (src/crypto.ts), times are
 * epoch ms on the broker's clock.
 *
 * ## The rows in memory
 *
 * Storage is the truth; the store keeps each App's row (or its absence) as last read, frozen,
 * so a hot token call reads no SQLite. Every write here drops the App's entry before and after
 * it writes, so the next read is the storage's; nothing else in the broker writes `connections`
 * except the account deletion's wipe, which calls {@link ConnectionStore.forget}. A writer
 * outside the store (a test, the local demo's expiry hook) calls {@link forgetConnectionRows}.
 * A failed commit resets the whole object, memory included.
 */
import type { ConnectionEventType, ConnectionReason } from "../contract";
import { randomString } from "../crypto";

/** A row of `connections`. */
export interface ConnectionRow {
  app_type: string;
  status: "connected" | "revoked" | "reconnect_required";
  reason: ConnectionReason | null;
  github_user_id: string;
  github_login: string;
  github_name: string | null;
  access_token: string | null;
  access_token_expires_at: number | null;
  refresh_token: string | null;
  refresh_token_expires_at: number | null;
  connected_at: number;
  updated_at: number;
  revoked_at: number | null;
  version: number;
  generation: string;
}

/** What an in-flight operation read: it may write only while both are unchanged. */
export interface Stamp {
  generation: string;
  version: number;
}

/** A token pair as stored: sealed strings and absolute expiries (epoch ms). */
export interface SealedPair {
  accessToken: string;
  accessTokenExpiresAt: number;
  refreshToken: string | null;
  refreshTokenExpiresAt: number | null;
}

export interface GitHubIdentity {
  id: string;
  login: string;
  name: string | null;
}

/** A change of a connection's state, reported synchronously by the store (see `onChange`). */
export interface StateChange {
  type: ConnectionEventType;
  appType: string;
  githubUserId: string;
  reason?: ConnectionReason;
}

/** Why a connection is removed: the user disconnected, the account is deleted, or another account replaced it. */
export type RemovalCause = "disconnected" | "deleted" | "replaced";

export function sameStamp(row: ConnectionRow | null, stamp: Stamp): boolean {
  return row !== null && row.generation === stamp.generation && row.version === stamp.version;
}

/** Each store's rows in memory, by the storage they mirror (see {@link forgetConnectionRows}). */
const rowsBySql = new WeakMap<SqlStorage, Map<string, ConnectionRow | null>>();

/** For a writer outside the store that changed `connections` behind it: the next read is the storage's. */
export function forgetConnectionRows(sql: SqlStorage): void {
  rowsBySql.get(sql)?.clear();
}

export class ConnectionStore {
  readonly #sql: SqlStorage;
  /** App → its row as last read (frozen), or `null` for none; dropped by every write. */
  readonly #rows = new Map<string, ConnectionRow | null>();
  /**
   * Called inside the same synchronous step as every state change (connected, disconnected,
   * revoked, reconnect_required, deleted): whatever it writes (the event outbox, the audit
   * trail) commits together with the change.
   */
  onChange: (change: StateChange) => void = () => undefined;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
    rowsBySql.set(sql, this.#rows);
  }

  /** The App's row (read-only: frozen), from memory unless a write dropped it since the last read. */
  get(appType: string): ConnectionRow | null {
    const known = this.#rows.get(appType);
    if (known !== undefined) return known;
    const row = (this.#sql.exec("SELECT * FROM connections WHERE app_type = ?", appType).toArray()[0] as unknown as ConnectionRow | undefined) ?? null;
    this.#rows.set(appType, row === null ? null : Object.freeze(row));
    return row;
  }

  /** Just the stamp: the re-check before a token is handed out. */
  stamp(appType: string): Stamp | null {
    return this.get(appType);
  }

  all(): ConnectionRow[] {
    return this.#sql.exec("SELECT * FROM connections ORDER BY app_type").toArray() as unknown as ConnectionRow[];
  }

  /** Drops every row from memory (the account deletion wiped the table). */
  forget(): void {
    this.#rows.clear();
  }

  /** A write to the App's row: dropped from memory before it (a throw leaves no stale entry) and after. */
  #write<T>(appType: string, fn: () => T): T {
    this.#rows.delete(appType);
    try {
      return fn();
    } finally {
      this.#rows.delete(appType);
    }
  }

  /** A confirmed connect: a new generation replaces whatever the App's row was. */
  startGeneration(appType: string, identity: GitHubIdentity, pair: SealedPair): ConnectionRow {
    this.#write(appType, () => this.#insertGeneration(appType, identity, pair));
    this.onChange({ type: "connected", appType, githubUserId: identity.id });
    return this.get(appType)!;
  }

  #insertGeneration(appType: string, identity: GitHubIdentity, pair: SealedPair): void {
    const now = Date.now();
    this.#sql.exec("DELETE FROM connections WHERE app_type = ?", appType);
    this.#sql.exec(
      `INSERT INTO connections (app_type, status, reason, github_user_id, github_login, github_name, access_token,
         access_token_expires_at, refresh_token, refresh_token_expires_at, connected_at, updated_at, revoked_at, version, generation)
       VALUES (?, 'connected', NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, 1, ?)`,
      appType,
      identity.id,
      identity.login,
      identity.name,
      pair.accessToken,
      pair.accessTokenExpiresAt,
      pair.refreshToken,
      pair.refreshTokenExpiresAt,
      now,
      now,
      randomString(16),
    );
  }

  /** A refresh's new pair, iff the row is still the one the refresh read. */
  storeRotated(appType: string, stamp: Stamp, pair: SealedPair): ConnectionRow | null {
    if (!sameStamp(this.get(appType), stamp)) return null;
    this.#write(appType, () =>
      this.#sql.exec(
        `UPDATE connections SET access_token = ?, access_token_expires_at = ?, refresh_token = ?, refresh_token_expires_at = ?,
           updated_at = ?, version = version + 1 WHERE app_type = ?`,
        pair.accessToken,
        pair.accessTokenExpiresAt,
        pair.refreshToken,
        pair.refreshTokenExpiresAt,
        Date.now(),
        appType,
      ),
    );
    return this.get(appType);
  }

  /** The same pair re-sealed under the primary key; the pair (and `version`) is unchanged. */
  reseal(appType: string, stamp: Stamp, accessToken: string, refreshToken: string | null): boolean {
    if (!sameStamp(this.get(appType), stamp)) return false;
    this.#write(appType, () => this.#sql.exec("UPDATE connections SET access_token = ?, refresh_token = ? WHERE app_type = ?", accessToken, refreshToken, appType));
    return true;
  }

  /**
   * Moves a connection to `revoked` / `reconnect_required` and wipes its tokens, iff it is
   * still the generation (and, when given, the version) the caller read.
   */
  markBroken(appType: string, expected: { generation: string; version?: number }, status: "revoked" | "reconnect_required", reason: ConnectionReason): ConnectionRow | null {
    const row = this.get(appType);
    if (!row || row.generation !== expected.generation || (expected.version !== undefined && row.version !== expected.version)) return null;
    const now = Date.now();
    this.#write(appType, () =>
      this.#sql.exec(
        `UPDATE connections SET status = ?, reason = ?, access_token = NULL, access_token_expires_at = NULL,
           refresh_token = NULL, refresh_token_expires_at = NULL, revoked_at = ?, updated_at = ?, version = version + 1
         WHERE app_type = ?`,
        status,
        reason,
        status === "revoked" ? now : row.revoked_at,
        now,
        appType,
      ),
    );
    this.onChange({ type: status, appType, githubUserId: row.github_user_id, reason });
    return this.get(appType);
  }

  /** Removes the App's connection, iff it is still the generation the caller read. */
  remove(appType: string, generation: string, cause: RemovalCause): boolean {
    const row = this.get(appType);
    if (!row || row.generation !== generation) return false;
    this.#write(appType, () => this.#sql.exec("DELETE FROM connections WHERE app_type = ?", appType));
    // A replaced connection reports the new one's `connected` instead.
    if (cause !== "replaced") this.onChange({ type: cause, appType, githubUserId: row.github_user_id });
    return true;
  }
}
