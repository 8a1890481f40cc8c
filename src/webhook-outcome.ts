/**
 * What a webhook delivery did, as src/webhooks.ts and src/installations/webhooks.ts both
 * answer it and http/routes.ts turns it into an HTTP answer: its own module, so the
 * installation webhooks do not import the module that calls them.
 */
import type { Failure } from "./contract";

/** What a delivery did; the same summary is answered again for a redelivery. */
export interface WebhookSummary {
  /** `installation`: an installation event dropped cached lookups and tokens (src/installations). */
  handled: "revoked" | "ignored" | "installation";
  /** Platform users whose connection was revoked. */
  users?: number;
  /** Linked users whose stored token GitHub still accepts (a late or replayed delivery). */
  stillAuthorized?: number;
  /** Installation events: cached lookups and tokens dropped. */
  lookups?: number;
  tokens?: number;
}

export type WebhookOutcome =
  | { kind: "done"; summary: WebhookSummary }
  | { kind: "bad_signature" }
  | { kind: "invalid"; message: string }
  /** A user's actor could not be reached: answer 5xx, so GitHub redelivers (nothing was recorded). */
  | { kind: "retry"; failure: Failure };
