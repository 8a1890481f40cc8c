/**
 * GitHub webhooks (`POST /webhooks/github/{appType}`), the domain side: verification and
 * what each event does. How an outcome becomes an HTTP answer is http/routes.ts.
 *
 * The body is read up to {@link MAX_WEBHOOK_BYTES} and no further, then its
 * `X-Hub-Signature-256` is checked with `@octokit/webhooks-methods` (Web Crypto's HMAC
 * verify, constant time) against each of the App's webhook secrets (several during a
 * rotation). Only then is anything parsed. `github_app_authorization` / `revoked` reaches
 * every actor linked to `sender.id` in the identity index; each confirms with GitHub before
 * wiping anything (lifecycle.ts), so a replayed or late delivery cannot revoke a user who
 * has re-authorized. The signature covers only the body, not the delivery id, which is why
 * that confirmation, not the delivery id, is what makes a replay harmless.
 */
import { verify } from "@octokit/webhooks-methods";
import type { AppConfig } from "./config";
import { identityIndex } from "./identity-index";
import { handleInstallationWebhook } from "./installations/webhooks";
import { logEvent } from "./log";
import { callActor, userActor } from "./actors";
import type { Failure } from "./contract";
import type { WebhookOutcome, WebhookSummary } from "./webhook-outcome";
import { readLimited } from "./validate";

export type { WebhookOutcome, WebhookSummary } from "./webhook-outcome";

/** GitHub caps webhook payloads at 25 MB; the events we act on are a few KiB. */
export const MAX_WEBHOOK_BYTES = 256 * 1024;

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

export async function handleWebhook(env: Env, app: AppConfig, request: Request): Promise<WebhookOutcome> {
  const signature = request.headers.get("x-hub-signature-256") ?? "";
  if (!SIGNATURE.test(signature) || app.webhookSecrets.length === 0) {
    await request.body?.cancel();
    return { kind: "bad_signature" };
  }
  const body = await readLimited(request, MAX_WEBHOOK_BYTES);
  // A body too large to read cannot be verified: refused as too large, never buffered.
  if (body === null) return { kind: "invalid", message: `payload over ${MAX_WEBHOOK_BYTES} bytes` };
  // GitHub never sends an empty delivery, and @octokit/webhooks-methods verifies none: unverified.
  if (body === "" || !(await verifyAny(app.webhookSecrets, body, signature))) return { kind: "bad_signature" };

  let payload: unknown;
  try {
    payload = JSON.parse(body);
  } catch {
    return { kind: "invalid", message: "payload is not JSON" };
  }
  if (!payload || typeof payload !== "object" || Array.isArray(payload)) return { kind: "invalid", message: "payload is not a JSON object" };
  const { action, sender } = payload as { action?: unknown; sender?: unknown };
  const event = request.headers.get("x-github-event");
  // ---- installation events: src/installations/webhooks.ts ----
  const deliveryId = request.headers.get("x-github-delivery") ?? "";
  const installation = await handleInstallationWebhook(env, app, event, payload as Record<string, unknown>, deliveryId);
  if (installation) return installation;
  // ----
  if (event !== "github_app_authorization" || action !== "revoked") return { kind: "done", summary: { handled: "ignored" } };
  const senderId = sender && typeof sender === "object" ? (sender as { id?: unknown }).id : undefined;
  if (typeof senderId !== "number" || !Number.isSafeInteger(senderId) || senderId <= 0) {
    return { kind: "invalid", message: "sender.id must be a positive integer" };
  }
  return revokeLinkedUsers(env, app, String(senderId), deliveryId);
}

async function revokeLinkedUsers(env: Env, app: AppConfig, githubUserId: string, deliveryId: string): Promise<WebhookOutcome> {
  const index = identityIndex(env, githubUserId);
  // A redelivery gets the first delivery's answer and does nothing again.
  if (deliveryId) {
    const seen = await callActor(() => index.deliveryOutcome({ deliveryId }));
    if (typeof seen === "string") return { kind: "done", summary: JSON.parse(seen) as WebhookSummary };
    if (seen !== null) return { kind: "retry", failure: seen };
  }
  const userIds = await callActor(() => index.users({ appType: app.appType }));
  if (!Array.isArray(userIds)) return { kind: "retry", failure: userIds };
  const results = await Promise.all(
    userIds.map((userId) => callActor(() => userActor(env, userId).revokedOnGitHub({ userId, appType: app.appType, githubUserId }))),
  );
  const failed = results.find((r): r is Failure => typeof r === "object");
  // Each actor's revocation is idempotent: GitHub's redelivery finishes what failed here.
  if (failed) return { kind: "retry", failure: failed };
  const summary: WebhookSummary = {
    handled: "revoked",
    users: results.filter((r) => r === "revoked").length,
    stillAuthorized: results.filter((r) => r === "still_authorized").length,
  };
  if (deliveryId) await callActor(() => index.recordDelivery({ deliveryId, outcome: JSON.stringify(summary) }));
  logEvent({ event: "webhook_revoked", appType: app.appType, outcome: "revoked", linkedUsers: userIds.length, revoked: summary.users, stillAuthorized: summary.stillAuthorized });
  return { kind: "done", summary };
}

async function verifyAny(secrets: string[], body: string, signature: string): Promise<boolean> {
  // Every secret is tried, so the time taken does not tell which one matched.
  const results = await Promise.all(secrets.map((secret) => verify(secret, body, signature)));
  return results.includes(true);
}
