/**
 * The GitHub-shaped surface's part of `npm run bench` (called by scripts/bench.ts):
 *
 * - `gh pr view`'s query (test/fixtures/gh, as Debian's gh sends it) through the broker's
 *   GraphQL policy (`POST /api/graphql` on AGENT_HOST: redemption, judgement, forwarding)
 *   against the same query straight to the emulator with a token, in alternating pairs; the
 *   ratio is the median of the pairs' ratios, with its interquartile range (target <= 1.15);
 * - the policy's decision alone (`judgeGraphQL`, pure) for every document gh sends: p50 and
 *   p99 (target p50 < 2 ms);
 * - `git clone https://github.com/{bound}` in a sandbox through the egress handler
 *   (src/egress.ts, behind the test's HTTPS-intercepting proxy, as Cloudflare Containers'
 *   `interceptHttps` runs it) against the same clone through the same intercepting proxy
 *   handed straight to the emulator with a token, alternating, median of the pairs (target
 *   <= 1.1).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRepository, gitHttpBackend, run } from "../emulator/git-backend.ts";
import { gitRefs } from "../emulator/git-refs.ts";
import { GitHubEmulator } from "../emulator/github.ts";
import { serve } from "../emulator/serve.ts";
import { build } from "esbuild";
import { APPS } from "../test/support/env.ts";
import { brokerEgress } from "../src/egress.ts";
import { harnessBroker } from "../test/support/egress-adapter.ts";
import { freePort, startHarness } from "../test/support/harness.ts";
import { startInterceptingProxy } from "../test/support/intercepting-proxy.ts";

const FIXTURES = "test/fixtures/gh";

/** `judgeGraphQL`'s shape (src/surface/graphql-policy.ts, which runs bundled, as in the Worker). */
type Judge = (body: { query: string; variables?: Record<string, unknown> }, binding: { owner: string; name: string; permission: "push" | "pull"; allowDelete: boolean; branchAllowed(ref: string): boolean }) => { ok: boolean };

function quantile(sorted: number[], q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.round(q * (sorted.length - 1)))]!;
}

/** Measures and prints the surface's figures; `pairs` alternating pairs for the proxy ratio. */
export async function benchSurface(pairs = 60): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "bench-surface-"));
  await createRepository(root, "acme/app", { "README.md": "# app\n" });
  const emulator = new GitHubEmulator(Object.values(APPS).map((a) => ({ ...a })), { gitBackend: gitHttpBackend(root), gitRefs: gitRefs(root) });
  const port = await freePort();
  // The broker reaches the emulator over the same HTTP server as the direct query.
  const direct = await serve((request) => emulator.fetch(request));
  const harness = await startHarness(emulator, undefined, { port, bindings: { AGENT_HOST: `localhost:${port}` }, githubOrigin: direct.url, direct: true });
  try {
    await harness.connect("bench-gh", 4242, { "acme/app": "push" });
    const grant = (await (await harness.call("/v1/users/bench-gh/capabilities", { appType: "standard", repository: "acme/app", sessionId: "bench", branches: ["agent/*"] })).json()) as { capability: string };
    const token = emulator.issuePair(APPS.standard.clientId, 4242).accessToken;
    const seeded = (await (await emulator.fetch(new Request("http://github.harness/_emulator/pulls", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ repository: "acme/app", head: "agent/x", title: "Bench", author: "user4242" }) }))).json()) as { number: number };

    const fixture = JSON.parse(readFileSync(join(FIXTURES, "pr-view.1.PullRequestByNumber.json"), "utf8")) as { query: string };
    const body = JSON.stringify({ query: fixture.query, variables: { owner: "acme", repo: "app", pr_number: seeded.number } });
    const viaBroker = () => fetch(`http://localhost:${port}/api/graphql`, { method: "POST", headers: { authorization: `token ${grant.capability}`, "content-type": "application/json" }, body });
    const straight = () => fetch(`${direct.url}/graphql`, { method: "POST", headers: { authorization: `bearer ${token}`, "content-type": "application/json" }, body });
    const timed = async (send: () => Promise<Response>) => {
      const t0 = performance.now();
      const res = await send();
      const text = await res.text();
      if (!text.includes('"pullRequest"')) throw new Error(`gh pr view's query failed: ${text.slice(0, 200)}`);
      return performance.now() - t0;
    };
    for (let i = 0; i < 10; i++) await timed(i % 2 ? viaBroker : straight); // warm both paths
    const ratios: number[] = [];
    const times = { broker: [] as number[], direct: [] as number[] };
    for (let i = 0; i < pairs; i++) {
      const first = i % 2 === 0;
      const a = first ? await timed(viaBroker) : 0;
      const b = await timed(straight);
      const c = first ? a : await timed(viaBroker);
      times.broker.push(c);
      times.direct.push(b);
      ratios.push(c / b);
    }
    const sorted = [...ratios].sort((x, y) => x - y);
    const med = (xs: number[]) => quantile([...xs].sort((x, y) => x - y), 0.5);
    console.log(
      `gh pr view's query: straight to the emulator ${med(times.direct).toFixed(2)} ms, through the GraphQL policy ${med(times.broker).toFixed(2)} ms (medians of ${pairs}); ` +
        `broker/direct ratio ${quantile(sorted, 0.5).toFixed(2)}x (median of the pairs, IQR ${quantile(sorted, 0.25).toFixed(2)}-${quantile(sorted, 0.75).toFixed(2)}; target <= 1.15)`,
    );

    // The decision alone, for every document gh sends, in this process (pure: no I/O).
    const documents = readdirSync(FIXTURES)
      .filter((f) => /^[a-z-]+\.\d+\.\w+\.json$/.test(f))
      .map((f) => JSON.parse(readFileSync(join(FIXTURES, f), "utf8")) as { query: string; variables?: Record<string, unknown> });
    // The Worker's own module, bundled as wrangler bundles it (src/ imports carry no extensions).
    const bundled = await build({ entryPoints: ["src/surface/graphql-policy.ts"], bundle: true, format: "esm", platform: "neutral", mainFields: ["module", "main"], write: false, logLevel: "error" });
    const { judgeGraphQL } = (await import(`data:text/javascript;base64,${Buffer.from(bundled.outputFiles[0]!.text).toString("base64")}`)) as { judgeGraphQL: Judge };
    const binding = { owner: "o", name: "r", permission: "push" as const, allowDelete: false, branchAllowed: () => true };
    judgeGraphQL(documents[0]!, binding); // the schema is built once per isolate: not part of a decision
    const decisions: number[] = [];
    for (let round = 0; round < 20; round++) {
      for (const doc of documents) {
        const t0 = performance.now();
        judgeGraphQL(doc, binding);
        decisions.push(performance.now() - t0);
      }
    }
    decisions.sort((x, y) => x - y);
    console.log(`GraphQL policy decision for gh's ${documents.length} documents: p50 ${quantile(decisions, 0.5).toFixed(3)} ms, p99 ${quantile(decisions, 0.99).toFixed(3)} ms (target p50 < 2 ms)`);
  } finally {
    await direct.close();
    await harness.dispose();
  }
}

/** A clone in a sandbox through the egress handler vs through the same interception straight to the emulator. */
export async function benchEgress(pairs = 5): Promise<void> {
  const root = mkdtempSync(join(tmpdir(), "bench-egress-"));
  await createRepository(root, "acme/app", { "README.md": "# app\n", "data.bin": randomBytes(2 * 1024 * 1024) });
  const emulator = new GitHubEmulator(Object.values(APPS).map((a) => ({ ...a })), { gitBackend: gitHttpBackend(root) });
  // Both paths reach the emulator over the same HTTP server (the broker as it reaches GitHub).
  const served = await serve((request) => emulator.fetch(request));
  const harness = await startHarness(emulator, undefined, { githubOrigin: served.url, direct: true });
  const work = mkdtempSync(join(tmpdir(), "bench-egress-work-"));
  try {
    await harness.connect("bench-egress", 4343, { "acme/app": "push" });
    const container = "b2".repeat(32);
    const grant = (await (await harness.call("/v1/users/bench-egress/capabilities", { appType: "standard", repository: "acme/app", sessionId: "bench", containerId: container })).json()) as { capability: string };
    const handler = brokerEgress<null>({ broker: () => harnessBroker(harness.url, harness.githubOrigin), capabilityFor: () => grant.capability });
    const token = emulator.issuePair(APPS.standard.clientId, 4343).accessToken;
    // The comparison: the same intercepted request, given to the emulator with the user's token.
    const straight = async (request: Request): Promise<Response> => {
      const url = new URL(request.url);
      const headers = new Headers(request.headers);
      headers.set("authorization", `Basic ${btoa(`x-access-token:${token}`)}`);
      const hasBody = request.method !== "GET" && request.method !== "HEAD";
      const res = await fetch(`${served.url}${url.pathname}${url.search}`, { method: request.method, headers, body: hasBody ? request.body : undefined, redirect: "manual", ...(hasBody ? { duplex: "half" } : {}) } as RequestInit);
      const out = new Headers(res.headers);
      out.delete("content-encoding"); // Node's fetch has decoded the body
      return new Response(res.body, { status: res.status, headers: out });
    };
    const viaEgress = await startInterceptingProxy(["github.com"], (request) => handler(request, null, { containerId: container }));
    const direct = await startInterceptingProxy(["github.com"], straight);
    const clone = async (proxy: { url: string; caFile: string }, i: number) => {
      const dir = join(work, `c${i}`);
      const env = { HTTPS_PROXY: proxy.url, https_proxy: proxy.url, GIT_SSL_CAINFO: proxy.caFile, GIT_CONFIG_NOSYSTEM: "1", HOME: work };
      const t0 = performance.now();
      await run("git", ["clone", "-q", "https://github.com/acme/app.git", dir], work, env);
      const ms = performance.now() - t0;
      rmSync(dir, { recursive: true, force: true });
      return ms;
    };
    await clone(viaEgress, -1);
    await clone(direct, -2);
    const times = { egress: [] as number[], direct: [] as number[] };
    const ratios: number[] = [];
    for (let i = 0; i < pairs; i++) {
      const e = i % 2 === 0 ? await clone(viaEgress, i * 2) : 0;
      const d = await clone(direct, i * 2 + 1);
      const e2 = i % 2 === 0 ? e : await clone(viaEgress, i * 2);
      times.egress.push(e2);
      times.direct.push(d);
      ratios.push(e2 / d);
    }
    const sorted = [...ratios].sort((x, y) => x - y);
    const med = (xs: number[]) => quantile([...xs].sort((x, y) => x - y), 0.5);
    console.log(
      `git clone of a 2 MiB repository in a sandbox: through the same interception straight to the emulator ${med(times.direct).toFixed(0)} ms, ` +
        `through the egress handler and the broker ${med(times.egress).toFixed(0)} ms (medians of ${pairs}); egress/direct ratio ${quantile(sorted, 0.5).toFixed(2)}x ` +
        `(median of the pairs, IQR ${quantile(sorted, 0.25).toFixed(2)}-${quantile(sorted, 0.75).toFixed(2)}; target <= 1.1)`,
    );
    await viaEgress.close();
    await direct.close();
  } finally {
    await harness.dispose();
    await served.close();
    rmSync(work, { recursive: true, force: true });
  }
}
