/**
 * The Worker entry. Every named export here is something the runtime instantiates:
 *
 * - `default`: the public URL (OAuth callback, webhooks, health, `/v1` behind a bearer token).
 * - {@link BrokerApi}: the named entrypoint that agent sessions and the web app bind to
 *   (`[[services]] ... entrypoint = "BrokerApi"`): `fetch` serves the internal API with no
 *   bearer token (a service binding is already trusted), and the same operations are RPC
 *   methods returning the contract's result types.
 * - {@link UserActor}, {@link IdentityIndex}, {@link InstallationActor}: the Durable Object classes.
 *
 * Nothing else may be exported from this module: each named export is an entrypoint.
 */
import { WorkerEntrypoint } from "cloudflare:workers";
import * as api from "./api";
import type { AuditQuery, CapabilityRequest, ConnectConfirmRequest, ConnectRequest, InstallationTokenRequest, RejectedTokenReport, TokenRequest } from "./contract";
import { apiRouter, publicRouter } from "./http/routes";
import { onError } from "./http/respond";
import { tokenRoute } from "./http/token-route";
import { getInstallationToken, installationTokenResult } from "./installations/api";
import { loadConfig } from "./config";
import { agentHost } from "./surface/agent-host";
import { egress, type EgressBinding } from "./surface/egress";

export { UserActor } from "./actor/user-actor";
export { IdentityIndex } from "./identity-index";
export { InstallationActor } from "./installations/actor";

export default {
  async fetch(request, env) {
    // The routers catch their own; this catches the rest (a broken configuration read here, the
    // GitHub-shaped surface), so no request ends in the runtime's bare 500.
    try {
      const url = new URL(request.url);
      // AGENT_HOST answers GitHub's own URL shapes for session capabilities (src/surface/).
      const agentHostName = loadConfig(env).agentHost;
      if (agentHostName !== null && url.host === agentHostName) return await agentHost(request, env);
      // The hot path skips the routers (same checks, same answers).
      return await (tokenRoute(request, env, url.pathname) ?? publicRouter.fetch(request, env));
    } catch (err) {
      return onError(err);
    }
  },
} satisfies ExportedHandler<Env>;

/** The internal API for service bindings: HTTP (`fetch`) and RPC. */
export class BrokerApi extends WorkerEntrypoint<Env> {
  override fetch(request: Request): Promise<Response> {
    return apiRouter.fetch(request, this.env);
  }

  /** A checked user token for one repository. See `POST /v1/users/{userId}/token`. */
  async getToken(userId: string, request: TokenRequest) {
    return api.userTokenResult(await api.getToken(this.env, userId, request));
  }

  /** Report a token GitHub refused. See `POST /v1/users/{userId}/token/rejected`. */
  reportRejectedToken(userId: string, report: RejectedTokenReport) {
    return api.reportRejectedToken(this.env, userId, report);
  }

  /** See `GET /v1/users/{userId}/connection`. */
  getConnection(userId: string, appType: string) {
    return api.getConnection(this.env, userId, appType);
  }

  /** See `POST /v1/users/{userId}/connect`. */
  startConnect(userId: string, request: ConnectRequest) {
    return api.startConnect(this.env, userId, request);
  }

  /**
   * See `POST /v1/users/{userId}/connect/confirm`. `userId` must be the user signed in to
   * the browser session that brought the ticket back, never an id taken from the URL.
   */
  confirmConnect(userId: string, request: ConnectConfirmRequest) {
    return api.confirmConnect(this.env, userId, request);
  }

  /** See `DELETE /v1/users/{userId}/connection`. */
  disconnect(userId: string, appType: string) {
    return api.disconnect(this.env, userId, appType);
  }

  /** A session capability for one repository. See `POST /v1/users/{userId}/capabilities`. */
  issueCapability(userId: string, request: CapabilityRequest) {
    return api.issueCapability(this.env, userId, request);
  }

  /** See `DELETE /v1/users/{userId}/capabilities/{sessionId}`. */
  revokeCapabilities(userId: string, sessionId: string) {
    return api.revokeCapabilities(this.env, userId, sessionId);
  }

  /** The user's audit trail, newest first. See `GET /v1/users/{userId}/audit`. */
  getAudit(userId: string, options: AuditQuery = {}) {
    return api.getAudit(this.env, userId, options);
  }

  /** An App installation token for one repository. See `POST /v1/installations/token`. */
  async getInstallationToken(request: InstallationTokenRequest) {
    return installationTokenResult(await getInstallationToken(this.env, request));
  }

  /** See `DELETE /v1/users/{userId}`. */
  deleteUser(userId: string) {
    return api.deleteUser(this.env, userId);
  }

  /**
   * A request a container's outbound handler intercepted (`github-token-broker/egress`),
   * judged as the GitHub-shaped surface judges it and forwarded with the real token; the
   * capability is the one the platform keeps for `containerId`. Only over RPC: no HTTP route
   * serves it, so the public URL's `/v1` never reaches it. See docs/egress.md.
   */
  egress(request: Request, binding: EgressBinding): Promise<Response> {
    return egress(request, this.env, binding).catch(onError);
  }
}
