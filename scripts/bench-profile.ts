/**
 * `npm run bench -- --profile`: where a hot `/token` request's time goes, measured.
 *
 * workerd's clock advances only on I/O, so nothing inside the isolate can time a stage of
 * pure CPU. The bench Worker (bench/worker.ts) answers a ladder of variants instead, each one
 * stage more than the one before, from the bare Durable Object call to the real hot path; each
 * variant is driven with the same load, and for each the profile reads:
 *
 * - workerd's CPU time per request (scripts/proc-cpu.ts: the scheduler's nanoseconds over all
 *   its threads), which the other processes on the machine do not move;
 * - the load generator's own CPU per request (this Node process, the emulator included);
 * - throughput, and its ratio to the previous rung in the same round (paired, as the bench's
 *   other figures).
 *
 * A stage costs the difference to the rung before. Rounds alternate the ladder's direction
 * so a drift of the machine's speed does not land on one end.
 */
import { cpuNs } from "./proc-cpu.ts";
import { load, median, quartiles } from "./bench-load.ts";

interface Variant {
  name: string;
  /** What this rung adds to the one before. */
  adds: string;
  send: () => Promise<Response>;
}

interface Totals {
  requests: number;
  seconds: number;
  workerdNs: number;
  nodeUs: number;
  rps: number[];
}

type Call = (path: string, body?: unknown, method?: string, headers?: Record<string, string>) => Promise<Response>;

/**
 * Runs the three ladders for `userId` (connected, its repository check cached by a warm-up)
 * and prints their tables. `call` is the harness's authenticated request.
 */
export async function profile(options: { call: Call; workerd: number; userId: string; seconds: number; rounds: number; concurrency: number; repeat: number; only: string }): Promise<void> {
  const { call, userId, repeat } = options;
  const body = { appType: "standard", repository: "acme/app" };
  const times = (n: number) => ({ "x-bench-repeat": String(n) });
  const stage = (name: string, n = repeat) => () => call(`/bench/stage/${name}/${userId}`, body, "POST", times(n));
  const worker = (name: string, n = repeat) => () => call(`/bench/worker/${name}/${userId}`, body, "POST", times(n));

  const requests: Variant[] = [
    { name: "bare", adds: "bare Durable Object RPC: body parsed, a no-op object answers", send: () => call(`/bench/bare/${userId}`, body) },
    { name: "bare+grant", adds: "the same no-op object given the token call's input, answering a grant-sized result with the broker's response builder", send: () => call(`/bench/bare_grant/${userId}`, body) },
    { name: "bare+sql", adds: "a no-op object that has opened its SQLite storage", send: () => call(`/bench/bare_storage/${userId}`, body) },
    { name: "actor rpc", adds: "the user's actor instead of the no-op object, doing nothing", send: stage("rpc", 1) },
    { name: "actor token", adds: "that actor's real token method, called straight from the Worker (no validation, routing, bearer check)", send: stage("token", 1) },
    { name: "hot path", adds: "the real POST /v1/users/{id}/token", send: () => call(`/v1/users/${userId}/token`, body) },
  ];
  const workerLadder: Variant[] = [
    { name: "(none)", adds: "the repeating route itself, no repetition", send: worker("parse", 0) },
    { name: "parse", adds: "a copy of the request, its JSON body read, the grant's JSON text as the answer", send: worker("parse") },
    { name: "api", adds: "input validation and the call (api.getToken: config, parse, scope, fallback)", send: worker("api") },
    { name: "respond", adds: "the response builder (respond.ts json: status, headers)", send: worker("respond") },
    { name: "route", adds: "the hot path's route (token-route.ts): bearer check, body read and checked, errors caught", send: worker("route") },
    { name: "entry", adds: "the public entry: the URL parsed, configuration, AGENT_HOST check", send: worker("entry") },
  ];
  const actorLadder: Variant[] = [
    { name: "(none)", adds: "the stage route itself, no work", send: stage("rpc") },
    { name: "context", adds: "call context (configuration, keyring, provider client)", send: stage("context") },
    { name: "live", adds: "live token: connection row reads (SQLite), opened access token", send: stage("live") },
    { name: "repo", adds: "repository check (cached answer)", send: stage("repo") },
    { name: "recheck", adds: "re-check that the token is current (SQLite), build the answer", send: stage("recheck") },
    { name: "audit", adds: "audit trail (coalesced)", send: stage("audit") },
    { name: "metrics", adds: "metrics data point", send: stage("metrics") },
    { name: "token()", adds: "UserActor.token itself instead of the ladder's copy", send: stage("token") },
  ];
  const actorUnits: Variant[] = [
    { name: "1 SQLite read", adds: "one indexed SELECT * of the connection row (beyond `context`)", send: stage("sqlite_read") },
    { name: "1 AES-GCM open", adds: "one uncached decryption of the access token and its row read (beyond `context`)", send: stage("aes_open") },
  ];

  const measure = async (variants: Variant[]) => {
    const totals = new Map<string, Totals>(variants.map((v) => [v.name, { requests: 0, seconds: 0, workerdNs: 0, nodeUs: 0, rps: [] }]));
    const perRound = options.seconds / options.rounds;
    for (const v of variants) await load(v.send, Math.min(0.5, perRound), options.concurrency); // JIT, caches
    for (let r = 0; r < options.rounds; r++) {
      // Alternate the direction so a drift of the machine's speed lands on neither end.
      for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
        const w0 = cpuNs(options.workerd);
        const n0 = process.cpuUsage();
        const phase = await load(v.send, perRound, options.concurrency);
        const n1 = process.cpuUsage(n0);
        if (phase.errors > 0) throw new Error(`profile variant ${v.name} answered ${phase.errors} errors`);
        const t = totals.get(v.name)!;
        t.requests += phase.requests;
        t.seconds += phase.seconds;
        t.workerdNs += cpuNs(options.workerd) - w0;
        t.nodeUs += n1.user + n1.system;
        t.rps.push(phase.requests / phase.seconds);
      }
    }
    return totals;
  };
  const us = (t: Totals) => t.workerdNs / 1000 / t.requests;

  const ladder = async (title: string, variants: Variant[], units: Variant[] = [], skipFirst = false) => {
    const totals = await measure([...variants, ...units]);
    const none = totals.get(variants[0]!.name)!;
    const each = (t: Totals) => (us(t) - us(none)) / repeat;
    console.log("");
    console.log(`${title} (each rung run ${repeat} times per request; µs of workerd CPU per run)`);
    console.log("rung          cumulative µs  stage µs  stage");
    let previous: Totals | null = null;
    for (const v of variants.slice(1)) {
      const t = totals.get(v.name)!;
      console.log(`${v.name.padEnd(14)}${each(t).toFixed(1).padStart(13)}  ${(previous ? (each(t) - each(previous)).toFixed(1) : each(t).toFixed(1)).padStart(8)}  ${v.adds}`);
      previous = t;
    }
    const context = totals.get("context");
    for (const v of units) console.log(`${v.name.padEnd(14)}${"".padStart(13)}  ${(each(totals.get(v.name)!) - each(context!)).toFixed(1).padStart(8)}  ${v.adds}`);
    // The Worker's first rung (a body read, an answer) is what the bare route does as well.
    return each(previous!) - (skipFirst ? each(totals.get(variants[1]!.name)!) : 0);
  };

  console.log(`hot /token profile: workerd's CPU per request from /proc, ${options.rounds} rounds of ${(options.seconds / options.rounds).toFixed(2)} s per variant, ${options.concurrency} concurrent clients`);
  console.log("");
  if (options.only === "worker") {
    await ladder("the Worker's own work on a hot /token request", workerLadder);
    return;
  }
  const perRequest = await measure(requests);
  const bare = perRequest.get("bare")!;
  console.log("request      req/s  workerd µs/req  load generator µs/req  req/s vs bare (median, IQR)");
  for (const v of requests) {
    const t = perRequest.get(v.name)!;
    const ratios = t.rps.map((x, i) => x / bare.rps[i]!);
    const [q1, q3] = quartiles(ratios);
    console.log(
      `${v.name.padEnd(11)}${median(t.rps).toFixed(0).padStart(7)}  ${us(t).toFixed(0).padStart(14)}  ${(t.nodeUs / t.requests).toFixed(0).padStart(21)}  ` +
        `${v === requests[0] ? "" : `${median(ratios).toFixed(3)} (${q1.toFixed(2)}-${q3.toFixed(2)})`.padStart(27)}   ${v.adds}`,
    );
  }
  const hot = perRequest.get("hot path")!;
  const rpc = perRequest.get("actor rpc")!;
  const shapes = perRequest.get("bare+grant")!;

  console.log("");
  console.log(`the token call's shapes (input and grant over the RPC and HTTP) on the bare call: ${(us(shapes) - us(bare)).toFixed(0)} µs of workerd CPU per request, ${(shapes.nodeUs / shapes.requests - bare.nodeUs / bare.requests).toFixed(0)} µs of the load generator's`);
  if (options.only === "requests") return;
  const workerOwn = await ladder("the Worker's own work on a hot /token request", workerLadder, [], true);
  const actorOwn = await ladder("the actor's own work on a hot /token request", actorLadder, actorUnits);
  console.log("");
  console.log(
    `hot path over bare: +${(us(hot) - us(bare)).toFixed(0)} µs of workerd CPU per request (${us(bare).toFixed(0)} -> ${us(hot).toFixed(0)}): ` +
      `the user's actor instead of a no-op object ${(us(rpc) - us(bare)).toFixed(0)}, the Worker's own work beyond the bare route's ${workerOwn.toFixed(0)}, the actor's own work ${actorOwn.toFixed(0)}, ` +
      `the rest (the token call's larger input and answer over the RPC, noise) ${(us(hot) - us(rpc) - workerOwn - actorOwn).toFixed(0)}`,
  );
}

/**
 * Where a proxied git request's time goes: sequential requests (one at a time, so each
 * figure is a latency, not a share of the machine), interleaved, median of `samples` each.
 * A push is two requests (the ref advertisement, then the pack); a clone two or more.
 */
export async function proxyProfile(options: {
  call: Call;
  base: URL;
  userId: string;
  repository: string;
  capability: string;
  token: string;
  directUrl: URL;
  proxyUrl: URL;
  samples: number;
}): Promise<void> {
  const basic = (user: string, password: string) => ({ authorization: `Basic ${Buffer.from(`${user}:${password}`).toString("base64")}` });
  const ownerName = options.repository.replace("/", "~");
  const infoRefs = (remote: URL) => `${remote.origin}${remote.pathname}/info/refs?service=git-receive-pack`;
  const variants: Variant[] = [
    { name: "bare RPC", adds: "one bare Durable Object round trip, for scale", send: () => options.call(`/bench/bare/${options.userId}`, { repository: options.repository }) },
    { name: "redeem", adds: "the capability verified in the Worker and redeemed by the user's actor (no forwarding)", send: () => fetch(new URL(`/bench/proxy/redeem/${ownerName}`, options.base), { headers: basic("x-capability", options.capability) }) },
    { name: "record", adds: "the push's audit record: one more call to the actor (concurrent with the forwarding)", send: () => fetch(new URL(`/bench/proxy/record/${ownerName}`, options.base), { headers: { "x-bench-user": options.userId } }) },
    { name: "direct", adds: "GET info/refs?service=git-receive-pack straight to the emulator", send: () => fetch(infoRefs(options.directUrl), { headers: basic("x-access-token", options.token) }) },
    { name: "forward", adds: "the same GET from workerd to the emulator with a token, no redemption", send: () => fetch(new URL(`/bench/proxy/forward/${ownerName}`, options.base), { headers: { "x-bench-token": options.token } }) },
    { name: "proxied", adds: "the same GET through the git proxy: capability, redemption, forwarding", send: () => fetch(infoRefs(options.proxyUrl), { headers: basic("x-capability", options.capability) }) },
  ];
  const times = new Map<string, number[]>(variants.map((v) => [v.name, []]));
  for (let i = 0; i < options.samples + 5; i++) {
    for (const v of i % 2 ? variants : [...variants].reverse()) {
      const t0 = performance.now();
      const res = await v.send();
      await res.arrayBuffer();
      if (res.status !== 200) throw new Error(`proxy profile: ${v.name} answered ${res.status}`);
      if (i >= 5) times.get(v.name)!.push(performance.now() - t0); // the first rounds warm up
    }
  }
  console.log("");
  console.log(`a proxied git request, one at a time (median of ${options.samples}, ms)`);
  for (const v of variants) {
    const ms = times.get(v.name)!;
    const [q1, q3] = quartiles(ms);
    console.log(`${v.name.padEnd(10)}${median(ms).toFixed(2).padStart(8)}  (IQR ${q1.toFixed(2)}-${q3.toFixed(2)})  ${v.adds}`);
  }
  const m = (name: string) => median(times.get(name)!);
  console.log(
    `proxied - direct = ${(m("proxied") - m("direct")).toFixed(2)} ms per request: the redemption ${m("redeem").toFixed(2)} ms minus the bench route's own cost (bare ${m("bare RPC").toFixed(2)} ms is one round trip), ` +
      `and the path to the git host through workerd (forward - direct = ${(m("forward") - m("direct")).toFixed(2)} ms)`,
  );
}
