/**
 * A test-only HTTPS-intercepting proxy, in Node: what Cloudflare Containers' `interceptHttps`
 * does for a sandbox, so the real `git` and `gh` can be pointed at github.com and
 * api.github.com (`HTTPS_PROXY`) and every request they make decrypted and handed to an
 * outbound handler (the broker's `github-token-broker/egress`).
 *
 * A CA is generated per proxy (`caFile`: `GIT_SSL_CAINFO` for git, `SSL_CERT_FILE` for gh), and
 * one leaf for the intercepted hosts. `CONNECT` to any other host, and plain-HTTP proxying, are
 * refused: the sandbox is deny-by-default, as with `enableInternet = false`.
 */
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Readable } from "node:stream";
import { createSecureContext, TLSSocket } from "node:tls";
import { generate } from "selfsigned";

export interface InterceptingProxy {
  /** `http://127.0.0.1:<port>`: `HTTPS_PROXY`. */
  url: string;
  /** The generated CA's certificate, PEM, in a file. */
  caFile: string;
  /** `host path` of every request handed to the handler, in order. */
  seen: string[];
  /** `host:port` of every CONNECT refused. */
  refused: string[];
  close(): Promise<void>;
}

/** Generates a CA and a leaf for `hosts`, signed by it. */
async function certificates(hosts: string[]): Promise<{ ca: string; key: string; cert: string }> {
  const ca = await generate([{ name: "commonName", value: "egress test CA" }], {
    keySize: 2048,
    algorithm: "sha256",
    notAfterDate: new Date(Date.now() + 86_400_000),
    extensions: [
      { name: "basicConstraints", cA: true, critical: true },
      { name: "keyUsage", keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  const leaf = await generate([{ name: "commonName", value: hosts[0]! }], {
    keySize: 2048,
    algorithm: "sha256",
    notAfterDate: new Date(Date.now() + 86_400_000),
    ca: { key: ca.private, cert: ca.cert },
    extensions: [
      { name: "basicConstraints", cA: false },
      { name: "keyUsage", digitalSignature: true, keyEncipherment: true, critical: true },
      { name: "extKeyUsage", serverAuth: true },
      { name: "subjectAltName", altNames: hosts.map((value) => ({ type: 2, value })) },
    ],
  });
  return { ca: ca.cert, key: leaf.private, cert: leaf.cert };
}

/** Starts the proxy on loopback; each decrypted request to one of `hosts` goes to `handle`. */
export async function startInterceptingProxy(hosts: string[], handle: (request: Request) => Promise<Response>): Promise<InterceptingProxy> {
  const pems = await certificates(hosts);
  const dir = mkdtempSync(join(tmpdir(), "egress-ca-"));
  const caFile = join(dir, "ca.pem");
  writeFileSync(caFile, pems.ca);
  const secureContext = createSecureContext({ key: pems.key, cert: pems.cert });
  const seen: string[] = [];
  const refused: string[] = [];
  const hostOf = new WeakMap<Socket, string>();

  // The decrypted side: an HTTP server fed the TLS sockets of intercepted tunnels.
  const inner = createServer((req, res) => {
    const host = hostOf.get(req.socket) ?? "unknown";
    seen.push(`${host} ${req.method} ${req.url}`);
    void serve(host, req, res, handle);
  });
  const outer = createServer((_req, res) => {
    res.writeHead(403, { "content-type": "text/plain" }).end("plain-HTTP proxying is not allowed from the sandbox\n");
  });
  outer.on("connect", (req: IncomingMessage, socket: Socket, head: Buffer) => {
    const [host, port] = (req.url ?? "").split(":");
    if (!host || port !== "443" || !hosts.includes(host)) {
      refused.push(req.url ?? "");
      socket.end("HTTP/1.1 403 Forbidden\r\n\r\n");
      return;
    }
    socket.write("HTTP/1.1 200 Connection Established\r\n\r\n", () => {
      if (head.length > 0) socket.unshift(head);
      const tls = new TLSSocket(socket, { isServer: true, secureContext });
      hostOf.set(tls, host);
      tls.on("error", () => socket.destroy());
      inner.emit("connection", tls);
    });
  });
  await new Promise<void>((resolve) => outer.listen(0, "127.0.0.1", resolve));
  const address = outer.address();
  const port = typeof address === "object" && address ? address.port : 0;
  return {
    url: `http://127.0.0.1:${port}`,
    caFile,
    seen,
    refused,
    close: async () => {
      outer.closeAllConnections();
      inner.closeAllConnections();
      await new Promise<void>((resolve) => outer.close(() => resolve()));
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

async function serve(host: string, req: IncomingMessage, res: ServerResponse, handle: (request: Request) => Promise<Response>): Promise<void> {
  try {
    const headers = new Headers();
    for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i]!, req.rawHeaders[i + 1]!);
    const hasBody = req.method !== "GET" && req.method !== "HEAD";
    const request = new Request(`https://${host}${req.url}`, {
      method: req.method,
      headers,
      body: hasBody ? (Readable.toWeb(req) as ReadableStream<Uint8Array>) : undefined,
      redirect: "manual",
      ...(hasBody ? { duplex: "half" } : {}),
    } as RequestInit);
    const response = await handle(request);
    const out: Record<string, string> = {};
    response.headers.forEach((value, name) => {
      if (name !== "content-length" && name !== "transfer-encoding") out[name] = value;
    });
    res.writeHead(response.status, out);
    if (response.body) Readable.fromWeb(response.body as never).pipe(res);
    else res.end();
  } catch (err) {
    res.writeHead(502, { "content-type": "text/plain" }).end(`intercepting proxy: ${(err as Error).message}\n`);
  }
}
