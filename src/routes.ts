/**
 * Every HTTP route, in one place.
 *
 * - {@link apiRouter}: the internal API (`/v1/...`). Reached through the service binding's
 *   `fetch` as it is, and from the public URL only behind `INTERNAL_API_TOKEN`.
 * - {@link publicRouter}: what the internet can reach: health, the OAuth callback, GitHub's
 *   webhooks, the git and REST proxies for session capabilities, `/v1` behind the bearer
 *   check, and the local demo when `DEMO_MODE` is on.
 *
 * Cross-cutting concerns are middleware: JSON body parsing with the size limit, the bearer
 * check, and one error handler that turns any surprise into a contract error body.
 */
import { Router, type IRequest } from "itty-router";
import * as api from "./api";
import { loadConfig, misconfigured } from "./config";
import { failure, statusOf, type Failure } from "./contract";
import { ConfigError, timingSafeEqualStrings } from "./crypto";
import { demoApi, demoPage, isDemoEnabled } from "./demo";
import { proxyGit, proxyRest } from "./git-proxy";
import { logEvent } from "./log";
import { resultUrl, verifyState } from "./oauth";
import { readJsonBody } from "./validate";
import { handleWebhook } from "./webhooks";
import { getInstallationToken } from "./installations/api";

type Handler = (request: IRequest, env: Env) => Promise<Response | undefined> | Response | undefined;

/** A JSON response; failures get the status their reason maps to. */
export function json<T extends Failure | { ok: true }>(body: T, status?: number): Response {
  const code = status ?? (body.ok ? 200 : statusOf(body.reason));
  const headers = new Headers({ "content-type": "application/json; charset=utf-8", "cache-control": "no-store" });
  if (!body.ok && body.retryAfterSeconds !== undefined) headers.set("retry-after", String(body.retryAfterSeconds));
  return new Response(JSON.stringify(body), { status: code, headers });
}

/** Middleware: parses the JSON body (at most 16 KiB) into `request.content`. */
const withJsonBody: Handler = async (request) => {
  const parsed = await readJsonBody(request as unknown as Request);
  if (!parsed.ok) return json(parsed);
  request.content = parsed.value;
  return undefined;
};

/** The path parameter, percent-decoded; `undefined` (so: invalid) when it does not decode. */
function param(request: IRequest, name: string): string | undefined {
  try {
    return decodeURIComponent(request.params[name] ?? "");
  } catch {
    return undefined;
  }
}

function query(request: IRequest, name: string): string | undefined {
  const v = request.query[name];
  return typeof v === "string" ? v : undefined;
}

function onError(err: unknown): Response {
  if (err instanceof ConfigError) return json(misconfigured(err));
  const e = err as { name?: string; message?: string };
  logEvent({ event: "unhandled_error", level: "error", detail: `${e?.name ?? "Error"}: ${String(e?.message ?? "")}`.slice(0, 200) });
  return json(failure("github_unavailable", "The broker hit an internal error; try again.", 1));
}

function noRoute(): Response {
  // The path is not echoed: a caller's mistake may have put something secret in it.
  return json(failure("invalid_request", "No such route or method; see the API in the README."), 404);
}

/** The internal API. */
export const apiRouter = Router({ base: "/v1", catch: onError })
  .post("/users/:userId/connect", withJsonBody, async (req, env: Env) =>
    json(await api.startConnect(env, param(req, "userId"), req.content)),
  )
  .get("/users/:userId/connection", async (req, env: Env) =>
    json(await api.getConnection(env, param(req, "userId"), query(req, "appType"))),
  )
  .delete("/users/:userId/connection", async (req, env: Env) =>
    json(await api.disconnect(env, param(req, "userId"), query(req, "appType"))),
  )
  .post("/users/:userId/token", withJsonBody, async (req, env: Env) =>
    json(await api.getToken(env, param(req, "userId"), req.content)),
  )
  .post("/users/:userId/token/rejected", withJsonBody, async (req, env: Env) =>
    json(await api.reportRejectedToken(env, param(req, "userId"), req.content)),
  )
  .post("/users/:userId/capabilities", withJsonBody, async (req, env: Env) =>
    json(await api.issueCapability(env, param(req, "userId"), req.content)),
  )
  .delete("/users/:userId/capabilities/:sessionId", async (req, env: Env) =>
    json(await api.revokeCapabilities(env, param(req, "userId"), param(req, "sessionId"))),
  )
  .delete("/users/:userId", async (req, env: Env) => json(await api.deleteUser(env, param(req, "userId"))))
  .post("/installations/token", withJsonBody, async (req, env: Env) => json(await getInstallationToken(env, req.content)))
  .all("*", noRoute);

/** Middleware for `/v1` on the public URL: 404 unless enabled, 401 without the right bearer. */
const requireInternalToken: Handler = async (request, env) => {
  const expected = env.INTERNAL_API_TOKEN;
  if (!expected) return new Response("Not Found", { status: 404 });
  const header = request.headers.get("authorization") ?? "";
  const given = /^Bearer (.+)$/.exec(header)?.[1] ?? "";
  if (!(await timingSafeEqualStrings(given, expected))) {
    await (request as unknown as Request).body?.cancel();
    return json(failure("unauthorized", "Missing or wrong bearer token."));
  }
  return undefined;
};

/** `GET /oauth/callback`: finish a connect and send the browser back to `returnTo`. */
const oauthCallback: Handler = async (request, env) => {
  const check = await verifyState(env.STATE_SIGNING_KEY, query(request, "state") ?? null);
  if (!check.ok && check.code === "invalid_state") return invalidStatePage();
  const { claims } = check;
  const redirect = (outcome: { ok: true } | { ok: false; code: string }, returnTo = claims.returnTo) =>
    new Response(null, { status: 302, headers: { location: resultUrl(returnTo, outcome), "cache-control": "no-store" } });
  if (!check.ok) return redirect(check);
  const githubError = query(request, "error");
  const code = query(request, "code");
  if (githubError) {
    // GitHub's own text goes to the log only.
    logEvent({ event: "connect", userId: claims.userId, appType: claims.appType, outcome: "github_error", detail: githubError.slice(0, 100) });
  }
  if (!loadConfig(env).apps.has(claims.appType)) return redirect({ ok: false, code: "exchange_failed" });
  try {
    const done = await api.userActor(env, claims.userId).completeConnect({
      userId: claims.userId,
      appType: claims.appType,
      nonce: claims.nonce,
      code: githubError || !code ? null : code,
    });
    if (done.ok) return redirect({ ok: true }, done.returnTo);
    // `access_denied` only when the user cancelled; another GitHub error, or no code at all,
    // is a failed exchange.
    const reason = done.code === "access_denied" && githubError !== "access_denied" ? "exchange_failed" : done.code;
    return redirect({ ok: false, code: reason }, done.returnTo ?? claims.returnTo);
  } catch (err) {
    logEvent({ event: "connect", userId: claims.userId, appType: claims.appType, outcome: "actor_error", detail: String((err as Error)?.message).slice(0, 200) });
    return redirect({ ok: false, code: "github_unavailable" });
  }
};

function invalidStatePage(): Response {
  return new Response(
    `<!doctype html><html><head><meta charset="utf-8"><title>Connection link not valid</title></head>
<body><h1>This connection link is not valid</h1>
<p>It may have been altered or come from somewhere else. Go back to the app and start the GitHub connection again.</p></body></html>`,
    { status: 400, headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } },
  );
}

/** `POST /webhooks/github/{appType}`. */
const webhook: Handler = async (request, env) => {
  const app = loadConfig(env).apps.get(param(request, "appType") ?? "");
  if (!app) {
    await (request as unknown as Request).body?.cancel();
    return json(failure("invalid_request", "Unknown appType."), 404);
  }
  const outcome = await handleWebhook(env, app, request as unknown as Request);
  if (outcome.status === 401) return json(failure("unauthorized", "Bad or missing X-Hub-Signature-256."));
  if (outcome.status === 400) return json(failure("invalid_request", outcome.message));
  return json({ ok: true, handled: outcome.handled }, outcome.status);
};

/** The public URL. */
export const publicRouter = Router({ catch: onError })
  .get("/healthz", () => new Response("ok", { headers: { "content-type": "text/plain" } }))
  .get("/oauth/callback", oauthCallback)
  .post("/webhooks/github/:appType", webhook)
  .get("/demo", (_req, env: Env) => (isDemoEnabled(env) ? demoPage(env) : undefined))
  .post("/demo/api/:action", async (req, env: Env) => {
    if (!isDemoEnabled(env)) return undefined;
    const body = await readJsonBody(req as unknown as Request);
    return json({ ok: true, ...(await demoApi(env, param(req, "action") ?? "", body.ok ? body.value : {})) } as { ok: true });
  })
  .all("/git/*", (req, env: Env) => proxyGit(req as unknown as Request, env))
  .all("/api/repos/*", (req, env: Env) => proxyRest(req as unknown as Request, env))
  .all("/v1/*", requireInternalToken, (req, env: Env) => apiRouter.fetch(req, env))
  .all("*", () => new Response("Not Found", { status: 404 }));
