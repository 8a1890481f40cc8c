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

export class ConnectionStore {
  readonly #sql: SqlStorage;
  /**
   * Called inside the same synchronous step as every state change (connected, disconnected,
   * revoked, reconnect_required, deleted): whatever it writes (the event outbox, the audit
   * trail) commits together with the change.
   */
  onChange: (change: StateChange) => void = () => undefined;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  get(appType: string): ConnectionRow | null {
    return (this.#sql.exec("SELECT * FROM connections WHERE app_type = ?", appType).toArray()[0] as unknown as ConnectionRow | undefined) ?? null;
  }

  /** Just the stamp: the cheap re-check before a token is handed out. */
  stamp(appType: string): Stamp | null {
    return (this.#sql.exec("SELECT generation, version FROM connections WHERE app_type = ?", appType).toArray()[0] as unknown as Stamp | undefined) ?? null;
  }

  all(): ConnectionRow[] {
    return this.#sql.exec("SELECT * FROM connections ORDER BY app_type").toArray() as unknown as ConnectionRow[];
  }

  /** A confirmed connect: a new generation replaces whatever the App's row was. */
  startGeneration(appType: string, identity: GitHubIdentity, pair: SealedPair): ConnectionRow {
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
    this.onChange({ type: "connected", appType, githubUserId: identity.id });
    return this.get(appType)!;
  }

  /** A refresh's new pair, iff the row is still the one the refresh read. */
  storeRotated(appType: string, stamp: Stamp, pair: SealedPair): ConnectionRow | null {
    if (!sameStamp(this.get(appType), stamp)) return null;
    this.#sql.exec(
      `UPDATE connections SET access_token = ?, access_token_expires_at = ?, refresh_token = ?, refresh_token_expires_at = ?,
         updated_at = ?, version = version + 1 WHERE app_type = ?`,
      pair.accessToken,
      pair.accessTokenExpiresAt,
      pair.refreshToken,
      pair.refreshTokenExpiresAt,
      Date.now(),
      appType,
    );
    return this.get(appType);
  }

  /** The same pair re-sealed under the primary key; the pair (and `version`) is unchanged. */
  reseal(appType: string, stamp: Stamp, accessToken: string, refreshToken: string | null): boolean {
    if (!sameStamp(this.get(appType), stamp)) return false;
    this.#sql.exec("UPDATE connections SET access_token = ?, refresh_token = ? WHERE app_type = ?", accessToken, refreshToken, appType);
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
    this.#sql.exec(
      `UPDATE connections SET status = ?, reason = ?, access_token = NULL, access_token_expires_at = NULL,
         refresh_token = NULL, refresh_token_expires_at = NULL, revoked_at = ?, updated_at = ?, version = version + 1
       WHERE app_type = ?`,
      status,
      reason,
      status === "revoked" ? now : row.revoked_at,
      now,
      appType,
    );
    this.onChange({ type: status, appType, githubUserId: row.github_user_id, reason });
    return this.get(appType);
  }

  /** Removes the App's connection, iff it is still the generation the caller read. */
  remove(appType: string, generation: string, cause: RemovalCause): boolean {
    const row = this.get(appType);
    if (!row || row.generation !== generation) return false;
    this.#sql.exec("DELETE FROM connections WHERE app_type = ?", appType);
    // A replaced connection reports the new one's `connected` instead.
    if (cause !== "replaced") this.onChange({ type: cause, appType, githubUserId: row.github_user_id });
    return true;
  }
}
