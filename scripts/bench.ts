/**
 * `npm run bench`: the broker's speed, measured in one run on this machine.
 *
 * The broker (bundled with a tiny extra Durable Object, see bench/worker.ts) runs in the
 * real workerd runtime through Miniflare, with SQLite-backed Durable Objects; the GitHub
 * emulator runs in this process as its outbound service, so every GitHub call is counted.
 *
 * Figures:
 *  - hot path: `POST /v1/users/{id}/token`, valid token, cached repository check, with the
 *    audit trail and metrics on (a `METRICS` Analytics Engine dataset is bound);
 *  - bare: `POST /bench/bare/{id}`, one RPC to a Durable Object that does nothing;
 *    both through the same HTTP entry, in --rounds paired rounds (alternating which goes
 *    first), and their ratio as the median of the rounds' ratios with its interquartile range,
 *    with workerd's CPU per request on each side (from /proc, which the machine's noise moves
 *    far less than throughput);
 *  - refresh storm: N concurrent token requests on an expired token, the GitHub refresh
 *    calls they caused (target: 1) and their latency;
 *  - installation tokens: `POST /v1/installations/token` with the token cached in the
 *    installation actor vs the same bare round trip, interleaved (target ratio >= 0.95); and
 *    N concurrent callers on an expired installation token: mints at GitHub (target 1);
 *  - scale: hot-path throughput with every request on 1 user vs spread over --users users
 *    (no shared object on the hot path, so it should not fall);
 *  - cold start: the first request to a user's actor (object start and schema migration
 *    included) vs the same request to a warm one;
 *  - git proxy: `git clone` of a repository of a few MiB through the broker's proxy vs
 *    directly from the emulator, in --clones alternating pairs (target ratio <= 1.05). The
 *    broker reaches the emulator over the same HTTP server as the direct path.
 *  - push policy: `git push` of a small commit to an allowed branch through the proxy (which
 *    reads and judges the ref updates, then streams the pack on) vs directly to the emulator,
 *    interleaved, median of --pushes each (target ratio <= 1.05); and one 50 MiB push each way
 *    with workerd's peak resident memory measured from /proc (scripts/proc-memory.ts): the
 *    proxy streams the pack, so its peak during the proxied push should match the direct one.
 *
 * `BENCH_DEBUG=1` also prints each paired round's ratio (how noisy the machine is).
 *
 * `--profile [requests|worker|proxy]`: instead of the figures, where a hot `/token` request's
 * time goes (scripts/bench-profile.ts, docs/benchmark.md), and a proxied git request's; with
 * a part named, that part only.
 *
 * Options: --seconds S (per measured path, default 8), --concurrency C (default 16),
 *          --storm N (default 1000), --users N (default 1000), --pushes N (default 15),
 *          --clones N (default 9),
 *          --big-mib N (default 50), --rounds N (paired rounds per figure, default 12).
 */
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createRepository, gitHttpBackend, run } from "../emulator/git-backend.ts";
import { serve } from "../emulator/serve.ts";
import { GitHubEmulator } from "../emulator/github.ts";
import { APPS } from "../test/support/env.ts";
import { startHarness, type HarnessEntry } from "../test/support/harness.ts";
import { alternating, load, median, percentile, spreadOf, type Phase } from "./bench-load.ts";
import { profile, proxyProfile } from "./bench-profile.ts";
import { benchEgress, benchSurface } from "./bench-surface.ts";
import { cpuNs } from "./proc-cpu.ts";
import { findWorkerd, peakDuring } from "./proc-memory.ts";

const args = new Map<string, string>();
for (let i = 2; i < process.argv.length; i++) {
  const value = process.argv[i + 1];
  const flag = value === undefined || value.startsWith("--");
  args.set(process.argv[i]!.replace(/^--/, ""), flag ? "" : value);
  if (!flag) i++;
}
const SECONDS = Number(args.get("seconds") ?? 8);
const CONCURRENCY = Number(args.get("concurrency") ?? 16);
const STORM = Number(args.get("storm") ?? 1000);
const USERS = Number(args.get("users") ?? 1000);
const PUSHES = Number(args.get("pushes") ?? 15);
const CLONES = Number(args.get("clones") ?? 9);
const BIG_MIB = Number(args.get("big-mib") ?? 50);
/** Paired rounds per figure: many short ones, so the median and its spread mean something. */
const ROUNDS = Number(args.get("rounds") ?? 12);
const PROFILE_PARTS = ["", "requests", "worker", "proxy"];
if (args.has("profile") && !PROFILE_PARTS.includes(args.get("profile")!)) {
  console.error(`--profile takes no part or one of: ${PROFILE_PARTS.slice(1).join(", ")}`);
  process.exit(2);
}

/**
 * Two paths measured side by side: `rounds` short phases each, alternating which goes first
 * (so neither always runs on the warmer or the busier half of a round), and their ratio as the
 * median of the per-round ratios, which a drift in the machine's speed (two shared cores) moves
 * far less than a ratio of totals.
 */
async function paired(a: () => Promise<Response>, b: () => Promise<Response>, rounds = ROUNDS): Promise<{ a: Phase[]; b: Phase[]; ratio: number; spread: string; cpu: string }> {
  const as: Phase[] = [];
  const bs: Phase[] = [];
  const cpu = { a: 0, b: 0 };
  const rps = (p: Phase) => p.requests / p.seconds;
  const measured = async (side: "a" | "b") => {
    const w0 = workerdCpuNs();
    const phase = await load(side === "a" ? a : b, SECONDS / rounds, CONCURRENCY);
    cpu[side] += workerdCpuNs() - w0;
    (side === "a" ? as : bs).push(phase);
  };
  for (let r = 0; r < rounds; r++) {
    for (const side of r % 2 === 0 ? (["a", "b"] as const) : (["b", "a"] as const)) await measured(side);
  }
  const ratios = as.map((p, i) => rps(p) / rps(bs[i]!));
  if (process.env.BENCH_DEBUG) console.log(`paired rounds: ${ratios.map((r) => r.toFixed(3)).join(" ")}`);
  const perRequest = (ns: number, phases: Phase[]) => ns / 1000 / phases.reduce((n, p) => n + p.requests, 0);
  const [ua, ub] = [perRequest(cpu.a, as), perRequest(cpu.b, bs)];
  const cpuLine = Number.isFinite(ua) ? `workerd CPU per request ${ua.toFixed(0)} µs against ${ub.toFixed(0)} µs (${ua >= ub ? "+" : ""}${(ua - ub).toFixed(0)} µs)` : "workerd CPU not readable here";
  return { a: as, b: bs, ratio: median(ratios), spread: spreadOf(ratios), cpu: cpuLine };
}

/** workerd's CPU time so far (ns) from /proc, `NaN` where it cannot be read. */
let workerdPid: number | null | undefined;
function workerdCpuNs(): number {
  workerdPid ??= findWorkerd();
  return workerdPid === null ? NaN : cpuNs(workerdPid);
}

function merge(phases: Phase[]): { rps: number; p50: number; p99: number; requests: number; errors: number } {
  const latencies = phases.flatMap((p) => p.latencies).sort((a, b) => a - b);
  const requests = phases.reduce((n, p) => n + p.requests, 0);
  const seconds = phases.reduce((n, p) => n + p.seconds, 0);
  return {
    rps: requests / seconds,
    p50: percentile(latencies, 50),
    p99: percentile(latencies, 99),
    requests,
    errors: phases.reduce((n, p) => n + p.errors, 0),
  };
}

const fmt = (n: number, d = 2) => n.toFixed(d);

/** Each pair's proxied time over its direct one. */
const pairRatios = (times: { direct: number[]; proxy: number[] }) => times.proxy.map((t, i) => t / times.direct[i]!);

/** What the bench Worker's user actors did so far (bench/worker.ts counts them per isolate). */
async function actorCounts(base: URL): Promise<{ constructed: number; alarms: number }> {
  return (await (await fetch(new URL("/bench/counts", base))).json()) as { constructed: number; alarms: number };
}

type ScaleSnapshot = { constructed: number; alarms: number; github: number; logs: number };
async function scaleSnapshot(harness: { url: URL; logLines(): number }, emulator: GitHubEmulator): Promise<ScaleSnapshot> {
  return { ...(await actorCounts(harness.url)), github: Object.values(emulator.counts).reduce((n, v) => n + v, 0), logs: harness.logLines() };
}

/** Waits until no actor alarm has run for 2 s (at most 90 s): the alarms that ran meanwhile, and how long it took. */
async function quiescence(base: URL): Promise<{ alarms: number; seconds: number }> {
  const t0 = performance.now();
  const start = (await actorCounts(base)).alarms;
  let last = start;
  let quietSince = performance.now();
  while (performance.now() - quietSince < 2_000 && performance.now() - t0 < 90_000) {
    await new Promise((r) => setTimeout(r, 250));
    const now = (await actorCounts(base)).alarms;
    if (now !== last) [last, quietSince] = [now, performance.now()];
  }
  return { alarms: last - start, seconds: (performance.now() - t0) / 1000 };
}

/** The broker plus the bench's routes and its no-op Durable Object (bench/worker.ts). */
const BENCH_ENTRY: HarnessEntry = { path: "bench/worker.ts", durableObjects: { BARE: "BareObject" } };

async function main() {
  const gitRoot = mkdtempSync(join(tmpdir(), "bench-git-"));
  const emulator = new GitHubEmulator(Object.values(APPS).map((a) => ({ ...a })), { gitBackend: gitHttpBackend(gitRoot) });
  // The emulator over plain HTTP: the direct clones and pushes go to it, and so does the broker
  // (as a deployment goes straight to GitHub), so a proxied/direct ratio counts the broker's hop
  // and not Miniflare's outbound bridge.
  const direct = await serve((req) => emulator.fetch(req));
  const harness = await startHarness(emulator, undefined, { entry: BENCH_ENTRY, githubOrigin: direct.url, direct: true });
  const { call, connect } = harness;
  const tokenBody = { appType: "standard", repository: "acme/app" };
  await connect("bench-hot", 1);
  // Warm up both paths (isolate, objects, repository cache).
  for (let i = 0; i < 200; i++) {
    await (await call("/v1/users/bench-hot/token", tokenBody)).arrayBuffer();
    await (await call("/bench/bare/bench-hot", tokenBody)).arrayBuffer();
  }

  if (args.has("profile")) {
    const workerd = findWorkerd();
    if (workerd === null) throw new Error("--profile reads workerd's CPU time from /proc (Linux only)");
    const only = args.get("profile")!;
    if (only !== "proxy") await profile({ call, workerd, userId: "bench-hot", seconds: SECONDS, rounds: ROUNDS, concurrency: CONCURRENCY, repeat: Number(args.get("repeat") ?? 20), only });
    if (only === "" || only === "proxy") {
      await createRepository(gitRoot, "acme/push", { "README.md": "# push\n" });
      await connect("bench-push", 4, { "acme/push": "push" });
      const token = ((await (await call("/v1/users/bench-push/token", { appType: "standard", repository: "acme/push" })).json()) as { token: string }).token;
      const cap = (await (await call("/v1/users/bench-push/capabilities", { appType: "standard", repository: "acme/push", sessionId: "bench", branches: ["agent/*"] })).json()) as { capability: string; gitRemoteUrl: string };
      const directUrl = new URL("/acme/push.git", direct.url);
      await proxyProfile({ call, base: harness.url, userId: "bench-push", repository: "acme/push", capability: cap.capability, token, directUrl, proxyUrl: new URL(cap.gitRemoteUrl), samples: Number(args.get("samples") ?? 60) });
    }
    await harness.dispose();
    await direct.close();
    rmSync(gitRoot, { recursive: true, force: true });
    return;
  }

  const githubBefore = { ...emulator.counts };
  // Then under the measured concurrency for a second each, so the JIT has settled before any round counts.
  await load(() => call("/v1/users/bench-hot/token", tokenBody), 1, CONCURRENCY);
  await load(() => call("/bench/bare/bench-hot", tokenBody), 1, CONCURRENCY);
  const hotVsBare = await paired(() => call("/v1/users/bench-hot/token", tokenBody), () => call("/bench/bare/bench-hot", tokenBody));
  const [hot, bare] = [hotVsBare.a, hotVsBare.b];
  const githubCalls = Object.entries(emulator.counts).reduce((n, [k, v]) => n + v - githubBefore[k as keyof typeof githubBefore], 0);
  const h = merge(hot);
  const b = merge(bare);

  // Installation tokens: the cached path against the bare round trip, interleaved.
  const installationBody = { appType: "standard", repository: "acme/app" };
  const permissions = { contents: "write", pull_requests: "write", metadata: "read" } as const;
  emulator.installations.addInstallation({ id: 9001, clientId: APPS.standard.clientId, account: "acme", repositories: ["acme/app"], permissions });
  for (let i = 0; i < 200; i++) {
    await (await call("/v1/installations/token", installationBody)).arrayBuffer();
    await (await call("/bench/bare/bench-installation", installationBody)).arrayBuffer();
  }
  const appCallsBefore = emulator.counts.installation + emulator.counts.installation_token;
  const instVsBare = await paired(() => call("/v1/installations/token", installationBody), () => call("/bench/bare/bench-installation", installationBody));
  const [instHot, instBare] = [instVsBare.a, instVsBare.b];
  const appCalls = emulator.counts.installation + emulator.counts.installation_token - appCallsBefore;
  const ih = merge(instHot);
  const ib = merge(instBare);

  // Installation-token storm: a cached token with 301 s left is under the 300 s default after 2 s.
  emulator.installations.addInstallation({ id: 9002, clientId: APPS.standard.clientId, account: "storm-org", repositories: ["storm-org/app"], permissions });
  const stormBody = { appType: "standard", repository: "storm-org/app" };
  emulator.installations.installationTokenExpiresIn = 301;
  await (await call("/v1/installations/token", stormBody)).arrayBuffer();
  emulator.installations.installationTokenExpiresIn = 3600;
  await new Promise((r) => setTimeout(r, 2_100));
  const mintsBefore = emulator.counts.installation_token;
  const instStormLatencies: number[] = [];
  const instStormTokens = new Set<string>();
  let instStormErrors = 0;
  await Promise.all(
    Array.from({ length: STORM }, async () => {
      const t0 = performance.now();
      const res = await call("/v1/installations/token", stormBody);
      const body = (await res.json()) as { token?: string };
      instStormLatencies.push(performance.now() - t0);
      if (res.status !== 200) instStormErrors++;
      else instStormTokens.add(body.token!);
    }),
  );
  instStormLatencies.sort((x, y) => x - y);
  const instStormMints = emulator.counts.installation_token - mintsBefore;

  // Refresh storm: a token that needs a refresh, STORM concurrent callers.
  emulator.settings.accessTokenExpiresIn = 301; // valid, but under the 300 s minValidity in 2 s
  await connect("bench-storm", 2);
  emulator.settings.accessTokenExpiresIn = 28_800;
  await new Promise((r) => setTimeout(r, 2_100));
  const refreshesBefore = emulator.counts.refresh;
  const stormLatencies: number[] = [];
  let stormErrors = 0;
  const tokens = new Set<string>();
  await Promise.all(
    Array.from({ length: STORM }, async () => {
      const t0 = performance.now();
      const res = await call("/v1/users/bench-storm/token", tokenBody);
      const body = (await res.json()) as { token?: string };
      stormLatencies.push(performance.now() - t0);
      if (res.status !== 200) stormErrors++;
      else tokens.add(body.token!);
    }),
  );
  stormLatencies.sort((a, b) => a - b);
  const stormRefreshes = emulator.counts.refresh - refreshesBefore;

  // Scale: the same hot path, on one user vs spread over USERS users.
  for (let i = 0; i < USERS; i++) await connect(`bench-scale-${i}`, 10_000 + i);
  // Quiescence: setup's alarms (none are expected: a confirm releases its grace alarm) are
  // waited out, so the phase measures requests only; then every actor is warmed.
  const quiet = await quiescence(harness.url);
  for (let i = 0; i < USERS; i++) await (await call(`/v1/users/bench-scale-${i}/token`, tokenBody)).arrayBuffer();
  let next = 0;
  const scaleBefore = await scaleSnapshot(harness, emulator);
  const manyVsOne = await paired(() => call(`/v1/users/bench-scale-${next++ % USERS}/token`, tokenBody), () => call("/v1/users/bench-hot/token", tokenBody));
  const scaleAfter = await scaleSnapshot(harness, emulator);
  const [many, one] = [manyVsOne.a, manyVsOne.b];
  const o = merge(one);
  const m = merge(many);

  // Cold start: first request to a fresh actor vs the same request to a warm one.
  const sequential = async (paths: string[]) => {
    const out: number[] = [];
    for (const path of paths) {
      const t0 = performance.now();
      await (await call(path, undefined, "GET")).arrayBuffer();
      out.push(performance.now() - t0);
    }
    return out.sort((a, b) => a - b);
  };
  const coldPaths = Array.from({ length: 200 }, (_, i) => `/v1/users/bench-cold-${i}/connection?appType=standard`);
  const cold = await sequential(coldPaths);
  const warm = await sequential(coldPaths);

  // Git: clone a few MiB directly from the emulator and through the proxy.
  await createRepository(gitRoot, "acme/big", {
    "a.bin": new Uint8Array(randomBytes(2 * 1024 * 1024)),
    "b.bin": new Uint8Array(randomBytes(2 * 1024 * 1024)),
    "README.md": "# big\n",
  });
  await connect("bench-git", 3, { "acme/big": "push" });
  const token = ((await (await call("/v1/users/bench-git/token", { appType: "standard", repository: "acme/big" })).json()) as { token: string }).token;
  const capRes = await call("/v1/users/bench-git/capabilities", { appType: "standard", repository: "acme/big", sessionId: "bench" });
  const cap = (await capRes.json()) as { capability: string; gitRemoteUrl: string };
  const directUrl = new URL("/acme/big.git", direct.url);
  directUrl.username = "x-access-token";
  directUrl.password = token;
  const proxyUrl = new URL(cap.gitRemoteUrl);
  proxyUrl.username = "x-capability";
  proxyUrl.password = cap.capability;
  const cloneTimes = { direct: [] as number[], proxy: [] as number[] };
  const scratch = mkdtempSync(join(tmpdir(), "bench-clones-"));
  // One warm-up clone each way, then CLONES pairs, alternating which goes first.
  for (let i = 0; i <= CLONES; i++) {
    for (const [kind, remote] of alternating(i, ["direct", directUrl] as const, ["proxy", proxyUrl] as const)) {
      const t0 = performance.now();
      await run("git", ["clone", "-q", remote.toString(), join(scratch, `${kind}-${i}`)]);
      if (i > 0) cloneTimes[kind].push(performance.now() - t0);
    }
  }
  const cloneRatios = pairRatios(cloneTimes);
  const { stdout: packSize } = await run("du", ["-sk", join(gitRoot, "acme/big.git")]);

  // Push policy: small pushes to allowed branches, through the proxy vs direct; then 50 MiB each way.
  await createRepository(gitRoot, "acme/push", { "README.md": "# push\n" });
  await connect("bench-push", 4, { "acme/push": "push" });
  const pushToken = ((await (await call("/v1/users/bench-push/token", { appType: "standard", repository: "acme/push" })).json()) as { token: string }).token;
  const pushCap = (await (await call("/v1/users/bench-push/capabilities", { appType: "standard", repository: "acme/push", sessionId: "bench", branches: ["agent/*"] })).json()) as {
    capability: string;
    gitRemoteUrl: string;
  };
  const pushDirect = new URL("/acme/push.git", direct.url);
  pushDirect.username = "x-access-token";
  pushDirect.password = pushToken;
  const pushProxy = new URL(pushCap.gitRemoteUrl);
  pushProxy.username = "x-capability";
  pushProxy.password = pushCap.capability;
  const pushDir = join(scratch, "push");
  await run("git", ["clone", "-q", pushDirect.toString(), pushDir]);
  const commitFile = async (name: string, bytes: number, base = "main") => {
    await run("git", ["checkout", "-q", "-B", name, base], pushDir);
    const { writeFileSync } = await import("node:fs");
    writeFileSync(join(pushDir, `${name}.bin`), randomBytes(bytes));
    await run("git", ["add", "."], pushDir);
    await run("git", ["-c", "user.name=Bench", "-c", "user.email=bench@example.com", "commit", "-q", "-m", name], pushDir);
  };
  const pushTimes = { direct: [] as number[], proxy: [] as number[] };
  for (let i = 0; i < PUSHES + 1; i++) {
    for (const [kind, remote] of alternating(i, ["direct", pushDirect] as const, ["proxy", pushProxy] as const)) {
      await commitFile(`${kind}-${i}`, 64 * 1024);
      const t0 = performance.now();
      await run("git", ["push", "-q", remote.toString(), `HEAD:refs/heads/agent/${kind}-${i}`], pushDir);
      if (i > 0) pushTimes[kind].push(performance.now() - t0); // the first round warms up
    }
  }
  const pushRatios = pairRatios(pushTimes);
  const workerd = findWorkerd();
  type BigPush = { peakMiB: number; startMiB: number; ms: number; method: string };
  const big: { direct: BigPush | null; proxy: BigPush | null } = { direct: null, proxy: null };
  for (const [kind, remote] of [["direct", pushDirect], ["proxy", pushProxy]] as const) {
    await commitFile(`big-${kind}`, BIG_MIB * 1024 * 1024);
    const t0 = performance.now();
    const push = () => run("git", ["push", "-q", remote.toString(), `HEAD:refs/heads/agent/big-${kind}`], pushDir);
    if (workerd) {
      const measured = await peakDuring(workerd, push);
      big[kind] = { peakMiB: measured.peakMiB, startMiB: measured.startMiB, ms: performance.now() - t0, method: measured.method };
    } else {
      await push();
      big[kind] = { peakMiB: NaN, startMiB: NaN, ms: performance.now() - t0, method: "none (no /proc)" };
    }
  }
  await direct.close();
  rmSync(scratch, { recursive: true, force: true });
  rmSync(gitRoot, { recursive: true, force: true });

  console.log(`token broker benchmark (${new Date().toISOString()}, node ${process.version}, ${CONCURRENCY} concurrent clients, ${SECONDS}s per path)`);
  console.log("");
  console.log("path                          req/s     p50 ms   p99 ms   requests  errors");
  const row = (name: string, m: ReturnType<typeof merge>) =>
    console.log(
      `${name.padEnd(28)}${fmt(m.rps, 0).padStart(7)}  ${fmt(m.p50).padStart(8)} ${fmt(m.p99).padStart(8)}  ${String(m.requests).padStart(8)}  ${String(m.errors).padStart(6)}`,
    );
  row("bare Durable Object RPC", b);
  row("hot path /token", h);
  console.log("");
  console.log(`hot path (audit and metrics on) / bare throughput ratio: ${fmt(hotVsBare.ratio * 100, 1)}% (median; ${hotVsBare.spread}; target >= 95%); ${hotVsBare.cpu}`);
  console.log(`GitHub calls during the hot path: ${githubCalls} (target 0)`);
  console.log(
    `refresh storm: ${STORM} concurrent callers on an expired token -> ${stormRefreshes} GitHub refresh call(s) (target 1), ` +
      `${tokens.size} distinct token(s), ${stormErrors} errors, p50 ${fmt(percentile(stormLatencies, 50))} ms, p99 ${fmt(percentile(stormLatencies, 99))} ms`,
  );
  console.log("");
  row("bare Durable Object RPC", ib);
  row("installation token (cached)", ih);
  console.log(`installation token (cached) / bare throughput ratio: ${fmt(instVsBare.ratio * 100, 1)}% (median; ${instVsBare.spread}; target >= 95%); ${instVsBare.cpu}`);
  console.log(`GitHub calls during the cached installation-token path: ${appCalls} (target 0)`);
  console.log(
    `installation-token storm: ${STORM} concurrent callers on an expired installation token -> ${instStormMints} mint(s) at GitHub (target 1), ` +
      `${instStormTokens.size} distinct token(s), ${instStormErrors} errors, p50 ${fmt(percentile(instStormLatencies, 50))} ms, p99 ${fmt(percentile(instStormLatencies, 99))} ms`,
  );
  console.log("");
  row(`hot path, 1 user`, o);
  row(`hot path, ${USERS} users`, m);
  console.log(`${USERS} users / 1 user throughput ratio: ${fmt(manyVsOne.ratio * 100, 1)}% (median; ${manyVsOne.spread}; target >= 95%); ${manyVsOne.cpu}`);
  const during = (k: keyof ScaleSnapshot) => scaleAfter[k] - scaleBefore[k];
  console.log(
    `during the scale phase: ${during("alarms")} actor alarm(s), ${during("constructed")} actor construction(s) (an actor workerd evicted after ~10 s idle starts again: ` +
      `schema check, row read, decryption, and the repository check at GitHub, whose answer is kept in memory), ${during("github")} GitHub call(s), ` +
      `${during("logs")} log line(s); setup's alarms waited out before it: ${quiet.alarms} in ${fmt(quiet.seconds, 1)} s`,
  );
  console.log(
    `actor cold start (first request, schema migration included): p50 ${fmt(percentile(cold, 50))} ms, p99 ${fmt(percentile(cold, 99))} ms; ` +
      `warm: p50 ${fmt(percentile(warm, 50))} ms, p99 ${fmt(percentile(warm, 99))} ms; cold/warm p50 ratio ${fmt(percentile(cold, 50) / percentile(warm, 50))}x`,
  );
  console.log(
    `git clone of a ${(Number(packSize.split(/\s/)[0]) / 1024).toFixed(1)} MiB repository: direct from the emulator ${fmt(median(cloneTimes.direct), 0)} ms, ` +
      `through the proxy ${fmt(median(cloneTimes.proxy), 0)} ms (median of ${CLONES}); proxy/direct ratio ${fmt(median(cloneRatios))}x (median of the ${CLONES} pairs, ${spreadOf(cloneRatios, "pairs")}; target <= 1.05)`,
  );
  console.log(
    `git push of a 64 KiB commit to an allowed branch (policy agent/*): direct ${fmt(median(pushTimes.direct), 0)} ms, ` +
      `through the proxy's policy check ${fmt(median(pushTimes.proxy), 0)} ms (median of ${PUSHES}); proxy/direct ratio ${fmt(median(pushRatios))}x (median of the ${PUSHES} pairs, ${spreadOf(pushRatios, "pairs")}; target <= 1.05)`,
  );
  if (big.direct && big.proxy) {
    console.log(
      `${BIG_MIB} MiB push to an allowed branch: direct ${fmt(big.direct.ms, 0)} ms, proxy ${fmt(big.proxy.ms, 0)} ms; ` +
        `workerd peak RSS (${big.proxy.method}) during the direct push ${fmt(big.direct.peakMiB, 1)} MiB (from ${fmt(big.direct.startMiB, 1)}), ` +
        `during the proxied push ${fmt(big.proxy.peakMiB, 1)} MiB (from ${fmt(big.proxy.startMiB, 1)}); proxied/direct peak ratio ${fmt(big.proxy.peakMiB / big.direct.peakMiB)}x ` +
        `(flat: about 1; a buffered pack would add ~${BIG_MIB} MiB)`,
    );
  }
  console.log(`structured log lines written by the broker during the run: ${harness.logLines()}`);
  await harness.dispose();
  // The GitHub-shaped surface: gh's query through the GraphQL policy, and the decision alone.
  await benchSurface();
  await benchEgress();
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
