/**
 * **The one place where a failure becomes an HTTP response**, for every transport the broker
 * speaks: JSON for the API and the REST proxy, plain text for git (which prints it to the
 * person as `remote: ...`), and the OAuth callback's redirect and HTML pages. `Retry-After`
 * follows `retryAfterSeconds` everywhere. Also the answer
 * to the broker's own bugs.
 */
import { statusOf, type CallbackErrorCode, type Failure } from "../contract";
import { configFailure } from "../config";
import { INTERNAL_ERROR } from "../failures";
import type { JsonText } from "../json-text";
import { logEvent } from "../log";

const NO_STORE = { "cache-control": "no-store" };
const JSON_HEADERS: Readonly<Record<string, string>> = { "content-type": "application/json; charset=utf-8", ...NO_STORE };

/**
 * A JSON response; failures get the status their reason maps to. A result an actor already
 * serialized ({@link JsonText}, always a success) is sent as it is.
 */
export function json<T extends Failure | { ok: true }>(body: T | JsonText<{ ok: true }>, status?: number): Response {
  if (typeof body === "string") return new Response(body, { status: status ?? 200, headers: JSON_HEADERS });
  const code = status ?? (body.ok ? 200 : statusOf(body.reason));
  const headers: Record<string, string> = { ...JSON_HEADERS };
  if (!body.ok && body.retryAfterSeconds !== undefined) headers["retry-after"] = String(body.retryAfterSeconds);
  return new Response(JSON.stringify(body), { status: code, headers });
}

/** A failure as git shows it: `reason: message`, plain text, with the contract's status. */
export function gitFailure(f: Failure): Response {
  const headers = new Headers({ "content-type": "text/plain; charset=utf-8", ...NO_STORE });
  if (f.reason === "invalid_capability") headers.set("www-authenticate", 'Basic realm="github-token-broker"');
  if (f.retryAfterSeconds !== undefined) headers.set("retry-after", String(f.retryAfterSeconds));
  return new Response(`${f.reason}: ${f.message}\n`, { status: statusOf(f.reason), headers });
}

/** The OAuth callback's answer: back to `returnTo` with the outcome, never GitHub's own text. */
export function callbackRedirect(returnTo: string, outcome: { ticket: string } | { code: CallbackErrorCode }): Response {
  const url = new URL(returnTo);
  url.searchParams.delete("reason");
  url.searchParams.delete("connect_ticket");
  if ("ticket" in outcome) {
    url.searchParams.set("github_connect", "confirm");
    url.searchParams.set("connect_ticket", outcome.ticket);
  } else {
    url.searchParams.set("github_connect", "error");
    url.searchParams.set("reason", outcome.code);
  }
  return new Response(null, { status: 302, headers: { location: url.toString(), ...NO_STORE, "referrer-policy": "no-referrer" } });
}

/**
 * A state that fails verification: nothing in it can be trusted, so no redirect to its
 * `returnTo`. The page links back to `backTo` (the web app's origin, from the broker's own
 * configuration) when there is one.
 */
export function invalidStatePage(backTo: string | null): Response {
  const back = backTo ? `<p><a class="button" id="back" href="${escapeHtml(backTo)}">Back to the app</a></p>` : "";
  return new Response(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Connection link not valid</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; padding: 0 1rem; color: #1f2328; }
  .card { border: 1px solid #d0d7de; border-radius: 8px; padding: 1rem 1.5rem; }
  .button { display: inline-block; padding: .4rem .9rem; border-radius: 6px; background: #1f883d; color: #fff; text-decoration: none; }
  .muted { color: #656d76; }
</style></head>
<body><div class="card"><h1>This connection link is not valid</h1>
<p>It may have been altered, copied from somewhere else, or be left over from an old tab. Nothing was connected.</p>
<p class="muted">Go back to the app and start the connection again from there.</p>${back}</div></body></html>`,
    { status: 400, headers: { "content-type": "text/html; charset=utf-8", ...NO_STORE } },
  );
}

/** Text made safe inside HTML: the five characters that could end an element or an attribute, as numeric references. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

export function notFound(): Response {
  return new Response("Not Found", { status: 404, headers: { "content-type": "text/plain" } });
}

/** The routers' last resort: a configuration problem is the operator's, anything else a bug. */
export function onError(err: unknown): Response {
  const misconfiguration = configFailure(err);
  if (misconfiguration) return json(misconfiguration);
  const e = err as { name?: string; message?: string };
  logEvent({ event: "unhandled_error", level: "error", detail: `${e?.name ?? "Error"}: ${String(e?.message ?? "")}`.slice(0, 200) });
  return json(INTERNAL_ERROR);
}
