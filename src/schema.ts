/**
 * Schema migrations for the Durable Objects' SQLite storage. Each object applies the
 * files of its own folder under `migrations/` in order at start-up, inside one
 * transaction per file, and records each in `_migrations`, so a schema change is a new
 * numbered file and never an edit of an old one.
 */
import identityIndex0001 from "../migrations/identity-index/0001_links.sql";
import installationActor0001 from "../migrations/installation-actor/0001_installations.sql";
import installationActor0002 from "../migrations/installation-actor/0002_deliveries.sql";
import userActor0001 from "../migrations/user-actor/0001_connections.sql";
import userActor0002 from "../migrations/user-actor/0002_pending_connects.sql";
import userActor0003 from "../migrations/user-actor/0003_capabilities.sql";
import userActor0004 from "../migrations/user-actor/0004_lifecycle.sql";
import userActor0005 from "../migrations/user-actor/0005_events_audit.sql";
import userActor0006 from "../migrations/user-actor/0006_push_policy.sql";
import userActor0007 from "../migrations/user-actor/0007_scoped_tokens.sql";
import userActor0008 from "../migrations/user-actor/0008_capability_identity.sql";
import userActor0009 from "../migrations/user-actor/0009_revocation_account.sql";
import userActor0010 from "../migrations/user-actor/0010_capability_container.sql";
import userActor0011 from "../migrations/user-actor/0011_token_revocations.sql";

export interface Migration {
  name: string;
  sql: string;
}

/** Migrations of {@link UserActor}, in the order they apply. */
export const USER_ACTOR_MIGRATIONS: readonly Migration[] = [
  { name: "0001_connections", sql: userActor0001 },
  { name: "0002_pending_connects", sql: userActor0002 },
  { name: "0003_capabilities", sql: userActor0003 },
  { name: "0004_lifecycle", sql: userActor0004 },
  { name: "0005_events_audit", sql: userActor0005 },
  { name: "0006_push_policy", sql: userActor0006 },
  { name: "0007_scoped_tokens", sql: userActor0007 },
  { name: "0008_capability_identity", sql: userActor0008 },
  { name: "0009_revocation_account", sql: userActor0009 },
  { name: "0010_capability_container", sql: userActor0010 },
  { name: "0011_token_revocations", sql: userActor0011 },
];

/** Migrations of {@link IdentityIndex}, in the order they apply. */
export const IDENTITY_INDEX_MIGRATIONS: readonly Migration[] = [{ name: "0001_links", sql: identityIndex0001 }];

/** Migrations of `InstallationActor` (src/installations/actor.ts), in the order they apply. */
export const INSTALLATION_ACTOR_MIGRATIONS: readonly Migration[] = [
  { name: "0001_installations", sql: installationActor0001 },
  { name: "0002_deliveries", sql: installationActor0002 },
];

/**
 * Applies the migrations not yet recorded. Synchronous: SQLite-backed storage executes
 * statements synchronously, so calling this in the constructor finishes before the object
 * serves anything, with no `blockConcurrencyWhile` needed.
 */
export function migrate(storage: DurableObjectStorage, migrations: readonly Migration[]): void {
  const sql = storage.sql;
  sql.exec("CREATE TABLE IF NOT EXISTS _migrations (name TEXT PRIMARY KEY, applied_at INTEGER NOT NULL)");
  const applied = new Set(sql.exec<{ name: string }>("SELECT name FROM _migrations").toArray().map((r) => r.name));
  for (const m of migrations) {
    if (applied.has(m.name)) continue;
    storage.transactionSync(() => {
      sql.exec(m.sql);
      sql.exec("INSERT INTO _migrations (name, applied_at) VALUES (?, ?)", m.name, Date.now());
    });
  }
}

/**
 * Whether this object has a schema at all, without creating one: lookup-only paths (a
 * capability redemption, a connection view) answer "nothing here" for an object that never
 * stored anything, instead of creating a database for whoever asked.
 */
export function hasSchema(storage: DurableObjectStorage): boolean {
  return storage.sql.exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = '_migrations'").toArray().length > 0;
}
