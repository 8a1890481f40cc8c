/**
 * Metrics: one Workers Analytics Engine data point per operation, where a dataset is bound
 * as `METRICS` (wrangler.toml `[[analytics_engine_datasets]]`); nothing happens, and nothing
 * breaks, where it is not. `writeDataPoint` is fire-and-forget: no await, no storage, so the
 * hot path pays nothing measurable. docs/events.md has the SQL; docs/operations.md the alerts.
 *
 * Layout (fixed: the queries depend on it):
 * - `index1`: appType (the sampling key)
 * - `blob1`: operation (`token`, `token_rejected`, `confirm`, `disconnect`, `delete_user`,
 *   `capability_issue`, `capability_redeem`, `webhook`, `callback`, `refresh`)
 * - `blob2`: outcome (`ok` or a contract reason, or a refresh outcome)
 * - `blob3`: appType
 * - `double1`: duration in ms; `double2`: GitHub calls made
 */

export interface MetricPoint {
  operation: string;
  outcome: string;
  appType: string;
  durationMs: number;
  githubCalls: number;
}

/** The dataset binding's shape (Analytics Engine), so the broker types without it bound. */
interface Dataset {
  writeDataPoint(point: { indexes?: string[]; blobs?: string[]; doubles?: number[] }): void;
}

export function recordMetric(env: Env, point: MetricPoint): void {
  const dataset = (env as unknown as { METRICS?: Dataset }).METRICS;
  if (!dataset) return;
  try {
    dataset.writeDataPoint({
      indexes: [point.appType],
      blobs: [point.operation, point.outcome, point.appType],
      doubles: [point.durationMs, point.githubCalls],
    });
  } catch {
    // A metrics outage never fails an operation.
  }
}
