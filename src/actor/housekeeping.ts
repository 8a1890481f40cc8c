/**
 * Housekeeping, from the actor's alarm: at least daily while the actor holds anything, and
 * sooner when a grant revocation is due. Each run
 *
 * - re-seals every sealed value under the first key of `TOKEN_ENCRYPTION_KEYS`, so after a
 *   key rotation every value is under the new key within 24 hours (docs/deploy.md says when
 *   the old key may go);
 * - retries the pending grant revocations that are due;
 * - delivers the connection events that are due (event-outbox.ts);
 * - purges expired pending connects, tickets and capabilities, and audit entries past 90 days.
 *
 * Alarms run at least once and are retried, so every step is idempotent: a compare-and-set
 * re-seal, a single-flight revocation attempt, deletes by expiry.
 */
import { sealedWithOldKey, type Keyring } from "../crypto";
import { logEvent } from "../log";
import { hasSchema, migrate, USER_ACTOR_MIGRATIONS } from "../schema";
import type { AuditLog } from "./audit-log";
import type { EventOutbox } from "./event-outbox";
import type { CapabilityStore } from "./capability-store";
import type { ConnectFlow } from "./connect-flow";
import type { ConnectionStore } from "./connection-store";
import type { ServiceContext } from "./context";
import type { GrantRevoker } from "./grant-revoker";
import type { TokenVault } from "./token-vault";

export const HOUSEKEEPING_INTERVAL_MS = 24 * 3600_000;
/** How soon the alarm runs after a write that left it work (see {@link Housekeeping.soon}). */
const SOON_MS = 100;

/** Tables with sealed values outside `connections`: (table, key column, sealed column, field of a row). */
const SEALED_COLUMNS: { table: string; key: string; column: string; field: (key: string) => string; owner: "user" | "object" }[] = [
  { table: "pending_connects", key: "nonce", column: "code_verifier", field: (k) => `pkce:${k}`, owner: "user" },
  { table: "connect_tickets", key: "ticket_hash", column: "code", field: (k) => `ticket:${k}:code`, owner: "user" },
  { table: "connect_tickets", key: "ticket_hash", column: "code_verifier", field: (k) => `ticket:${k}:verifier`, owner: "user" },
  { table: "pending_revocations", key: "id", column: "access_token", field: (k) => `revocation:${k}:access_token`, owner: "object" },
  { table: "pending_revocations", key: "id", column: "refresh_token", field: (k) => `revocation:${k}:refresh_token`, owner: "object" },
];

export interface HousekeepingDeps {
  storage: DurableObjectStorage;
  store: ConnectionStore;
  vault: TokenVault;
  revoker: GrantRevoker;
  caps: CapabilityStore;
  flow: ConnectFlow;
  outbox: EventOutbox;
  audit: AuditLog;
  objectOwner: string;
}

export class Housekeeping {
  readonly #d: HousekeepingDeps;

  constructor(deps: HousekeepingDeps) {
    this.#d = deps;
  }

  /** One run. `userId` is the owner recorded in `meta` (`null` after an account deletion). */
  async run(s: ServiceContext, userId: string | null): Promise<void> {
    const now = Date.now();
    this.#d.flow.purgeExpired(now);
    this.#d.caps.purgeExpired(now);
    this.#d.audit.prune(now);
    await Promise.all([this.#d.revoker.retryDue(s), this.#d.outbox.deliverDue()]);
    // An account deletion may have emptied the storage during those awaits.
    if (!hasSchema(this.#d.storage)) return;
    const resealed = await this.#reseal(s.keyring, userId);
    if (resealed > 0) logEvent({ event: "housekeeping", userId: userId ?? undefined, outcome: "resealed", values: resealed });
  }

  /**
   * Synchronous: the alarm runs within {@link SOON_MS}. Called in the same synchronous step as
   * a write that leaves the alarm work (an event in the outbox, a grant to revoke): on SQLite
   * storage the alarm commits with that write, so a crash right after it cannot leave the
   * work stored with the alarm a day away ({@link schedule} runs only after the operation's
   * awaits, and only for writers).
   */
  soon(): void {
    void this.#d.storage.setAlarm(Date.now() + SOON_MS);
  }

  /** Sets the alarm to the next time it is needed, or deletes it when the actor holds nothing. */
  async schedule(): Promise<void> {
    if (!hasSchema(this.#d.storage)) return;
    const next = this.#next();
    if (next === null) {
      await this.#d.storage.deleteAlarm();
      return;
    }
    const current = await this.#d.storage.getAlarm();
    if (current === null || current > next) await this.#d.storage.setAlarm(Math.max(next, Date.now() + 100));
  }

  /**
   * A confirm's grace alarm (set for `at` before its exchange, connect-flow.ts) is not needed
   * once the confirm has settled its record (withdrawn with the stored generation, or left
   * due, which {@link schedule}'s time covers): the alarm goes to that time instead, so a
   * connect does not leave a wake-up a minute later with nothing to do. Kept when it was moved
   * meanwhile, or while another connect is in progress (its record may not be stored yet).
   */
  async release(at: number): Promise<void> {
    const current = await this.#d.storage.getAlarm();
    // Checked after the await, in the step that writes: a connect that began meanwhile keeps
    // it, and an account deletion may be emptying the storage.
    if (current !== at || this.#d.revoker.anyPaused() || !hasSchema(this.#d.storage)) return;
    const next = this.#next();
    if (next === null) await this.#d.storage.deleteAlarm();
    else if (next > at) await this.#d.storage.setAlarm(next);
  }

  /** When the alarm is next needed (stored work due, or the daily run); `null` when the actor holds nothing. */
  #next(): number | null {
    const sql = this.#d.storage.sql;
    const holds = ["connections", "pending_connects", "connect_tickets", "capabilities", "pending_revocations", "event_outbox", "audit", "scoped_tokens"].some(
      (t) => sql.exec(`SELECT 1 FROM ${t} LIMIT 1`).toArray().length > 0,
    );
    if (!holds) return null;
    return Math.min(Date.now() + HOUSEKEEPING_INTERVAL_MS, this.#d.revoker.nextAttemptAt() ?? Infinity, this.#d.outbox.nextAttemptAt() ?? Infinity);
  }

  /**
   * After an account deletion, everything of the user goes, except what must outlive the
   * account for a while: grants still to revoke (which name no user) and the deletion's own
   * events (until delivered, or given up: event-outbox.ts). The empty schema is re-created at
   * once, so operations still in flight find nothing instead of a missing table.
   */
  async wipe(): Promise<void> {
    this.#d.store.forget();
    this.#d.vault.forget();
    this.#d.audit.forget();
    const storage = this.#d.storage;
    if (this.#d.revoker.pending().length === 0 && this.#d.outbox.nextAttemptAt() === null) {
      await storage.deleteAll();
      migrate(storage, USER_ACTOR_MIGRATIONS);
      this.#d.store.forget(); // nothing can have read meanwhile (the input gate), but the table is new
      return;
    }
    const sql = storage.sql;
    storage.transactionSync(() => {
      for (const table of ["connections", "pending_connects", "connect_tickets", "capabilities", "scoped_tokens", "audit", "meta"]) sql.exec(`DELETE FROM ${table}`);
      // What outlives the account names no one: a grant's account is asked of its token if needed.
      sql.exec("UPDATE pending_revocations SET account = NULL");
    });
  }

  async #reseal(keyring: Keyring, userId: string | null): Promise<number> {
    let count = 0;
    if (userId !== null) {
      for (const row of this.#d.store.all()) {
        if (!this.#d.vault.needsReseal(keyring, row.access_token, row.refresh_token)) continue;
        const values = await Promise.all(
          (["access_token", "refresh_token"] as const).map(async (field) => {
            const sealed = row[field];
            if (sealed === null) return null;
            const opened = await this.#d.vault.open(keyring, userId, row.app_type, field, sealed);
            return opened.ok ? this.#d.vault.seal(keyring, userId, row.app_type, field, opened.value) : undefined;
          }),
        );
        if (values.includes(undefined)) continue; // left for the next use to report
        if (this.#d.store.reseal(row.app_type, row, values[0] ?? null!, values[1] ?? null)) count++;
      }
    }
    const sql = this.#d.storage.sql;
    for (const spec of SEALED_COLUMNS) {
      const owner = spec.owner === "object" ? this.#d.objectOwner : userId;
      if (owner === null) continue;
      const rows = sql.exec<Record<string, string | null>>(`SELECT ${spec.key} AS k, app_type, ${spec.column} AS v FROM ${spec.table}`).toArray();
      for (const r of rows) {
        if (r.v === null || !sealedWithOldKey(keyring, r.v!)) continue;
        const opened = await this.#d.vault.open(keyring, owner, r.app_type!, spec.field(r.k!), r.v!);
        if (!opened.ok) continue;
        const fresh = await this.#d.vault.seal(keyring, owner, r.app_type!, spec.field(r.k!), opened.value);
        // Compare-and-set: a value that changed meanwhile is left as it is.
        count += sql.exec(`UPDATE ${spec.table} SET ${spec.column} = ? WHERE ${spec.key} = ? AND ${spec.column} = ?`, fresh, r.k, r.v).rowsWritten;
      }
    }
    return count;
  }
}
