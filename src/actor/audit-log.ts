/**
 * The user's audit trail (`GET /v1/users/{userId}/audit`): what was done with their GitHub
 * identity. Entries hold facts (repository, identity, scope, session, git service, refs
 * pushed, outcome, reason), never a token, code or secret; kept 90 days and at most
 * {@link MAX_ENTRIES}, deleted with the account.
 *
 * The hot path (a token handed out, a fetch through the proxy) must not pay a storage write
 * per request. Those are **coalesced**: the first of a kind (same App, repository, identity,
 * session...) in a minute writes an entry at once; the rest of that minute only count in
 * memory, and the count is written with the next write the actor makes anyway (or the alarm,
 * or a read of the trail). An eviction can lose part of a minute's count, never the fact that
 * it happened. Lifecycle changes, refreshes, capability issuance and pushes are written one by
 * one, in the same synchronous step as what they record.
 *
 * Nothing is written for an actor with no owner: after an account deletion, an operation
 * that began before it (a push the git proxy reports late, a token handed out across the
 * deletion) records nothing, so the deleted user's storage stays empty.
 */
import { rfc3339, type AuditEntry, type AuditKind } from "../contract";

export const AUDIT_RETENTION_MS = 90 * 24 * 3600_000;
const MAX_ENTRIES = 10_000;
const MINUTE = 60_000;

type Detail = Record<string, string | number | boolean | string[]>;

export class AuditLog {
  readonly #sql: SqlStorage;
  /** Whether the actor belongs to a user right now (`false` before the first write path, and after a deletion). */
  readonly #owned: () => boolean;
  /** Coalesced entries of the current minute: key → row id, its minute, and counts not yet written. */
  readonly #open = new Map<string, { id: number; minute: number; unwritten: number }>();

  constructor(sql: SqlStorage, owned: () => boolean) {
    this.#sql = sql;
    this.#owned = owned;
  }

  /** Writes one entry now (synchronous: call it in the step that does what it records). */
  record(kind: AuditKind, appType: string | null, detail: Detail): void {
    if (!this.#owned()) return;
    this.#flushCounts();
    this.#insert(kind, appType, detail);
  }

  /** Records a hot-path event: at most one write per kind and key per minute. */
  recordCoalesced(kind: AuditKind, appType: string | null, detail: Detail): void {
    if (!this.#owned()) return;
    const key = JSON.stringify([kind, appType, detail]);
    const minute = Math.floor(Date.now() / MINUTE);
    const open = this.#open.get(key);
    if (open && open.minute === minute) {
      open.unwritten++;
      return;
    }
    this.#flushCounts();
    this.#open.set(key, { id: this.#insert(kind, appType, detail), minute, unwritten: 0 });
  }

  /** Newest first; `before` is an entry id (the previous page's `nextBefore`). */
  list(limit: number, before: number | null): { entries: AuditEntry[]; nextBefore?: number } {
    this.#flushCounts();
    const rows = this.#sql
      .exec<{ id: number; at: number; kind: AuditKind; app_type: string | null; detail: string; count: number }>(
        "SELECT id, at, kind, app_type, detail, count FROM audit WHERE id < ? ORDER BY id DESC LIMIT ?",
        before ?? Number.MAX_SAFE_INTEGER,
        limit + 1,
      )
      .toArray();
    const entries = rows.slice(0, limit).map((r) => ({
      id: r.id,
      at: rfc3339(r.at),
      kind: r.kind,
      appType: r.app_type,
      detail: JSON.parse(r.detail) as Detail,
      count: r.count,
    }));
    return rows.length > limit ? { entries, nextBefore: entries[entries.length - 1]!.id } : { entries };
  }

  /** Housekeeping: writes pending counts, drops entries past retention. */
  prune(now: number): void {
    this.#flushCounts();
    this.#sql.exec("DELETE FROM audit WHERE at < ?", now - AUDIT_RETENTION_MS);
  }

  /** Writes the counts coalesced in memory (called by every write path and the alarm). */
  #flushCounts(): void {
    const minute = Math.floor(Date.now() / MINUTE);
    for (const [key, open] of this.#open) {
      if (open.unwritten > 0) this.#sql.exec("UPDATE audit SET count = count + ? WHERE id = ?", open.unwritten, open.id);
      open.unwritten = 0;
      if (open.minute !== minute) this.#open.delete(key);
    }
  }

  #insert(kind: AuditKind, appType: string | null, detail: Detail): number {
    const id = this.#sql.exec<{ id: number }>("INSERT INTO audit (at, kind, app_type, detail) VALUES (?, ?, ?, ?) RETURNING id", Date.now(), kind, appType, JSON.stringify(detail)).one().id;
    if (id % 100 === 0) this.#sql.exec("DELETE FROM audit WHERE id <= ?", id - MAX_ENTRIES);
    return id;
  }

  /** After an account deletion: the rows are gone with the storage. */
  forget(): void {
    this.#open.clear();
  }
}
