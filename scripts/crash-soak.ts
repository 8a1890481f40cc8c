/**
 * The crash soak: the broker in real workerd with its Durable Object storage on disk, killed
 * with SIGKILL (its whole process group) at random moments, among them right after a provider
 * answered a refresh or a code exchange, then started again on the same storage while the
 * workload goes on. After every kill the storage is checked, as the kill left it, against the
 * providers' truth; at the end everything is (test/crash/truth.ts). Prints the figures and
 * exits non-zero on any violation.
 *
 *   npm run soak:crash                      # the long form (see docs/crash-soak.md)
 *   npm run soak:crash -- --short           # the bounded form CI runs (well under 3 minutes)
 *   npm run soak:crash -- --seconds 300 --users 24 --sessions 3
 */
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { BrokerClient } from "../test/crash/broker.ts";
import { Disk } from "../test/crash/disk.ts";
import { bundleWorker, Runtime } from "../test/crash/runtime.ts";
import { Truth } from "../test/crash/truth.ts";
import { Workload } from "../test/crash/workload.ts";
import { startWorld } from "../test/crash/world.ts";

const { values: args } = parseArgs({
  options: {
    short: { type: "boolean", default: false },
    seconds: { type: "string" },
    users: { type: "string" },
    sessions: { type: "string" },
    keep: { type: "boolean", default: false },
  },
});
const SECONDS = Number(args.seconds ?? (args.short ? 50 : 240));
const USERS = Number(args.users ?? (args.short ? 9 : 18));
const SESSIONS = Number(args.sessions ?? 2);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address ? address.port : 0));
    });
  });
}

const started = Date.now();
const dir = mkdtempSync(join(tmpdir(), "crash-soak-"));
const port = await freePort();
const brokerUrl = `http://127.0.0.1:${port}`;
const world = await startWorld(dir, brokerUrl);
// Short-lived pairs: every few seconds each session's token needs a refresh.
world.github.settings = { ...world.github.settings, accessTokenExpiresIn: 3, clientTimeoutMs: 5000 };
world.gitlab.settings = { ...world.gitlab.settings, accessTokenExpiresIn: 3, clientTimeoutMs: 5000 };
const runtime = new Runtime({ dir, port, bindings: world.bindings, script: await bundleWorker(dir) });
await runtime.start();
const broker = new BrokerClient(brokerUrl);
const disk = new Disk(runtime.persistDir, world.bindings.TOKEN_ENCRYPTION_KEYS!);
const truth = new Truth(world, disk);

// The workload waits while the runtime is down.
let upGate: Promise<void> = Promise.resolve();
let openGate: () => void = () => undefined;
const workload = new Workload(broker, world, USERS, () => upGate);
for (const u of workload.users) {
  u.objectId = ((await (await fetch(`${brokerUrl}/_crash/object-id?user=${u.userId}`)).json()) as { id: string }).id;
}
for (const u of workload.users) await workload.connect(u, u.current);

// Pulling the plug.
let armed: "refresh" | "exchange" | null = null;
let killedAt: number | null = null;
const killReasons: Record<string, number> = {};
async function pull(reason: string): Promise<void> {
  if (!runtime.running || killedAt !== null) return;
  killedAt = Date.now();
  upGate = new Promise((resolve) => (openGate = resolve));
  await runtime.kill();
  killReasons[reason] = (killReasons[reason] ?? 0) + 1;
}
world.onIssued = async (issued) => {
  truth.issued(issued.provider, issued.userId, issued.grant, killedAt);
  // The answer waits until the runtime is dead: it exists only at the provider.
  if (armed === issued.grant) {
    armed = null;
    await pull(`right after a ${issued.grant} answer`);
  }
};

let running = true;
const end = Date.now() + SECONDS * 1000;
const work = Promise.all([workload.chaos(() => running), ...workload.users.flatMap((u) => Array.from({ length: SESSIONS }, () => workload.session(u, () => running)))]);
while (Date.now() < end) {
  await sleep(1500 + Math.random() * 3000);
  const roll = Math.random();
  if (roll < 0.35) await pull("at a random moment");
  else {
    armed = roll < 0.8 ? "refresh" : "exchange";
    for (let waited = 0; killedAt === null && waited < 4000; waited += 50) await sleep(50);
    if (killedAt === null) await pull("at a random moment");
    armed = null;
  }
  await truth.afterKill(killedAt!, workload.users);
  await runtime.start();
  killedAt = null;
  openGate();
}
running = false;
await work;

// Calm: long-lived pairs; every connected user's next token settles the truth (a connected
// row refreshes on first use); then time for the alarms to deliver events and revoke grants.
world.github.settings = { ...world.github.settings, accessTokenExpiresIn: 28_800 };
world.gitlab.settings = { ...world.gitlab.settings, accessTokenExpiresIn: 7200 };
for (const u of workload.users) {
  const view = await broker.call("GET", `/v1/users/${u.userId}/connection?appType=${u.appType}`);
  if (view.body?.status === "connected") {
    const a = await broker.call("POST", `/v1/users/${u.userId}/token`, { appType: u.appType, repository: u.provider === "gitlab" ? "acme/platform/api" : "acme/app", minValiditySeconds: 3600 });
    if (a.status >= 500) workload.violations.push(`${u.userId}: first use after the soak answered ${a.status} ${JSON.stringify(a.body)}`);
  }
}
// A confirm cut by a kill after GitHub's answer leaves its grant recorded for revocation, due a
// minute later (CONFIRM_GRACE_MS in src/actor/connect-flow.ts, so a live confirm is never
// disturbed): the calm lasts until the last kill's records are due, and a little more.
const lastKill = Math.max(0, ...truth.kills.map((k) => k.at));
while (Date.now() < lastKill + 65_000) await sleep(1000);
for (let stable = 0, seen = -1, waited = 0; stable < 3 && waited < 30; waited++) {
  await sleep(1000);
  const now = world.receiver.deliveries.length;
  stable = now === seen ? stable + 1 : 0;
  seen = now;
}
await runtime.kill();
const events = await truth.final(workload.users);
await world.close();
if (!args.keep) rmSync(dir, { recursive: true, force: true });

const violations = [...workload.violations, ...truth.violations];
const kills = truth.kills.length;
const inFlight = truth.kills.reduce((a, k) => a + k.refreshesInFlight, 0);
const restarts = runtime.startTimes.slice(1);
const median = [...restarts].sort((a, b) => a - b)[Math.floor(restarts.length / 2)] ?? 0;
console.log(
  [
    `crash soak: ${USERS} users (GitHub and GitLab) x ${SESSIONS} sessions for ${SECONDS}s, ${Math.round((Date.now() - started) / 1000)}s in all`,
    `kills: ${kills} (${JSON.stringify(killReasons)}), restarts: ${restarts.length - 1} (median ${median} ms, max ${Math.max(0, ...restarts)} ms)`,
    `operations: ${workload.operations} answered or cut, git runs ${workload.gitRuns}; GitHub refreshes ${world.github.counts.refresh}, GitLab refreshes ${world.gitlab.counts.refresh}`,
    `lost rotations: ${truth.totalLost} (answered at most ${Math.max(0, ...truth.lossAges)} ms before their kill), refreshes in flight at the kills: ${inFlight}`,
    `events delivered/expected: ${events.delivered}/${events.expected}`,
    `answers: ${JSON.stringify(workload.answers)}`,
    `violations: ${violations.length}`,
    ...violations.slice(0, 40).map((v) => `  - ${v}`),
  ].join("\n"),
);
process.exit(violations.length > 0 ? 1 : 0);
