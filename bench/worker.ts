/**
 * The benchmark's Worker: the broker as deployed, plus one route to a Durable Object that
 * does nothing, so "hot path" and "bare Durable Object round trip" are measured in the same
 * process, through the same HTTP and RPC layers; and `/bench/egress`, which stands in for a
 * platform's service binding so the egress handler can run in Node (test-node/egress.test.ts):
 * the intercepted request comes with `x-egress-url`, `-container` and `-capability` headers and
 * goes to the real `BrokerApi.egress` entrypoint.
 */
import { DurableObject } from "cloudflare:workers";
import broker from "../src/index";

export { UserActor, IdentityIndex, InstallationActor, BrokerApi } from "../src/index";

export class BareObject extends DurableObject {
  async ping(input: { userId: string }): Promise<{ ok: true; userId: string }> {
    return { ok: true, userId: input.userId };
  }
}

const EGRESS_HEADERS = ["x-egress-url", "x-egress-container", "x-egress-capability"];

export default {
  async fetch(request, env, ctx) {
    const url = new URL(request.url);
    if (url.pathname === "/bench/egress") {
      const headers = new Headers(request.headers);
      const [target, containerId, capability] = EGRESS_HEADERS.map((h) => headers.get(h));
      for (const h of EGRESS_HEADERS) headers.delete(h);
      const intercepted = new Request(target!, { method: request.method, headers, body: request.body, redirect: "manual" });
      return ctx.exports.BrokerApi.egress(intercepted, { containerId: containerId ?? "", capability: capability ?? null });
    }
    const bare = /^\/bench\/bare\/([^/]+)$/.exec(url.pathname);
    if (bare) {
      const body = (await request.json()) as Record<string, unknown>;
      const userId = decodeURIComponent(bare[1]!);
      const stub = env.BARE.get(env.BARE.idFromName(userId));
      return Response.json({ ...(await stub.ping({ userId })), echo: typeof body.repository });
    }
    return broker.fetch(request, env);
  },
} satisfies ExportedHandler<Env & { BARE: DurableObjectNamespace<BareObject> }>;
