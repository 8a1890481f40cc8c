/**
 * The broker's runtime, as a process of its own that the crash soak kills with SIGKILL (its
 * whole process group, workerd included): Miniflare running the bundled Worker in `workerd`,
 * Durable Object storage (SQLite) persisted under the given directory. Started again on the
 * same directory, it finds every object as the kill left it.
 *
 *   node test/crash/runtime-child.ts <options JSON>
 *
 * Prints `ready <url>` on stdout once it serves requests.
 */
import { readFileSync } from "node:fs";
import { convertV4MiniflareOptions, Miniflare } from "miniflare";

interface ChildOptions {
  /** The bundled Worker (an ES module file). */
  script: string;
  port: number;
  persist: string;
  bindings: Record<string, string>;
}

const options = JSON.parse(process.argv[2] ?? "{}") as ChildOptions;
const mf = new Miniflare(
  convertV4MiniflareOptions({
    modules: [{ type: "ESModule", path: "crash-worker.js", contents: readFileSync(options.script, "utf8") }],
    compatibilityDate: "2026-11-01",
    host: "127.0.0.1",
    port: options.port,
    resourcePersistencePath: options.persist,
    durableObjects: {
      USER_ACTOR: { className: "UserActor", useSQLite: true },
      IDENTITY_INDEX: { className: "IdentityIndex", useSQLite: true },
      INSTALLATION_ACTOR: { className: "InstallationActor", useSQLite: true },
    },
    bindings: options.bindings,
    // Structured logs would go to Cloudflare's pipeline; the soak does not need them.
    handleStructuredLogs: () => undefined,
  }),
);
const url = await mf.ready;
process.stdout.write(`ready ${url.href}\n`);
