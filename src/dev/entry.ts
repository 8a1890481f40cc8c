/**
 * The dev-only Worker entry, for `npm start` (wrangler.local.toml) and never
 * deployed: the production entry (src/index.ts) unchanged, plus
 *
 * - the local demo under `/demo` (src/dev/demo.ts), which plays the web app's part, and `/`
 *   sends the browser there;
 * - `UserActor` replaced by {@link DemoUserActor}, the production class plus the demo's
 *   "expire the access token" hook.
 *
 * The demo answers only while `PUBLIC_BASE_URL` is a loopback address, so even a mistaken
 * `wrangler deploy -c wrangler.local.toml` would not open its unauthenticated API to the internet.
 * Nothing else may be exported: each named export of an entry is an entrypoint.
 */
import production from "../index";
import { demoEnabled, handleDemo } from "./demo";

export { BrokerApi, IdentityIndex, InstallationActor } from "../index";
export { DemoUserActor as UserActor } from "./demo-actor";

export default {
  async fetch(request, env) {
    const url = new URL(request.url);
    // The web app's front page is the demo (also where the bad-state page's "Back to the app" lands).
    if (url.pathname === "/" && request.method === "GET" && demoEnabled(env)) return Response.redirect(new URL("/demo", url).toString(), 302);
    if (url.pathname === "/demo" || url.pathname.startsWith("/demo/")) {
      const demo = await handleDemo(request, env, url);
      if (demo) return demo;
    }
    return production.fetch(request, env);
  },
} satisfies ExportedHandler<Env>;
