/**
 * A local HTTPS front for tests and `npm start`, in Node: `gh` insists on HTTPS for any host
 * but github.com, so the real `gh` (and `git`) reach a plain-HTTP origin (the broker, or the
 * GitHub emulator directly) through this front, trusting its self-signed certificate with
 * `SSL_CERT_FILE` (`gh`, Go) and `GIT_SSL_CAINFO` (`git`).
 *
 * Also: {@link runGh}, the real `gh` with a clean environment, as a sandbox would run it.
 */
import { spawn, spawnSync } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { request as httpRequest, type IncomingHttpHeaders } from "node:http";
import { createServer, type Server } from "node:https";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { generate } from "selfsigned";

/** A certificate and its key, PEM. */
export interface Certificate {
  cert: string;
  key: string;
}

/**
 * A self-signed certificate for `localhost` and `127.0.0.1` (both as names the client may
 * dial), valid a year. It is its own trust anchor: give its PEM to the client as the CA file.
 */
export async function localCertificate(): Promise<Certificate> {
  const pems = await generate([{ name: "commonName", value: "localhost" }], {
    keySize: 2048,
    algorithm: "sha256",
    notAfterDate: new Date(Date.now() + 365 * 86_400_000),
    extensions: [
      // A trust anchor for OpenSSL (git) and Go (gh) alike: a CA that is also the server's leaf.
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, keyCertSign: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: [{ type: 2, value: "localhost" }, { type: 7, ip: "127.0.0.1" }] },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** Maps an incoming path (with its query) to the path asked of the origin. */
export type PathRewrite = (path: string) => string;

/**
 * GitHub Enterprise Server's URL shapes onto the emulator's: `/api/v3/x` → `/x`,
 * `/api/graphql` → `/graphql`; everything else (git's `/{owner}/{repo}.git/...`) unchanged.
 * For pointing `gh` straight at the emulator; the broker maps these itself.
 */
export const ghesToGitHub: PathRewrite = (path) => {
  if (path === "/api/graphql" || path.startsWith("/api/graphql?")) return `/graphql${path.slice("/api/graphql".length)}`;
  if (path.startsWith("/api/v3/")) return path.slice("/api/v3".length);
  if (path === "/api/v3" || path.startsWith("/api/v3?")) return `/${path.slice("/api/v3".length)}`;
  return path;
};

export interface TlsFront {
  /** `https://localhost:<port>`. */
  url: string;
  /** `localhost:<port>`: what `GH_HOST` is set to. */
  host: string;
  port: number;
  /** The certificate's PEM (also written to {@link certFile}). */
  cert: string;
  /** A file holding the certificate: `SSL_CERT_FILE` for `gh`, `GIT_SSL_CAINFO` for `git`. */
  certFile: string;
  close(): Promise<void>;
}

/**
 * An HTTPS server on loopback forwarding every request to `origin` (an `http://` origin),
 * streaming both ways, the `Host` header preserved (so an origin that dispatches on `Host`
 * sees the front's host), with `X-Forwarded-Proto: https`. `rewrite` maps paths, e.g.
 * {@link ghesToGitHub}; a prefix it strips is sent as `X-Forwarded-Prefix` (the GitHub
 * emulator builds the API URLs in its answers, such as a run's `jobs_url`, from these).
 */
export async function startTlsFront(origin: string, options: { port?: number; rewrite?: PathRewrite; certificate?: Certificate; certFile?: string } = {}): Promise<TlsFront> {
  const target = new URL(origin);
  if (target.protocol !== "http:") throw new Error("the TLS front forwards to an http:// origin");
  const certificate = options.certificate ?? (await localCertificate());
  const rewrite = options.rewrite ?? ((p: string) => p);
  const server: Server = createServer({ cert: certificate.cert, key: certificate.key }, (req, res) => {
    const path = rewrite(req.url ?? "/");
    const headers: IncomingHttpHeaders = { ...req.headers, "x-forwarded-proto": "https" };
    // A prefix the rewrite took off (`/api/v3`): the origin puts it back into the URLs it answers.
    const original = (req.url ?? "/").split("?")[0]!;
    const rewritten = path.split("?")[0]!;
    if (rewritten !== original && original.endsWith(rewritten)) headers["x-forwarded-prefix"] = original.slice(0, -rewritten.length);
    const upstream = httpRequest(
      { host: target.hostname, port: target.port || 80, method: req.method, path, headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.statusMessage, answer.rawHeaders);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => {
      if (!res.headersSent) res.writeHead(502, { "content-type": "text/plain" });
      res.end("the TLS front could not reach its origin\n");
    });
    req.pipe(upstream);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const address = server.address();
  const port = typeof address === "object" && address ? address.port : 0;
  // A file the caller keeps (npm start's state directory), else one that goes with the front.
  const dir = options.certFile ? null : mkdtempSync(join(tmpdir(), "tls-front-"));
  const certFile = options.certFile ?? join(dir!, "cert.pem");
  writeFileSync(certFile, certificate.cert);
  return {
    url: `https://localhost:${port}`,
    host: `localhost:${port}`,
    port,
    cert: certificate.cert,
    certFile,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => {
          if (dir) rmSync(dir, { recursive: true, force: true });
          resolve();
        });
      }),
  };
}

/** Where and as whom {@link runGh} runs `gh`. */
export interface GhTarget {
  /** `GH_HOST`: the front's `localhost:<port>`. */
  host: string;
  /** `GH_ENTERPRISE_TOKEN`: a capability, or (straight at the emulator) a GitHub token. */
  token: string;
  /** `SSL_CERT_FILE`: the front's certificate. */
  certFile: string;
}

export interface GhResult {
  code: number;
  stdout: string;
  stderr: string;
}

/**
 * Runs the real `gh` with a clean environment: only `PATH`, `HOME` and a fresh
 * `GH_CONFIG_DIR`, `GH_HOST`, `GH_ENTERPRISE_TOKEN`, `SSL_CERT_FILE` (and `GIT_SSL_CAINFO`,
 * for the `git` that `gh` runs), no prompts, no colour, no update check, no pager. `env`
 * adds to it (e.g. `GIT_AUTHOR_NAME`). Never throws on a non-zero exit: the result says.
 */
export async function runGh(target: GhTarget, args: string[], options: { cwd?: string; env?: Record<string, string>; input?: string; timeoutMs?: number } = {}): Promise<GhResult> {
  const configDir = mkdtempSync(join(tmpdir(), "gh-config-"));
  try {
    return await new Promise<GhResult>((resolve, reject) => {
      const child = spawn("gh", args, {
        cwd: options.cwd,
        env: {
          PATH: process.env.PATH ?? "/usr/bin:/bin",
          HOME: configDir,
          GH_CONFIG_DIR: configDir,
          GH_HOST: target.host,
          GH_ENTERPRISE_TOKEN: target.token,
          SSL_CERT_FILE: target.certFile,
          GIT_SSL_CAINFO: target.certFile,
          GIT_TERMINAL_PROMPT: "0",
          GH_PROMPT_DISABLED: "1",
          GH_NO_UPDATE_NOTIFIER: "1",
          GH_PAGER: "cat",
          PAGER: "cat",
          NO_COLOR: "1",
          ...options.env,
        },
        stdio: ["pipe", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      const timer = setTimeout(() => child.kill("SIGKILL"), options.timeoutMs ?? 60_000);
      child.stdout.on("data", (d) => (stdout += d));
      child.stderr.on("data", (d) => (stderr += d));
      child.on("error", (err) => {
        clearTimeout(timer);
        reject(err);
      });
      child.on("close", (code) => {
        clearTimeout(timer);
        resolve({ code: code ?? -1, stdout, stderr });
      });
      child.stdin.end(options.input ?? "");
    });
  } finally {
    rmSync(configDir, { recursive: true, force: true });
  }
}

/**
 * The certificate kept in `dir` (`cert.pem`, `key.pem`), made on first use: `npm start`'s front
 * keeps its certificate across restarts, so a terminal that trusts it keeps working.
 */
export async function persistedCertificate(dir: string): Promise<Certificate> {
  const certPath = join(dir, "cert.pem");
  const keyPath = join(dir, "key.pem");
  if (existsSync(certPath) && existsSync(keyPath)) return { cert: readFileSync(certPath, "utf8"), key: readFileSync(keyPath, "utf8") };
  const made = await localCertificate();
  mkdirSync(dir, { recursive: true });
  writeFileSync(keyPath, made.key, { mode: 0o600 });
  writeFileSync(certPath, made.cert);
  return made;
}

/**
 * Whether the real `gh` can be run here. Tests that drive it are skipped, with a line saying
 * so, on a machine without it, and fail under CI (`CI=true`), which installs it (.ci/run).
 */
export const GH_MISSING: string | null = (() => {
  const found = spawnSync("gh", ["--version"], { stdio: "ignore" });
  if (found.status === 0) return null;
  if (process.env.CI) return null; // CI installs gh: its absence there is a failure, not a skip.
  console.log("gh is not installed: the tests that drive the real gh are skipped (apt-get install gh, or run .ci/run)");
  return "gh is not installed";
})();
