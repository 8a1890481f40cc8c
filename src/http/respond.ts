/**
 * **The one place where a failure becomes an HTTP response**, for every transport the broker
 * speaks: JSON for the API and the REST proxy, plain text for git (which prints it to the
 * person as `remote: ...`), and the OAuth callback's redirect and HTML pages. `Retry-After`
 * follows `retryAfterSeconds` everywhere. Also the answer
 * to the broker's own bugs.
 */
import { failure, statusOf, type CallbackErrorCode, type Failure } from "../contract";
import { ConfigError } from "../crypto";
import { misconfigured } from "../config";
import { logEvent } from "../log";

const NO_STORE = { "cache-control": "no-store" };

/** A JSON response; failures get the status their reason maps to. */
export function json<T extends Failure | { ok: true }>(body: T, status?: number): Response {
  const code = status ?? (body.ok ? 200 : statusOf(body.reason));
  const headers = new Headers({ "content-type": "application/json; charset=utf-8", ...NO_STORE });
  if (!body.ok && body.retryAfterSeconds !== undefined) headers.set("retry-after", String(body.retryAfterSeconds));
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

/** A state that fails verification: nothing in it can be trusted, so no redirect. */
export function invalidStatePage(): Response {
  return new Response(
    `<!doctype html><html><head><meta charset="utf-8"><title>Connection link not valid</title></head>
<body><h1>This connection link is not valid</h1>
<p>It may have been altered or come from somewhere else. Go back to the app and start the GitHub connection again.</p></body></html>`,
    { status: 400, headers: { "content-type": "text/html; charset=utf-8", ...NO_STORE } },
  );
}

export function notFound(): Response {
  return new Response("Not Found", { status: 404, headers: { "content-type": "text/plain" } });
}

/** The routers' last resort: a configuration problem is the operator's, anything else a bug. */
export function onError(err: unknown): Response {
  if (err instanceof ConfigError) return json(misconfigured(err));
  const e = err as { name?: string; message?: string };
  logEvent({ event: "unhandled_error", level: "error", detail: `${e?.name ?? "Error"}: ${String(e?.message ?? "")}`.slice(0, 200) });
  return json(failure("internal_error", "The broker hit an internal error; it was logged."));
}
