/**
 * The GitHub-identity index: one small Durable Object per GitHub user id, listing the
 * platform users connected to that GitHub account, per App. The revocation webhook names
 * only the GitHub user (`sender.id`); this is how it finds whom to revoke.
 *
 * Links are written before the connection they describe and removed after it, so a link
 * may be stale but a connection is never unreachable. The user's actor checks its own row
 * before acting on a revocation, which makes a stale link harmless.
 */
import { DurableObject } from "cloudflare:workers";
import { IDENTITY_INDEX_MIGRATIONS, migrate } from "./schema";

/** How long a webhook delivery id is remembered for deduplication. */
const DELIVERY_TTL_MS = 30 * 24 * 3600_000;

export class IdentityIndex extends DurableObject<Env> {
  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    migrate(ctx.storage, IDENTITY_INDEX_MIGRATIONS);
  }

  async link(input: { appType: string; userId: string }): Promise<void> {
    this.ctx.storage.sql.exec(
      "INSERT INTO links (app_type, user_id, linked_at) VALUES (?, ?, ?) ON CONFLICT DO UPDATE SET linked_at = excluded.linked_at",
      input.appType,
      input.userId,
      Date.now(),
    );
  }

  async unlink(input: { appType: string; userId: string }): Promise<void> {
    this.ctx.storage.sql.exec("DELETE FROM links WHERE app_type = ? AND user_id = ?", input.appType, input.userId);
  }

  /** Platform users linked to this GitHub user for `appType`. */
  async users(input: { appType: string }): Promise<string[]> {
    return this.ctx.storage.sql
      .exec<{ user_id: string }>("SELECT user_id FROM links WHERE app_type = ? ORDER BY user_id", input.appType)
      .toArray()
      .map((r) => r.user_id);
  }

  /** Platform users linked to this GitHub user for `appType`, with when each link was written. */
  async links(input: { appType: string }): Promise<{ userId: string; linkedAt: number }[]> {
    return this.ctx.storage.sql
      .exec<{ user_id: string; linked_at: number }>("SELECT user_id, linked_at FROM links WHERE app_type = ? ORDER BY user_id", input.appType)
      .toArray()
      .map((r) => ({ userId: r.user_id, linkedAt: r.linked_at }));
  }

  /** What this webhook delivery id answered the first time, or `null` (not a redelivery). */
  async deliveryOutcome(input: { deliveryId: string }): Promise<string | null> {
    return this.ctx.storage.sql.exec<{ outcome: string }>("SELECT outcome FROM deliveries WHERE delivery_id = ?", input.deliveryId).toArray()[0]?.outcome ?? null;
  }

  /**
   * Records a delivery as handled, once its work is done: a delivery that failed halfway is
   * not recorded, so GitHub's redelivery finishes it (the work itself is idempotent).
   */
  async recordDelivery(input: { deliveryId: string; outcome: string }): Promise<void> {
    const sql = this.ctx.storage.sql;
    const now = Date.now();
    sql.exec("DELETE FROM deliveries WHERE received_at < ?", now - DELIVERY_TTL_MS);
    sql.exec(
      "INSERT INTO deliveries (delivery_id, outcome, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
      input.deliveryId,
      input.outcome,
      now,
    );
  }
}

/** The index object of one GitHub user id (a decimal string). */
export function identityIndex(env: Env, githubUserId: string): DurableObjectStub<IdentityIndex> {
  return identityIndexByKey(env, `github:${githubUserId}`);
}

/** The index object of a provider account, by `Provider.identityKey` (`github:{id}`, `gitlab:{host}:{id}`). */
export function identityIndexByKey(env: Env, key: string): DurableObjectStub<IdentityIndex> {
  return env.IDENTITY_INDEX.get(env.IDENTITY_INDEX.idFromName(key));
}
