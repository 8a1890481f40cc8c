/**
 * Test helpers for installation tokens: the emulator's App-installation control routes
 * (emulator/github-apps.ts), the broker's `/v1/installations/token`, delivery of the
 * emulator's signed installation webhooks, and a look inside an installation actor.
 */
import { evictDurableObject, runInDurableObject } from "cloudflare:test";
import { env } from "cloudflare:workers";
import type { EmulatorInstallation, WebhookDelivery } from "../../emulator/github-apps";
import { APPS } from "./env";
import { callApi, control, publicFetch, type AppType } from "./helpers";

/** The emulator's App-installation controls. */
export const apps = {
  install: (inst: Omit<EmulatorInstallation, "clientId"> & { appType?: AppType }) =>
    control("POST", "installations", { clientId: APPS[inst.appType ?? "standard"].clientId, ...inst }),
  suspend: (id: number) => control<WebhookDelivery>("POST", "installations/suspend", { id }),
  unsuspend: (id: number) => control<WebhookDelivery>("POST", "installations/unsuspend", { id }),
  uninstall: (id: number) => control<WebhookDelivery>("POST", "installations/uninstall", { id }),
  removeRepositories: (id: number, repositories: string[]) =>
    control<WebhookDelivery>("POST", "installations/remove-repositories", { id, repositories }),
  rotateKey: (appType: AppType) => control("POST", "apps/rotate-key", { clientId: APPS[appType].clientId }),
  settings: (s: { installationTokenExpiresIn?: number }) => control("POST", "apps/settings", s),
  stats: () =>
    control<{ jwtRejections: number; lastJwt: { iss: unknown; iat: number; exp: number; verifiedAt: number } | null; installationTokens: number }>(
      "GET",
      "apps/stats",
    ),
  tokenState: (token: string) =>
    control<{ state: { alive: boolean; installationId: number; repositories: string[]; permissions: Record<string, string> } | null }>(
      "GET",
      `installation-token?token=${encodeURIComponent(token)}`,
    ),
};

/** Delivers a webhook the emulator signed to the broker, as GitHub's hookshot would. */
export function deliver(delivery: WebhookDelivery, appType: AppType = "standard"): Promise<Response> {
  return publicFetch(`/webhooks/github/${appType}`, {
    method: "POST",
    headers: {
      "content-type": "application/json",
      "x-github-event": delivery.event,
      "x-github-delivery": delivery.deliveryId,
      "x-hub-signature-256": delivery.signature,
    },
    body: delivery.body,
  });
}

/** `POST /v1/installations/token`. */
export function installationToken(body: Record<string, unknown>) {
  return callApi("POST", "/installations/token", { appType: "standard", ...body });
}

/** The installation actor of `owner` for `appType`. */
export function installationActor(owner: string, appType: AppType = "standard") {
  return env.INSTALLATION_ACTOR.get(env.INSTALLATION_ACTOR.idFromName(`${appType}/${owner.toLowerCase()}`));
}

/** Rows of the actor's caches. */
export function installationRows(owner: string, appType: AppType = "standard") {
  return runInDurableObject(installationActor(owner, appType), (_instance, state) => ({
    lookups: state.storage.sql.exec("SELECT * FROM lookups").toArray() as Record<string, any>[],
    tokens: state.storage.sql.exec("SELECT * FROM tokens").toArray() as Record<string, any>[],
  }));
}

/**
 * Moves every stored token's expiry (as if time had passed for the broker), then evicts the
 * object so its in-memory hot path forgets the old expiry too.
 */
export async function setInstallationTokenExpiry(owner: string, expiresAt: number, appType: AppType = "standard") {
  const stub = installationActor(owner, appType);
  await runInDurableObject(stub, (_instance, state) => {
    state.storage.sql.exec("UPDATE tokens SET expires_at = ?", expiresAt);
  });
  await evictDurableObject(stub);
}
