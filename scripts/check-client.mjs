#!/usr/bin/env node
/**
 * Checks the published client as a caller gets it: packs this package (npm runs `prepare`,
 * which builds dist/), installs the tarball offline into a tiny consumer project in a temp
 * directory, and checks that
 *   - the tarball holds only package.json, the README and dist/, and declares no dependencies;
 *   - the consumer's node_modules holds this package alone (no Node toolchain, router, octokit,
 *     JWT library or wrangler) and its `npm run` finds the same `node` as before;
 *   - the built JS loads in Node by its package name;
 *   - the declarations type-check (`tsc --noEmit`, this checkout's TypeScript) under
 *     `moduleResolution` `nodenext` and `bundler`, each with and without `skipLibCheck`, with
 *     lib ES2022 alone (no DOM, no Workers or Node types), and once with the DOM lib (the
 *     binding's `fetch` then answers the DOM's `Response`).
 * Prints one line per check; exits 1 when any fails. Run by `npm test` (`npm run check:client`).
 */
import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const tsc = join(root, "node_modules", "typescript", "bin", "tsc");
const npm = process.platform === "win32" ? "npm.cmd" : "npm";
const work = mkdtempSync(join(tmpdir(), "check-client-"));
let failed = 0;

/** Runs a command; its output, or the error with the output attached. */
function run(cmd, args, cwd, env = process.env) {
  return execFileSync(cmd, args, { cwd, env, encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
}

/** Prints `ok` or `FAIL` for one check; a throw is a failure with its output. */
function check(name, fn) {
  try {
    const problem = fn();
    if (problem) throw new Error(problem);
    console.log(`ok   ${name}`);
  } catch (error) {
    failed++;
    console.log(`FAIL ${name}\n${[error.stdout, error.stderr, error.stdout || error.stderr ? "" : error.message].filter(Boolean).join("\n").trim()}`);
  }
}

// Each mode a caller may use: the compiler options that differ.
const MODES = {
  "nodenext": { module: "nodenext", moduleResolution: "nodenext", lib: ["es2022"] },
  "bundler": { module: "es2022", moduleResolution: "bundler", lib: ["es2022"] },
  "nodenext, DOM lib": { module: "nodenext", moduleResolution: "nodenext", lib: ["es2022", "dom"], skipLibCheck: false, dom: true },
};

// A caller's code: every kind of export, both entry points, the binding's `fetch`.
const CONSUMER = `
import { BrokerClient, brokerBinding, capabilityRemote, connectionAction, InstallationTokenClient, isCallerBug, readConnectReturn, shouldFallBack, UserTokenClient, verifyBrokerEvent } from "github-token-broker/client";
import type { BrokerService, ClientResult, ConnectionEvent, Reason, TokenGrant } from "github-token-broker/client";
import { REASON_STATUS, statusOf, type AuditEntry } from "github-token-broker/contract";

declare const binding: { fetch: unknown };
const broker: BrokerService = brokerBinding(binding);

export async function pushCredential(userId: string): Promise<string> {
  const tokens = new UserTokenClient({ broker, userId, appType: "standard" });
  const result: ClientResult<TokenGrant> = await tokens.getToken("octo-org/hello-world");
  if (result.ok) return \`\${result.token} \${result.committer.email}\`;
  if (isCallerBug(result)) throw new Error(result.message);
  const app = await new InstallationTokenClient({ broker, appType: "standard" }).getToken("octo-org/hello-world");
  return shouldFallBack(result) && app.ok ? app.token : result.reason;
}

export async function webApp(userId: string, returnedTo: string): Promise<number> {
  const client = new BrokerClient(broker);
  const back = readConnectReturn(returnedTo);
  const done = await client.finishConnect(userId, { href: returnedTo });
  const view = await client.getConnection(userId, "standard");
  if (view.ok && connectionAction(view) === "connect") await client.startConnect(userId, { appType: "standard", returnTo: returnedTo });
  const grant = await client.issueCapability(userId, { appType: "standard", repository: "octo-org/hello-world", sessionId: "s1", ttlSeconds: 600 });
  if (grant.ok) capabilityRemote(grant);
  const res = await broker.fetch("https://broker/v1/users/u1/connection?appType=standard");
  const reason: Reason = "not_connected";
  const entry: AuditEntry | undefined = undefined;
  const event: ConnectionEvent | undefined = undefined;
  void [back, done, entry, event, await verifyBrokerEvent("{}", null, "key")];
  return res.status + statusOf(reason) + REASON_STATUS.invalid_request;
}
`;
// Under the DOM lib the binding's fetch is the DOM's own: its Response has \`headers\`.
const DOM_ONLY = `
import { brokerBinding } from "github-token-broker/client";
declare const binding: { fetch: unknown };
export const etag = async (): Promise<string | null> => (await brokerBinding(binding).fetch(new Request("https://broker/v1/metrics"))).headers.get("etag");
`;

try {
  let tarball = "";
  check("npm pack builds the package", () => {
    const [packed] = JSON.parse(run(npm, ["pack", "--json", "--pack-destination", work], root));
    tarball = join(work, packed.filename);
    const extra = packed.files.map((f) => f.path).filter((p) => !/^(package\.json|README\.md|LICENSE|dist\/(client|contract|egress)\.(js|d\.ts))$/.test(p));
    if (extra.length) return `unexpected files in the tarball: ${extra.join(", ")}`;
  });
  if (!tarball) throw new Error("no tarball");
  const packedManifest = JSON.parse(run("tar", ["-xzOf", tarball, "package/package.json"], work));
  check("the packed package.json declares no dependency and no install script", () => {
    const kinds = ["dependencies", "optionalDependencies", "peerDependencies", "bundleDependencies", "bin"].filter((k) => packedManifest[k] && Object.keys(packedManifest[k]).length);
    const scripts = ["preinstall", "install", "postinstall"].filter((s) => packedManifest.scripts?.[s]);
    if (kinds.length || scripts.length) return `declares ${[...kinds, ...scripts].join(", ")}`;
  });

  const consumer = join(work, "consumer");
  mkdirSync(join(consumer, "src"), { recursive: true });
  writeFileSync(join(consumer, "package.json"), JSON.stringify({ name: "consumer", private: true, type: "module", scripts: { "which-node": "node -p process.execPath" } }));
  check("the tarball installs offline", () => void run(npm, ["install", "--offline", "--no-audit", "--no-fund", tarball], consumer));
  check("the consumer's node_modules holds the client alone", () => {
    const installed = readdirSync(join(consumer, "node_modules")).filter((n) => n !== ".package-lock.json");
    if (installed.join() !== "github-token-broker") return `node_modules holds ${installed.join(", ")}`;
  });
  check("the consumer's npm scripts keep its own node", () => {
    // The PATH without this checkout's node_modules/.bin, as the consumer's own shell has it.
    const PATH = (process.env.PATH ?? "").split(":").filter((d) => !d.includes("node_modules")).join(":");
    const env = { ...process.env, PATH };
    const before = run("sh", ["-c", "command -v node"], consumer, env).trim();
    const inScript = run(npm, ["run", "--silent", "which-node"], consumer, env).trim();
    const real = run(before, ["-p", "process.execPath"], consumer, env).trim();
    if (inScript !== real) return `npm run uses ${inScript}, the shell ${real}`;
  });
  check("the built client loads in Node by its package name", () => {
    const out = run(process.execPath, ["--input-type=module", "-e", `
      const c = await import("github-token-broker/client");
      const k = await import("github-token-broker/contract");
      const r = c.readConnectReturn("https://app.example/return?github_connect=confirm&connect_ticket=t1");
      console.log(r.kind, c.shouldFallBack({ ok: false, reason: "revoked", message: "" }), k.statusOf("revoked"));`], consumer).trim();
    if (out !== "confirm true 409") return `unexpected output: ${out}`;
  });

  writeFileSync(join(consumer, "src", "index.ts"), CONSUMER);
  writeFileSync(join(consumer, "src", "dom.ts"), DOM_ONLY);
  for (const [mode, { dom, ...options }] of Object.entries(MODES)) {
    for (const skipLibCheck of options.skipLibCheck === undefined ? [false, true] : [options.skipLibCheck]) {
      const name = `tsconfig.${mode.replace(/\W+/g, "-")}-${skipLibCheck ? "skip" : "check"}.json`;
      const files = dom ? ["src/index.ts", "src/dom.ts"] : ["src/index.ts"];
      const compilerOptions = { target: "es2022", strict: true, noEmit: true, types: [], ...options, skipLibCheck };
      writeFileSync(join(consumer, name), JSON.stringify({ compilerOptions, files }, null, 2));
      check(`tsc: ${mode}, skipLibCheck ${skipLibCheck}, lib ${options.lib.join(" + ")}`, () => void run(process.execPath, [tsc, "-p", name], consumer));
    }
  }
} catch (error) {
  failed++;
  console.log(`FAIL ${error.message}`);
} finally {
  rmSync(work, { recursive: true, force: true });
}
console.log(failed ? `check-client: ${failed} failed` : "check-client: the client installs alone and type-checks in every mode");
process.exit(failed ? 1 : 0);
