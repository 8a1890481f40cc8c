/**
 * The crash soak's Worker: the production entry, plus one read-only route that names the
 * Durable Object a user id maps to (its SQLite file on disk is `<id>.sqlite`), so the soak can
 * read exactly what was durable when it killed the runtime. Nothing else differs.
 */
import broker from "../../src/index";

export { UserActor, IdentityIndex, InstallationActor, BrokerApi } from "../../src/index";

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    if (url.pathname === "/_crash/object-id") {
      const name = url.searchParams.get("user") ?? "";
      return Response.json({ id: env.USER_ACTOR.idFromName(name).toString() });
    }
    return broker.fetch(request, env);
  },
} satisfies ExportedHandler<Env>;
