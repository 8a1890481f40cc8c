/**
 * The platform's service binding to the broker, stood in for over the harness's HTTP port: the
 * egress handler (src/egress.ts) runs in Node (test-node/egress.test.ts, the bench), and each
 * request it hands over goes to the harness's `/_harness/egress` route (test/support/harness-entry.ts), which
 * calls the real `BrokerApi.egress`. The harness's broker knows GitHub by the emulator's host
 * (as production knows github.com), so the adapter puts that host in the URL.
 */
import type { EgressBroker } from "../../src/egress.ts";
import { EMULATOR_ORIGIN } from "./harness.ts";

/** The service binding, over the harness's HTTP port; `githubOrigin` is the harness's `githubOrigin`. */
export function harnessBroker(base: URL, githubOrigin: string = EMULATOR_ORIGIN): EgressBroker {
  return {
    async egress(request, binding) {
      const headers = new Headers(request.headers);
      const url = new URL(request.url);
      headers.set("x-egress-url", `${githubOrigin}${url.pathname}${url.search}`);
      headers.set("x-egress-container", binding.containerId);
      if (binding.capability !== null) headers.set("x-egress-capability", binding.capability);
      const hasBody = request.method !== "GET" && request.method !== "HEAD";
      const res = await fetch(new URL("/_harness/egress", base), { method: request.method, headers, body: hasBody ? request.body : undefined, redirect: "manual", ...(hasBody ? { duplex: "half" } : {}) } as RequestInit);
      // Node's fetch has already decoded the body: the encoding no longer describes it (RPC would pass it as it is).
      const out = new Headers(res.headers);
      out.delete("content-encoding");
      return new Response(res.body, { status: res.status, headers: out });
    },
  };
}
