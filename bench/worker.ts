/**
 * The benchmark's Worker: the broker as deployed, plus one route to a Durable Object that
 * does nothing, so "hot path" and "bare Durable Object round trip" are measured in the same
 * process, through the same HTTP and RPC layers.
 */
import { DurableObject } from "cloudflare:workers";
import broker from "../src/index";

export { UserActor, IdentityIndex, InstallationActor, BrokerApi } from "../src/index";

export class BareObject extends DurableObject {
  async ping(input: { userId: string }): Promise<{ ok: true; userId: string }> {
    return { ok: true, userId: input.userId };
  }
}

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
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
