/**
 * An example platform Worker that runs agent sessions in Cloudflare Containers where the
 * sandbox holds nothing (docs/egress.md):
 *
 * - `POST /sessions {userId, repository}`: starts a container for one session. The platform
 *   (this Worker, trusted) asks the broker for a capability bound to the container's id and
 *   keeps it in the container's Durable Object storage. The container gets a placeholder
 *   (`GH_TOKEN=egress-placeholder`) and the clone URL `https://github.com/{repository}.git`.
 * - Inside, `git clone`, `git push` and `gh pr create` go to github.com and api.github.com as
 *   usual; the container runtime hands each request to the broker's egress handler here, which
 *   sends it to the broker with the stored capability and the container's id. The broker judges
 *   it (the bound repository, the branches) and forwards it with the real token.
 * - Every other host is unreachable (`enableInternet = false`, `allowedHosts`).
 */
import { Container, ContainerProxy } from "@cloudflare/containers";
import { brokerBinding } from "github-token-broker/client";
import { brokerEgress, egressBroker } from "github-token-broker/egress";

// The containers package routes each intercepted request through this entrypoint.
export { ContainerProxy };

/** What the sandbox sees as its token: `gh` wants one set; it works nowhere. */
const PLACEHOLDER = "egress-placeholder";
const STORED = "egress-capability";
/** Renew the capability this long before it expires (a capability lives at most 8 hours). */
const RENEW_BEFORE_MS = 5 * 60_000;

interface SessionSpec {
  userId: string;
  repository: string;
  sessionId: string;
  branches: string[];
}

interface Held {
  capability: string;
  expiresAt: number;
  spec: SessionSpec;
}

/** The broker's handler: the capability comes from the container's own Durable Object, never from the sandbox. */
const github = brokerEgress<Env>({
  broker: (env) => egressBroker(env.TOKEN_BROKER),
  capabilityFor: (ctx, env) => env.SANDBOX.get(env.SANDBOX.idFromString(ctx.containerId)).egressCapability(),
});

export class Sandbox extends Container<Env> {
  // Assigned in a static block, not declared as a static field: a field would shadow the
  // base class's setter, which is what registers the handlers.
  static {
    this.outboundByHost = { "github.com": github, "api.github.com": github };
  }

  override enableInternet = false;
  // HTTPS to those hosts is intercepted too (the image trusts the runtime's CA).
  override interceptHttps = true;
  // Deny by default: only these hosts pass the gate, and both are answered by the handler above.
  override allowedHosts = ["github.com", "api.github.com"];
  override envVars = { GH_TOKEN: PLACEHOLDER, GIT_TERMINAL_PROMPT: "0" };

  /** Issues the container-bound capability, keeps it here, then starts the container. */
  async startSession(spec: SessionSpec): Promise<{ ok: true; cloneUrl: string } | { ok: false; reason: string }> {
    const issued = await this.#issue(spec);
    if (!issued.ok) return issued;
    await this.start({ envVars: { GH_TOKEN: PLACEHOLDER, GIT_TERMINAL_PROMPT: "0", REPOSITORY_URL: `https://github.com/${spec.repository}.git` } });
    return { ok: true, cloneUrl: `https://github.com/${spec.repository}.git` };
  }

  /** The capability for this container's egress handler; renewed shortly before it expires. */
  async egressCapability(): Promise<string | null> {
    const held = this.ctx.storage.kv.get<Held>(STORED);
    if (!held) return null;
    if (held.expiresAt - Date.now() > RENEW_BEFORE_MS) return held.capability;
    const renewed = await this.#issue(held.spec);
    return renewed.ok ? renewed.capability : null;
  }

  /** The session ends: the broker forgets the capability at once, and so does this object. */
  async endSession(): Promise<void> {
    const held = this.ctx.storage.kv.get<Held>(STORED);
    if (held) await brokerBinding(this.env.TOKEN_BROKER).revokeCapabilities(held.spec.userId, held.spec.sessionId);
    this.ctx.storage.kv.delete(STORED);
    await this.destroy();
  }

  async #issue(spec: SessionSpec): Promise<{ ok: true; capability: string } | { ok: false; reason: string }> {
    const grant = await brokerBinding(this.env.TOKEN_BROKER).issueCapability(spec.userId, {
      appType: "standard",
      repository: spec.repository,
      sessionId: spec.sessionId,
      permission: "push",
      branches: spec.branches,
      ttlSeconds: 8 * 3600,
      // Bound to this container: redeemed only by its egress handler (ctx.containerId).
      containerId: this.ctx.id.toString(),
    });
    if (!grant.ok) return { ok: false, reason: grant.reason };
    this.ctx.storage.kv.put<Held>(STORED, { capability: grant.capability, expiresAt: Date.parse(grant.expiresAt), spec });
    return { ok: true, capability: grant.capability };
  }
}

export default {
  async fetch(request, env): Promise<Response> {
    const url = new URL(request.url);
    if (request.method === "POST" && url.pathname === "/sessions") {
      // A real platform authenticates its user here; the example takes the id as given.
      const body = (await request.json()) as { userId?: string; repository?: string };
      if (!body.userId || !body.repository) return Response.json({ reason: "invalid_request" }, { status: 400 });
      const id = env.SANDBOX.newUniqueId();
      const started = await env.SANDBOX.get(id).startSession({
        userId: body.userId,
        repository: body.repository,
        sessionId: `sandbox-${id.toString().slice(0, 16)}`,
        branches: ["agent/*"],
      });
      return Response.json(started.ok ? { sandbox: id.toString(), cloneUrl: started.cloneUrl } : { reason: started.reason }, { status: started.ok ? 201 : 409 });
    }
    return new Response("POST /sessions {userId, repository}\n", { status: 404 });
  },
} satisfies ExportedHandler<Env>;
