/**
 * Structured logs: one JSON object per line, so `wrangler tail` and Logpush can filter on
 * fields. Callers pass ids, outcomes and durations only; never a token, code or secret.
 * `detail` carries GitHub's own error text, which is safe to log but never goes into a
 * response or a URL.
 */
export interface LogFields {
  event: string;
  userId?: string;
  appType?: string;
  outcome?: string;
  durationMs?: number;
  detail?: string;
  [key: string]: string | number | boolean | undefined;
}

export function logEvent(fields: LogFields): void {
  console.log(JSON.stringify({ ...fields, level: fields.level ?? "info" }));
}
