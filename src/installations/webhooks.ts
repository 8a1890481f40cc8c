/**
 * The installation webhooks, after src/webhooks.ts has checked the signature and parsed the
 * body: `installation` (`deleted`, `suspend`, `unsuspend`) and `installation_repositories`
 * (`removed`) drop what the installation actor of that account cached (lookups and tokens),
 * so the next request asks GitHub again and answers `not_installed` where it must.
 *
 * A redelivery (the same `X-GitHub-Delivery`) gets the first delivery's answer and drops
 * nothing again (src/installations/deliveries.ts); deliveries out of order are harmless, as
 * dropping a cache is idempotent: the worst it costs is one more lookup and mint.
 */
import { callActor, installationActor } from "../actors";
import type { AppConfig } from "../config";
import type { WebhookOutcome } from "../webhook-outcome";

const INSTALLATION_ACTIONS = new Set(["deleted", "suspend", "unsuspend"]);
const LOGIN = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;
const FULL_NAME = /^[A-Za-z0-9-]{1,39}\/[A-Za-z0-9._-]{1,100}$/;

/**
 * Handles `event` when it is an installation event; `null` for any other event, which the
 * caller handles as before.
 */
export async function handleInstallationWebhook(
  env: Env,
  app: AppConfig,
  event: string | null,
  payload: Record<string, unknown>,
  deliveryId: string,
): Promise<WebhookOutcome | null> {
  if (event !== "installation" && event !== "installation_repositories") return null;
  const action = payload.action;
  const relevant = event === "installation" ? INSTALLATION_ACTIONS.has(String(action)) : action === "removed";
  if (!relevant) return { kind: "done", summary: { handled: "ignored" } };

  const installation = payload.installation as { id?: unknown; account?: { login?: unknown } } | null | undefined;
  const id = installation?.id;
  const login = installation?.account?.login;
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id <= 0 || typeof login !== "string" || !LOGIN.test(login)) {
    return { kind: "invalid", message: "installation.id and installation.account.login are required" };
  }
  let repositories: string[] | undefined;
  if (event === "installation_repositories") {
    const removed = payload.repositories_removed;
    if (!Array.isArray(removed)) return { kind: "invalid", message: "repositories_removed must be an array" };
    repositories = [];
    for (const r of removed as { full_name?: unknown }[]) {
      const name = r?.full_name;
      if (typeof name !== "string" || !FULL_NAME.test(name)) {
        return { kind: "invalid", message: "repositories_removed[].full_name must be owner/name" };
      }
      repositories.push(name.toLowerCase());
    }
  }
  const dropped = await callActor(() =>
    installationActor(env, app.appType, login).invalidate({ appType: app.appType, installationId: String(id), repositories, ...(deliveryId ? { deliveryId } : {}) }),
  );
  // Unreachable actor: a 5xx, so GitHub redelivers (dropping a cache twice is harmless).
  if ("ok" in dropped) return { kind: "retry", failure: dropped };
  return { kind: "done", summary: { handled: "installation", ...dropped } };
}
