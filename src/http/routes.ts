/**
 * Every HTTP route, in one place.
 *
 * - {@link apiRouter}: the internal API (`/v1/...`). Reached through the service binding's
 *   `fetch` as it is, and from the public URL only behind `INTERNAL_API_TOKEN`.
 * - {@link publicRouter}: what the internet can reach: health, the OAuth callback, GitHub's
 *   webhooks, the git and REST proxies for session capabilities, `/v1` behind the bearer
 *   check. (The local demo is not here: src/dev/entry.ts adds it for `npm start` only.)
 *
 * Handlers are one line each: read the body with middleware, call the operation (api.ts),
 * which parses the request (requests.ts) and acts on the parsed input, answer through
 * respond.ts.
 */
import { Router, type IRequest } from "itty-router";
import * as api from "../api";
import { loadConfig } from "../config";
import { failure } from "../contract";
import { UNKNOWN_APP_TYPE } from "../failures";
import { proxyGit, proxyRest } from "../proxy/git-proxy";
import { handleWebhook } from "../webhooks";
import { getInstallationToken } from "../installations/api";
import { oauthCallback } from "./callback";
import { param, query, requireInternalToken, withJsonBody, type Handler } from "./middleware";
import { json, notFound, onError } from "./respond";

function noRoute(): Response {
  // The path is not echoed: a caller's mistake may have put something secret in it.
  return json(failure("invalid_request", "No such route or method; see docs/api.md."), 404);
}

/** The internal API. */
export const apiRouter = Router<IRequest, [Env]>({ base: "/v1", catch: onError })
  .post("/users/:userId/connect", withJsonBody, async (req, env) => json(await api.startConnect(env, param(req, "userId"), req.content)))
  .post("/users/:userId/connect/confirm", withJsonBody, async (req, env) => json(await api.confirmConnect(env, param(req, "userId"), req.content)))
  .get("/users/:userId/connection", async (req, env) => json(await api.getConnection(env, param(req, "userId"), query(req, "appType"))))
  .delete("/users/:userId/connection", async (req, env) => json(await api.disconnect(env, param(req, "userId"), query(req, "appType"))))
  .post("/users/:userId/token", withJsonBody, async (req, env) => json(await api.getToken(env, param(req, "userId"), req.content)))
  .post("/users/:userId/token/rejected", withJsonBody, async (req, env) => json(await api.reportRejectedToken(env, param(req, "userId"), req.content)))
  .post("/users/:userId/capabilities", withJsonBody, async (req, env) => json(await api.issueCapability(env, param(req, "userId"), req.content)))
  .delete("/users/:userId/capabilities/:sessionId", async (req, env) =>
    json(await api.revokeCapabilities(env, param(req, "userId"), param(req, "sessionId"))),
  )
  .get("/users/:userId/audit", async (req, env) => json(await api.getAudit(env, param(req, "userId"), { limit: query(req, "limit"), before: query(req, "before") })))
  .delete("/users/:userId", async (req, env) => json(await api.deleteUser(env, param(req, "userId"))))
  .post("/installations/token", withJsonBody, async (req, env) => json(await getInstallationToken(env, req.content)))
  .all("*", noRoute);

/** `POST /webhooks/github/{appType}`: 401 bad signature, 400 bad payload, 202 acted on, 200 ignored. */
const webhook: Handler = async (request, env) => {
  const app = loadConfig(env).apps.get(param(request, "appType") ?? "");
  if (!app) {
    await request.body?.cancel();
    return json(UNKNOWN_APP_TYPE, 404);
  }
  const outcome = await handleWebhook(env, app, request);
  if (outcome.kind === "bad_signature") return json(failure("unauthorized", "Bad or missing X-Hub-Signature-256."));
  if (outcome.kind === "invalid") return json(failure("invalid_request", outcome.message));
  if (outcome.kind === "retry") return json(outcome.failure);
  return json({ ok: true, ...outcome.summary }, outcome.summary.handled === "ignored" ? 200 : 202);
};

/** The public URL. */
export const publicRouter = Router<IRequest, [Env]>({ catch: onError })
  .get("/healthz", () => new Response("ok", { headers: { "content-type": "text/plain" } }))
  .get("/oauth/callback", oauthCallback)
  .post("/webhooks/github/:appType", webhook)
  .all("/git/*", (req, env) => proxyGit(req, env))
  .all("/api/repos/*", (req, env) => proxyRest(req, env))
  .all("/v1/*", requireInternalToken, (req, env) => apiRouter.fetch(req, env))
  .all("*", notFound);
