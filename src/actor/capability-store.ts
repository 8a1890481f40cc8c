/**
 * The capability store: the session capabilities a user's actor has issued (table
 * `capabilities`, see src/proxy/capability-token.ts for the format and why the actor keeps
 * them). Only a SHA-256 of a capability's secret is stored. A capability belongs to the
 * connection generation it was issued under and dies with it.
 */
import { failure, type CapabilityIdentity, type Failure, type Permission } from "../contract";
import { UNKNOWN_CAPABILITY } from "../failures";
import { DEFAULT_BRANCHES, type PushPolicy } from "../proxy/ref-policy";

export interface CapabilityRow {
  secret_hash: string;
  session_id: string;
  app_type: string;
  repository: string;
  permission: Permission;
  generation: string;
  expires_at: number;
  /** JSON array of ref patterns; `null`: the default policy. */
  branches: string | null;
  allow_delete: number;
  identity: CapabilityIdentity;
  /** The container a bound capability is redeemed from (egress only); `null`: unbound. */
  container_id: string | null;
}

/** A capability that starts out as the App is bound to no connection: no generation is empty. */
export const NO_GENERATION = "";

export interface NewCapability {
  secretHash: string;
  sessionId: string;
  appType: string;
  repository: string;
  permission: Permission;
  githubUserId: string;
  connectedAt: number;
  generation: string;
  expiresAt: number;
  policy: PushPolicy;
  identity: CapabilityIdentity;
  containerId: string | null;
}

export class CapabilityStore {
  readonly #sql: SqlStorage;

  constructor(sql: SqlStorage) {
    this.#sql = sql;
  }

  insert(cap: NewCapability): void {
    const now = Date.now();
    this.#sql.exec("DELETE FROM capabilities WHERE expires_at <= ?", now);
    this.#sql.exec(
      `INSERT INTO capabilities (secret_hash, session_id, app_type, repository, permission, github_user_id, connected_at, issued_at, expires_at, generation,
         branches, allow_delete, identity, container_id)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      cap.secretHash,
      cap.sessionId,
      cap.appType,
      cap.repository,
      cap.permission,
      cap.githubUserId,
      cap.connectedAt,
      now,
      cap.expiresAt,
      cap.generation,
      JSON.stringify(cap.policy.branches),
      cap.policy.allowDelete ? 1 : 0,
      cap.identity,
      cap.containerId,
    );
  }

  /**
   * The capability for a redemption, after the checks that need no connection: known, from
   * the container it is bound to (if any; `containerId` is the egress door's, `null` at a
   * public door), not expired, this repository (case-insensitively, as GitHub compares),
   * enough permission. A bound capability from elsewhere is answered exactly like an unknown one.
   */
  find(secretHash: string, repository: string | null, write: boolean, containerId: string | null): CapabilityRow | Failure {
    const cap = this.#sql
      .exec(
        "SELECT secret_hash, session_id, app_type, repository, permission, generation, expires_at, branches, allow_delete, identity, container_id FROM capabilities WHERE secret_hash = ?",
        secretHash,
      )
      .toArray()[0] as unknown as CapabilityRow | undefined;
    if (!cap || (cap.container_id !== null && cap.container_id !== containerId)) return UNKNOWN_CAPABILITY;
    if (cap.expires_at <= Date.now()) {
      this.#sql.exec("DELETE FROM capabilities WHERE secret_hash = ?", secretHash);
      return failure("expired_capability", "The capability has expired; ask the broker for a new one.");
    }
    if (repository !== null && cap.repository.toLowerCase() !== repository.toLowerCase()) {
      return failure("repository_mismatch", `This capability is for ${cap.repository} only.`);
    }
    if (write && cap.permission !== "push") return failure("insufficient_permission", "This capability is read-only.");
    return cap;
  }

  /** The push policy a capability row carries (the default for rows from before policies). */
  static policyOf(cap: CapabilityRow): PushPolicy {
    let branches: string[] = [...DEFAULT_BRANCHES];
    if (cap.branches !== null) {
      let parsed: unknown = null;
      try {
        parsed = JSON.parse(cap.branches);
      } catch {
        // falls through to "nothing is pushable"
      }
      if (Array.isArray(parsed) && parsed.every((p) => typeof p === "string")) branches = parsed;
      else branches = []; // unreadable: nothing is pushable, never everything
    }
    return { branches, allowDelete: cap.allow_delete === 1 };
  }

  revokeSession(sessionId: string): number {
    return this.#sql.exec("DELETE FROM capabilities WHERE session_id = ?", sessionId).rowsWritten;
  }

  purgeExpired(now: number): void {
    this.#sql.exec("DELETE FROM capabilities WHERE expires_at <= ?", now);
  }
}
