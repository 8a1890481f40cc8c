/**
 * The Worker entry the Node harness runs (test/support/harness.ts): the production entry,
 * plus `/_harness/egress`, which stands in for a platform's service binding so the egress
 * handler can run in Node (test-node/egress.test.ts, test/support/egress-adapter.ts): the
 * intercepted request comes with `x-egress-url`, `-container` and `-capability` headers and
 * goes to the real `BrokerApi.egress` entrypoint. Nothing else differs.
 */
import broker from "../../src/index";

export { IdentityIndex, InstallationActor, BrokerApi, UserActor } from "../../src/index";

const EGRESS = /^https?:\/\/[^/]+\/_harness\/egress(?:\?|$)/;
const EGRESS_HEADERS = ["x-egress-url", "x-egress-container", "x-egress-capability"];

/** The service binding's stand-in: the egress call for `request`, or `null` when it is not one. */
export function egressStandIn(request: Request, ctx: ExecutionContext): Promise<Response> | null {
  if (!EGRESS.test(request.url)) return null;
  const headers = new Headers(request.headers);
  const [target, containerId, capability] = EGRESS_HEADERS.map((h) => headers.get(h));
  for (const h of EGRESS_HEADERS) headers.delete(h);
  const intercepted = new Request(target!, { method: request.method, headers, body: request.body, redirect: "manual" });
  return ctx.exports.BrokerApi.egress(intercepted, { containerId: containerId ?? "", capability: capability ?? null });
}

export default {
  fetch(request, env, ctx) {
    return egressStandIn(request, ctx) ?? broker.fetch(request, env);
  },
} satisfies ExportedHandler<Env>;
