/**
 * Connection events to the platform (`EVENTS_URL`), through an outbox.
 *
 * {@link EventOutbox.enqueue} is synchronous and is called from the connection store's change
 * hook, inside the same synchronous step as the state change: the event and the change are
 * written together or not at all, so a crash cannot lose one. The actor's alarm delivers
 * them oldest first (in order per user: delivery stops at the first failure), signed like
 * GitHub's webhooks (`X-Broker-Signature-256: sha256=<hex HMAC-SHA256 of the body>` under
 * `EVENTS_SIGNING_KEY`), retried with exponential backoff with the same `id` and body: at
 * least once. The receiver deduplicates on `id`. docs/events.md is the reference.
 *
 * - **A queue backs off as one.** Only the oldest row (the head) is ever due: the rows behind
 *   it wait for it, so {@link EventOutbox.nextAttemptAt} is the head's time, never the past
 *   creation time of a row queued behind a backing-off head.
 * - **Giving up needs an attempt.** A row is dropped only after an attempt that failed at
 *   least {@link GIVE_UP_MS} after it was written: every event is tried at least once, however
 *   late its first attempt.
 * - **Events turned off drop the queue.** With `EVENTS_URL` or `EVENTS_SIGNING_KEY` removed,
 *   the next delivery run deletes the queued rows (logged, with their count): nothing is
 *   recorded while events are off, and what was queued has nowhere to go.
 */
import { loadConfig } from "../config";
import { rfc3339, type ConnectionEvent } from "../contract";
import { hmacSign } from "../crypto";
import { logEvent } from "../log";

/** How long a row is retried, counted from when it was written; see the module comment. */
export const GIVE_UP_MS = 24 * 3600_000;
const BACKOFF_BASE_MS = 5_000;
const BACKOFF_MAX_MS = 3600_000;

interface OutboxRow {
  seq: number;
  id: string;
  body: string;
  created_at: number;
  attempts: number;
}

/** Where events go, or `null` when `EVENTS_URL` / `EVENTS_SIGNING_KEY` are not both set. */
export function eventsTarget(env: Env): { url: string; key: string } | null {
  const vars = env as unknown as Record<string, unknown>;
  const url = typeof vars.EVENTS_URL === "string" ? vars.EVENTS_URL : "";
  const key = typeof vars.EVENTS_SIGNING_KEY === "string" ? vars.EVENTS_SIGNING_KEY : "";
  return url && key ? { url, key } : null;
}

/** `sha256=<hex>`: the signature header's value for `body`. */
export async function signEvent(body: string, key: string): Promise<string> {
  return `sha256=${[...(await hmacSign(key, body))].map((b) => b.toString(16).padStart(2, "0")).join("")}`;
}

export class EventOutbox {
  readonly #sql: SqlStorage;
  readonly #env: Env;
  #delivering: Promise<void> | null = null;

  constructor(sql: SqlStorage, env: Env) {
    this.#sql = sql;
    this.#env = env;
  }

  /**
   * Synchronous: records the event to send. Nothing is recorded when events are not
   * configured. Returns whether a row was written: the caller then schedules its delivery.
   */
  enqueue(event: Omit<ConnectionEvent, "id" | "at">): boolean {
    if (!eventsTarget(this.#env)) return false;
    const now = Date.now();
    const full: ConnectionEvent = { id: crypto.randomUUID(), ...event, at: rfc3339(now) };
    this.#sql.exec("INSERT INTO event_outbox (id, body, created_at, next_attempt_at) VALUES (?, ?, ?, ?)", full.id, JSON.stringify(full), now, now);
    return true;
  }

  /** When the head of the queue is due (the rows behind it wait for it), or `null` when nothing waits. */
  nextAttemptAt(): number | null {
    return this.#sql.exec<{ t: number }>("SELECT next_attempt_at AS t FROM event_outbox ORDER BY seq LIMIT 1").toArray()[0]?.t ?? null;
  }

  /** Delivers what is due, oldest first, stopping at the first failure (order per user). */
  deliverDue(): Promise<void> {
    // One delivery run at a time: two would send the same event twice, out of order.
    this.#delivering ??= this.#deliver().finally(() => (this.#delivering = null));
    return this.#delivering;
  }

  async #deliver(): Promise<void> {
    const target = eventsTarget(this.#env);
    if (!target) {
      const dropped = this.#sql.exec("DELETE FROM event_outbox").rowsWritten;
      if (dropped > 0) logEvent({ event: "event_expired", level: "warn", outcome: "events_disabled", events: dropped });
      return;
    }
    for (;;) {
      const row = this.#sql.exec("SELECT seq, id, body, created_at, attempts, next_attempt_at FROM event_outbox ORDER BY seq LIMIT 1").toArray()[0] as unknown as
        | (OutboxRow & { next_attempt_at: number })
        | undefined;
      if (!row || row.next_attempt_at > Date.now()) return;
      if (await this.#send(target, row)) {
        this.#sql.exec("DELETE FROM event_outbox WHERE seq = ?", row.seq);
        continue;
      }
      const now = Date.now();
      const attempts = row.attempts + 1;
      if (row.created_at + GIVE_UP_MS <= now) {
        // Tried at least once, and for long enough: the rows behind it go on.
        this.#sql.exec("DELETE FROM event_outbox WHERE seq = ?", row.seq);
        logEvent({ event: "event_expired", level: "error", outcome: "dropped", eventId: row.id, attempts });
        continue;
      }
      const next = now + Math.min(BACKOFF_BASE_MS * 2 ** (attempts - 1), BACKOFF_MAX_MS);
      this.#sql.exec("UPDATE event_outbox SET attempts = ?, next_attempt_at = ? WHERE seq = ?", attempts, next, row.seq);
      return;
    }
  }

  async #send(target: { url: string; key: string }, row: OutboxRow): Promise<boolean> {
    try {
      const res = await fetch(target.url, {
        method: "POST",
        headers: { "content-type": "application/json", "x-broker-signature-256": await signEvent(row.body, target.key), "user-agent": "github-token-broker" },
        body: row.body,
        redirect: "manual",
        signal: AbortSignal.timeout(loadConfig(this.#env).githubTimeoutMs),
      });
      await res.body?.cancel();
      const ok = res.status >= 200 && res.status < 300;
      logEvent({ event: "event_delivery", outcome: ok ? "delivered" : String(res.status), eventId: row.id, attempts: row.attempts + 1 });
      return ok;
    } catch (err) {
      logEvent({ event: "event_delivery", level: "warn", outcome: "unreachable", eventId: row.id, attempts: row.attempts + 1, detail: (err as Error)?.name });
      return false;
    }
  }
}
