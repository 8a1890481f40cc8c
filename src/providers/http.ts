/**
 * The HTTP plumbing every provider client shares (GitHub's, GitLab's, the GitHub App's):
 * a bounded `fetch` that never throws and never follows a redirect, and the classification
 * of the answers all endpoints share (rate limits, outages, unparseable bodies).
 *
 * Nothing here logs, and no error value carries a URL's query, a body or a header value:
 * only the status and a label the caller chose.
 */
import type { AppConfig } from "../config";
import type { ProviderError, ProviderResult } from "./provider";

/** Default wait suggested to callers after an outage with no `Retry-After`. */
export const DEFAULT_RETRY_AFTER = 5;

/** Default wait after a rate limit that names none. */
const DEFAULT_RATE_LIMIT_WAIT = 60;

const USER_AGENT = "github-token-broker";

/** An outage: the request may be tried again after `retryAfterSeconds`. */
export function unavailable(detail: string, retryAfterSeconds = DEFAULT_RETRY_AFTER): { ok: false; error: ProviderError } {
  return { ok: false, error: { kind: "unavailable", retryAfterSeconds, detail } };
}

/**
 * `fetch` bounded by `timeoutMs`, with the broker's `user-agent`; never follows redirects;
 * never throws (a timeout or a network error is {@link unavailable}).
 */
export async function boundedFetch(url: string, init: RequestInit, timeoutMs: number): Promise<ProviderResult<Response>> {
  const headers = new Headers(init.headers);
  headers.set("user-agent", USER_AGENT);
  try {
    return { ok: true, value: await fetch(url, { ...init, headers, redirect: "manual", signal: AbortSignal.timeout(timeoutMs) }) };
  } catch (err) {
    const timedOut = err instanceof Error && (err.name === "TimeoutError" || err.name === "AbortError");
    // The URL has no secret in it, but the message of a network error is not ours to trust.
    return unavailable(timedOut ? `timeout after ${timeoutMs} ms` : "network error");
  }
}

/**
 * The OAuth token endpoint's request (code exchange, refresh), the same on every provider:
 * a form POST with the App's client credentials in the body. `null` when the App has no
 * client secret, which is the configuration's fault, never the caller's.
 */
export function tokenEndpointRequest(app: AppConfig, params: Record<string, string>): RequestInit | null {
  if (!app.clientSecret) return null;
  return {
    method: "POST",
    headers: { accept: "application/json", "content-type": "application/x-www-form-urlencoded" },
    body: new URLSearchParams({ client_id: app.clientId, client_secret: app.clientSecret, ...params }),
  };
}

/** What a provider answers when {@link tokenEndpointRequest} finds no client secret. */
export const NO_CLIENT_SECRET = { ok: false, error: { kind: "app_misconfigured", detail: "client secret not configured" } } as const satisfies { ok: false; error: ProviderError };

/**
 * Classifies a non-2xx answer every endpoint shares: a rate limit (`limited`: 429 unless the
 * provider says otherwise) or an outage, its body discarded unread; `null` for a 2xx. The
 * wait comes from `Retry-After`, else `x-ratelimit-reset` (on the provider's clock).
 */
export async function httpFailure(response: Response, label: string, limited = response.status === 429): Promise<{ ok: false; error: ProviderError } | null> {
  const status = response.status;
  if (status >= 200 && status < 300) return null;
  await response.body?.cancel();
  if (limited) {
    return { ok: false, error: { kind: "rate_limited", retryAfterSeconds: retryAfter(response, DEFAULT_RATE_LIMIT_WAIT), detail: `${label}: ${status}` } };
  }
  return unavailable(`${label}: HTTP ${status}`, retryAfter(response, DEFAULT_RETRY_AFTER));
}

/** Seconds to wait, from `Retry-After` or `x-ratelimit-reset` (measured on the provider's clock). */
function retryAfter(response: Response, fallback: number): number {
  const header = response.headers.get("retry-after");
  if (header && /^\d+$/.test(header)) return Math.max(1, Number(header));
  const reset = Number(response.headers.get("x-ratelimit-reset"));
  if (Number.isFinite(reset) && reset > 0) return Math.max(1, Math.ceil(reset - serverTime(response) / 1000));
  return fallback;
}

/** The provider's `Date` header in epoch ms, or the local clock when it is missing or garbled. */
export function serverTime(response: Response): number {
  const date = Date.parse(response.headers.get("date") ?? "");
  return Number.isFinite(date) ? date : Date.now();
}

/** The body as a JSON object, or `null` when it is not one. */
export async function readJson(response: Response): Promise<Record<string, unknown> | null> {
  try {
    const body = (await response.json()) as unknown;
    return body && typeof body === "object" ? (body as Record<string, unknown>) : null;
  } catch {
    return null;
  }
}
