/**
 * What a user's Durable Object holds on disk, read while the runtime is dead: exactly what
 * was durable at the kill. The object's SQLite file (and its write-ahead log) is copied and
 * the copy opened, so the runtime's own recovery on restart finds the files untouched.
 */
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { DatabaseSync } from "node:sqlite";

/** The broker's own sealing (src/crypto.ts, Web Crypto), loaded as the Worker loads it. */
interface Sealing {
  loadKeyring(spec: string): Promise<unknown>;
  openSealed(keyring: unknown, sealed: string, ctx: { userId: string; appType: string; field: string }): Promise<{ ok: true; value: string } | { ok: false }>;
}
// A path in a variable: src/crypto.ts is type-checked with the Worker's types, not Node's.
const CRYPTO = "../../src/crypto.ts";
const sealing = (await import(CRYPTO)) as Sealing;

/** A connection row as stored, with its refresh token opened. */
export interface StoredConnection {
  appType: string;
  status: "connected" | "revoked" | "reconnect_required";
  reason: string | null;
  account: string;
  generation: string;
  version: number;
  refreshToken: string | null;
  accessToken: string | null;
}

export interface StoredRevocation {
  id: string;
  appType: string;
  account: string | null;
  accessToken: string | null;
  refreshToken: string | null;
}

export interface StoredUser {
  /** Whether the object has a file at all. */
  exists: boolean;
  owner: string | null;
  connections: StoredConnection[];
  revocations: StoredRevocation[];
  /** Event ids (and bodies) still in the outbox, oldest first. */
  outbox: { id: string; body: string }[];
  /** Rows outside bookkeeping, pending revocations and the outbox (what a deletion must remove). */
  otherRows: number;
}

const BOOKKEEPING = new Set(["_migrations", "sqlite_sequence", "_cf_KV", "_cf_METADATA"]);

export class Disk {
  readonly #dir: string;
  readonly #keyring: Promise<unknown>;

  constructor(persistDir: string, encryptionKeys: string) {
    this.#dir = join(persistDir, "do", "-UserActor");
    this.#keyring = sealing.loadKeyring(encryptionKeys);
  }

  /** Reads the object `objectId` (owned by `userId`) as the disk holds it now. */
  async read(objectId: string, userId: string): Promise<StoredUser> {
    const file = join(this.#dir, `${objectId}.sqlite`);
    const empty: StoredUser = { exists: false, owner: null, connections: [], revocations: [], outbox: [], otherRows: 0 };
    if (!existsSync(file)) return empty;
    const scratch = mkdtempSync(join(tmpdir(), "crash-read-"));
    try {
      copyFileSync(file, join(scratch, "db.sqlite"));
      if (existsSync(`${file}-wal`)) copyFileSync(`${file}-wal`, join(scratch, "db.sqlite-wal"));
      const db = new DatabaseSync(join(scratch, "db.sqlite"));
      try {
        return await this.#rows(db, objectId, userId);
      } finally {
        db.close();
      }
    } finally {
      rmSync(scratch, { recursive: true, force: true });
    }
  }

  async #rows(db: DatabaseSync, objectId: string, userId: string): Promise<StoredUser> {
    const tables = (db.prepare("SELECT name FROM sqlite_master WHERE type = 'table'").all() as { name: string }[]).map((r) => r.name);
    const all = (t: string) => (tables.includes(t) ? (db.prepare(`SELECT * FROM "${t}"`).all() as Record<string, any>[]) : []);
    const keyring = await this.#keyring;
    const open = async (sealed: string | null, owner: string, appType: string, field: string) => {
      if (sealed === null) return null;
      const opened = await sealing.openSealed(keyring, sealed, { userId: owner, appType, field });
      return opened.ok ? opened.value : null;
    };
    const connections: StoredConnection[] = [];
    for (const r of all("connections")) {
      connections.push({
        appType: r.app_type,
        status: r.status,
        reason: r.reason,
        account: r.github_user_id,
        generation: r.generation,
        version: r.version,
        refreshToken: await open(r.refresh_token, userId, r.app_type, "refresh_token"),
        accessToken: await open(r.access_token, userId, r.app_type, "access_token"),
      });
    }
    const owner = `object:${objectId}`;
    const revocations: StoredRevocation[] = [];
    for (const r of all("pending_revocations")) {
      revocations.push({
        id: r.id,
        appType: r.app_type,
        account: r.account ?? null,
        accessToken: await open(r.access_token, owner, r.app_type, `revocation:${r.id}:access_token`),
        refreshToken: await open(r.refresh_token, owner, r.app_type, `revocation:${r.id}:refresh_token`),
      });
    }
    const outbox = (tables.includes("event_outbox") ? db.prepare("SELECT id, body FROM event_outbox ORDER BY seq").all() : []) as { id: string; body: string }[];
    let otherRows = 0;
    for (const t of tables) {
      if (BOOKKEEPING.has(t) || t.startsWith("_cf_") || t === "pending_revocations" || t === "event_outbox") continue;
      otherRows += (db.prepare(`SELECT COUNT(*) AS n FROM "${t}"`).get() as { n: number }).n;
    }
    const meta = tables.includes("meta") ? (db.prepare("SELECT value FROM meta WHERE key = 'user_id'").get() as { value: string } | undefined) : undefined;
    return { exists: true, owner: meta?.value ?? null, connections, revocations, outbox, otherRows };
  }
}
