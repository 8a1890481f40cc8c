/**
 * `github-token-broker/egress`: the outbound handler a platform installs on its Cloudflare
 * Container (or Sandbox SDK) class for the provider's hosts, so the sandbox holds nothing that
 * works anywhere else (docs/egress.md).
 *
 * ```ts
 * import { Container } from "@cloudflare/containers";
 * import { brokerEgress, egressBroker } from "github-token-broker/egress";
 *
 * const github = brokerEgress<Env>({
 *   broker: (env) => egressBroker(env.TOKEN_BROKER),
 *   capabilityFor: (ctx, env) => sandboxOf(env, ctx.containerId).egressCapability(),
 * });
 * export class Sandbox extends Container<Env> {
 *   static outboundByHost = { "github.com": github, "api.github.com": github };
 *   interceptHttps = true;
 *   enableInternet = false;
 * }
 * ```
 *
 * The handler runs in the platform's Worker, holds no policy of its own, and never fetches:
 * each intercepted request goes to the broker's `BrokerApi.egress` over the service binding
 * with the capability the platform keeps for `ctx.containerId` (in trusted storage, never in
 * the sandbox) and that container id. The broker judges it exactly as its GitHub-shaped
 * surface does and answers; a redirect is never followed (a log download's is passed back).
 * What the sandbox sent as credentials (a placeholder) is dropped here.
 */

/** The broker's side of the egress door: `BrokerApi.egress` over the service binding. */
export interface EgressBroker {
  egress(request: Request, binding: { containerId: string; capability: string | null }): Promise<Response>;
}

/** What the container runtime tells an outbound handler: `@cloudflare/containers`' `ctx`. */
export interface EgressContext {
  containerId: string;
}

export interface BrokerEgressOptions<E> {
  /** The service binding to the broker's `BrokerApi` entrypoint (see {@link egressBroker}). */
  broker: (env: E) => EgressBroker;
  /**
   * The capability the platform issued for this container (`containerId` at issue) and keeps in
   * trusted storage; `null` when it has none. Never read it from the sandbox.
   */
  capabilityFor: (ctx: EgressContext, env: E) => Promise<string | null> | string | null;
}

/** Request headers the sandbox may set that carry credentials: never passed on. */
const CREDENTIAL_HEADERS = ["authorization", "proxy-authorization", "cookie"];

/**
 * The outbound handler for the provider's hosts, in the shape `@cloudflare/containers`
 * expects: `(request, env, ctx) => Promise<Response>`. Failures of the platform's own parts
 * (the binding, `capabilityFor`) are a `503 broker_unavailable` the sandbox's `git` prints.
 */
export function brokerEgress<E>(options: BrokerEgressOptions<E>): (request: Request, env: E, ctx: EgressContext) => Promise<Response> {
  return async (request, env, ctx) => {
    let capability: string | null;
    let broker: EgressBroker;
    try {
      capability = await options.capabilityFor(ctx, env);
      broker = options.broker(env);
    } catch {
      return unavailable("The platform could not find this container's capability.");
    }
    const headers = new Headers(request.headers);
    for (const name of CREDENTIAL_HEADERS) headers.delete(name);
    const stripped = new Request(request, { headers, redirect: "manual" });
    try {
      return await broker.egress(stripped, { containerId: ctx.containerId, capability });
    } catch {
      return unavailable("The token broker could not be reached through its service binding.");
    }
  };
}

/**
 * Types a service binding to the broker as {@link EgressBroker}. `wrangler types` writes a
 * binding to another Worker's entrypoint as plain `Service`, which has no RPC methods in its type.
 */
export function egressBroker(binding: object): EgressBroker {
  return binding as EgressBroker;
}

function unavailable(message: string): Response {
  return new Response(`broker_unavailable: ${message}\n`, { status: 503, headers: { "content-type": "text/plain; charset=utf-8", "retry-after": "1" } });
}
