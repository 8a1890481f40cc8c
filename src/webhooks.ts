/**
 * GitHub webhooks (`POST /webhooks/github/{appType}`).
 *
 * The body is read up to {@link MAX_WEBHOOK_BYTES} and no further, then its
 * `X-Hub-Signature-256` is checked with `@octokit/webhooks-methods` (Web Crypto's HMAC
 * verify, constant time) against each of the App's webhook secrets (several during a
 * rotation). Only then is anything parsed. `github_app_authorization` / `revoked` marks the
 * App's connection `revoked` in every actor linked to `sender.id` in the identity index.
 */
import { verify } from "@octokit/webhooks-methods";
import type { AppConfig } from "./config";
import { userActor } from "./api";
import { identityIndex } from "./identity-index";
import { handleInstallationWebhook, type InstallationWebhookOutcome } from "./installations/webhooks";
import { logEvent } from "./log";
import { readLimited } from "./validate";

/** GitHub caps webhook payloads at 25 MB; the events we act on are a few KiB. */
export const MAX_WEBHOOK_BYTES = 256 * 1024;

const SIGNATURE = /^sha256=[0-9a-f]{64}$/;

export type WebhookOutcome =
  | { status: 202; handled: "revoked"; users: number }
  | { status: 202; handled: "redelivery" }
  | { status: 200; handled: "ignored" }
  | { status: 401; handled: "bad_signature" }
  | { status: 400; handled: "invalid_request"; message: string }
  | InstallationWebhookOutcome;

export async function handleWebhook(env: Env, app: AppConfig, request: Request): Promise<WebhookOutcome> {
  const signature = request.headers.get("x-hub-signature-256") ?? "";
  if (!SIGNATURE.test(signature) || app.webhookSecrets.length === 0) {
    await request.body?.cancel();
    return { status: 401, handled: "bad_signature" };
  }
  const body = await readLimited(request, MAX_WEBHOOK_BYTES);
  if (body === "") return { status: 400, handled: "invalid_request", message: "empty payload" };
  if (body === null) return { status: 400, handled: "invalid_request", message: `payload over ${MAX_WEBHOOK_BYTES} bytes` };
  if (!(await verifyAny(app.webhookSecrets, body, signature))) return { status: 401, handled: "bad_signature" };

  const event = request.headers.get("x-github-event");
  const deliveryId = request.headers.get("x-github-delivery") ?? "";
  let payload: { action?: unknown; sender?: { id?: unknown } };
  try {
    payload = JSON.parse(body) as typeof payload;
  } catch {
    return { status: 400, handled: "invalid_request", message: "payload is not JSON" };
  }
  if (!payload || typeof payload !== "object" || Array.isArray(payload)) {
    return { status: 400, handled: "invalid_request", message: "payload must be a JSON object" };
  }
  // ---- installation events: src/installations/webhooks.ts ----
  const installation = await handleInstallationWebhook(env, app, event, payload as Record<string, unknown>);
  if (installation) return installation;
  // ----
  if (event !== "github_app_authorization" || payload.action !== "revoked") return { status: 200, handled: "ignored" };
  const senderId = payload.sender?.id;
  if (typeof senderId !== "number" || !Number.isSafeInteger(senderId) || senderId <= 0) {
    return { status: 400, handled: "invalid_request", message: "sender.id must be a positive integer" };
  }
  const githubUserId = String(senderId);
  const index = identityIndex(env, githubUserId);
  // A redelivery gets the same answer as the first delivery and does nothing again.
  if (deliveryId && (await index.seenDelivery({ deliveryId }))) return { status: 202, handled: "redelivery" };

  const userIds = await index.users({ appType: app.appType });
  const results = await Promise.all(
    userIds.map((userId) => userActor(env, userId).revokedOnGitHub({ userId, appType: app.appType, githubUserId })),
  );
  const revoked = results.filter((r) => r === "revoked").length;
  if (deliveryId) await index.recordDelivery({ deliveryId, outcome: `revoked:${revoked}` });
  logEvent({ event: "webhook_revoked", appType: app.appType, outcome: "revoked", linkedUsers: userIds.length, revoked });
  return { status: 202, handled: "revoked", users: revoked };
}

async function verifyAny(secrets: string[], body: string, signature: string): Promise<boolean> {
  // Every secret is tried, so the time taken does not tell which one matched.
  const results = await Promise.all(secrets.map((secret) => verify(secret, body, signature)));
  return results.includes(true);
}
