/**
 * `GET /oauth/callback`: phase 2 of a connect (see actor/connect-flow.ts). The state's MAC is
 * verified here, in the Worker, before any Durable Object is touched; then the user's actor
 * spends the state and keeps the code under a ticket, and the browser goes back to
 * `returnTo` with `github_connect=confirm&connect_ticket=<ticket>`. Nothing is connected
 * until the web app confirms. GitHub's own error text goes to the log only.
 */
import { userActor } from "../actors";
import { loadConfig } from "../config";
import { logEvent } from "../log";
import { verifyState } from "../oauth";
import type { Handler } from "./middleware";
import { query } from "./middleware";
import { callbackRedirect, invalidStatePage } from "./respond";

export const oauthCallback: Handler = async (request, env) => {
  const check = await verifyState(env.STATE_SIGNING_KEY, query(request, "state") ?? null);
  if (!check.ok && check.code === "invalid_state") return invalidStatePage(webAppOrigin(env));
  const { claims } = check;
  if (!check.ok) return callbackRedirect(claims.returnTo, { code: check.code });
  const githubError = query(request, "error");
  const code = query(request, "code");
  if (githubError || !code) {
    logEvent({ event: "connect", userId: claims.userId, appType: claims.appType, outcome: "github_error", detail: (githubError ?? "no code").slice(0, 100) });
  }
  if (!loadConfig(env).apps.has(claims.appType)) return callbackRedirect(claims.returnTo, { code: "invalid_state" });
  try {
    const done = await userActor(env, claims.userId).connectCallback({
      userId: claims.userId,
      appType: claims.appType,
      nonce: claims.nonce,
      code: githubError || !code ? null : code,
    });
    return callbackRedirect(done.returnTo ?? claims.returnTo, done.ok ? { ticket: done.ticket } : { code: done.code });
  } catch (err) {
    logEvent({ event: "connect", level: "error", userId: claims.userId, appType: claims.appType, outcome: "actor_error", detail: String((err as Error)?.message).slice(0, 200) });
    return callbackRedirect(claims.returnTo, { code: "invalid_state" });
  }
};

/** Where the bad-state page links back to: the first allowed return origin, if the configuration reads. */
function webAppOrigin(env: Env): string | null {
  try {
    return [...loadConfig(env).allowedReturnOrigins][0] ?? null;
  } catch {
    return null;
  }
}
