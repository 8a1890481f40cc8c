/**
 * Installation webhook deliveries the installation actor has handled, by `X-GitHub-Delivery`
 * (GitHub keeps the id on a redelivery): a redelivery is answered with the first delivery's
 * summary and changes nothing, as the revocation webhook's deliveries are (identity-index.ts).
 * Both functions are synchronous, for the actor's one-step "handle and record".
 */

/** How long a delivery id is remembered. */
const DELIVERY_TTL_MS = 30 * 24 * 3600_000;

type Dropped = { lookups: number; tokens: number };

/** What this delivery answered the first time, or `null` (not a redelivery). */
export function deliveryOutcome(sql: SqlStorage, deliveryId: string): Dropped | null {
  const row = sql.exec<{ outcome: string }>("SELECT outcome FROM deliveries WHERE delivery_id = ?", deliveryId).toArray()[0];
  return row ? (JSON.parse(row.outcome) as Dropped) : null;
}

/** Records a delivery as handled (and forgets those past the TTL). */
export function recordDelivery(sql: SqlStorage, deliveryId: string, outcome: Dropped): void {
  const now = Date.now();
  sql.exec("DELETE FROM deliveries WHERE received_at < ?", now - DELIVERY_TTL_MS);
  sql.exec("INSERT INTO deliveries (delivery_id, outcome, received_at) VALUES (?, ?, ?) ON CONFLICT DO NOTHING", deliveryId, JSON.stringify(outcome), now);
}
