/**
 * Session capabilities: what an agent session holds instead of the user's token.
 *
 * A capability is `gcap1.<base64url(userId)>.<base64url(32 random bytes)>`. It is an
 * *opaque id stored by the user's actor* (as a SHA-256 of the random part, with the session,
 * App, repository, permission and expiry), not a sealed self-contained claim set. Why:
 *
 * - every git or REST request through the proxy asks the user's actor for a live token
 *   anyway, so looking the capability up there costs nothing extra;
 * - revocation is exact and immediate: deleting the rows kills them (early revocation,
 *   disconnect, GitHub revocation, account deletion), with no deny-list or key rotation;
 * - nothing to decrypt in the Worker, and a stolen database row (a hash) is worthless.
 *
 * The user id in clear only routes the request to the right actor; changing it, or any byte
 * of the secret, makes an unknown capability (`invalid_capability`).
 */
import { base64urlDecode, base64urlEncode, randomString, sha256 } from "./crypto";

const PREFIX = "gcap1";

export interface ParsedCapability {
  userId: string;
  /** Hex SHA-256 of the secret part: what the actor stores and looks up. */
  secretHash: string;
}

/** Mints a capability for `userId`; returns it and the hash the actor stores. */
export async function mintCapability(userId: string): Promise<{ capability: string; secretHash: string }> {
  const secret = randomString(32);
  const capability = `${PREFIX}.${base64urlEncode(new TextEncoder().encode(userId))}.${secret}`;
  return { capability, secretHash: await hashSecret(secret) };
}

/** Parses a capability string; `null` for anything malformed. */
export async function parseCapability(value: string): Promise<ParsedCapability | null> {
  const parts = value.split(".");
  if (parts.length !== 3 || parts[0] !== PREFIX || !/^[A-Za-z0-9_-]{43}$/.test(parts[2]!)) return null;
  let userId: string;
  try {
    // Invalid UTF-8 decodes to U+FFFD, which the user id check below rejects.
    userId = new TextDecoder().decode(base64urlDecode(parts[1]!));
  } catch {
    return null;
  }
  if (!/^[A-Za-z0-9_.:@-]{1,128}$/.test(userId)) return null;
  return { userId, secretHash: await hashSecret(parts[2]!) };
}

async function hashSecret(secret: string): Promise<string> {
  return [...(await sha256(secret))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The capability from a request: the HTTP Basic password (what git sends for
 * `https://x:<capability>@host/...`), or a `Bearer`/`token` Authorization header (REST).
 */
export function capabilityFromRequest(request: Request): string | null {
  const header = request.headers.get("authorization") ?? "";
  const basic = /^Basic\s+([A-Za-z0-9+/=]+)$/i.exec(header);
  if (basic) {
    try {
      const decoded = atob(basic[1]!);
      const colon = decoded.indexOf(":");
      return colon >= 0 ? decoded.slice(colon + 1) : null;
    } catch {
      return null;
    }
  }
  return /^(?:Bearer|token)\s+(\S+)$/i.exec(header)?.[1] ?? null;
}

/** A git smart-HTTP request the proxy accepts. */
export interface GitRoute {
  /** `owner/name` as written in the path (GitHub compares case-insensitively). */
  repository: string;
  /** Path after `{owner}/{name}.git`, as sent upstream. */
  upstreamPath: "/info/refs" | "/git-upload-pack" | "/git-receive-pack";
  service: "git-upload-pack" | "git-receive-pack";
  /** A push: needs a `push` capability. */
  write: boolean;
}

const OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;
const NAME = /^[A-Za-z0-9._-]{1,100}$/;

function repositoryOf(owner: string, name: string): string | null {
  if (!OWNER.test(owner) || !NAME.test(name) || name === "." || name === ".." || name.endsWith(".git")) return null;
  return `${owner}/${name}`;
}

/**
 * Parses `/git/{owner}/{name}(.git)/info/refs?service=...`, `/git-upload-pack` or
 * `/git-receive-pack`. The raw path must be plain: no percent-encoding, no dot segments, no
 * doubled slashes, so what is checked is exactly what is forwarded.
 */
export function parseGitRoute(method: string, rawPath: string, search: string): GitRoute | null {
  if (rawPath.includes("%") || rawPath.includes("//") || /(^|\/)\.\.?(\/|$)/.test(rawPath)) return null;
  const m = /^\/git\/([^/]+)\/([^/]+?)(?:\.git)?\/(info\/refs|git-upload-pack|git-receive-pack)$/.exec(rawPath);
  if (!m) return null;
  const repository = repositoryOf(m[1]!, m[2]!);
  if (!repository) return null;
  const params = new URLSearchParams(search);
  if (m[3] === "info/refs") {
    const service = params.get("service");
    if (method !== "GET" || (service !== "git-upload-pack" && service !== "git-receive-pack") || [...params.keys()].length !== 1) return null;
    return { repository, upstreamPath: "/info/refs", service, write: service === "git-receive-pack" };
  }
  if (method !== "POST" || search !== "") return null;
  const service = m[3] as "git-upload-pack" | "git-receive-pack";
  return { repository, upstreamPath: `/${service}`, service, write: service === "git-receive-pack" };
}

/** A REST call the proxy forwards, under the bound repository only. */
export interface RestRoute {
  repository: string;
  /** Path below `/repos/{owner}/{name}`, e.g. `/pulls/12/comments` (or `` for the repository). */
  subPath: string;
  write: boolean;
}

/** The REST calls an agent needs around a push: read the repository, open and comment on PRs. */
const REST_ALLOWED: { pattern: RegExp; methods: string[] }[] = [
  { pattern: /^$/, methods: ["GET"] },
  { pattern: /^\/pulls$/, methods: ["GET", "POST"] },
  { pattern: /^\/pulls\/\d{1,10}$/, methods: ["GET", "PATCH"] },
  { pattern: /^\/pulls\/\d{1,10}\/(comments|reviews)$/, methods: ["GET", "POST"] },
  { pattern: /^\/issues\/\d{1,10}\/comments$/, methods: ["GET", "POST"] },
  { pattern: /^\/branches(\/[A-Za-z0-9._\/-]{1,200})?$/, methods: ["GET"] },
];

/** Parses `/api/repos/{owner}/{name}{subPath}` against the allow-list. */
export function parseRestRoute(method: string, rawPath: string): RestRoute | null {
  if (rawPath.includes("%") || rawPath.includes("//") || /(^|\/)\.\.?(\/|$)/.test(rawPath)) return null;
  const m = /^\/api\/repos\/([^/]+)\/([^/]+)(\/.*)?$/.exec(rawPath);
  if (!m) return null;
  const repository = repositoryOf(m[1]!, m[2]!);
  const subPath = m[3] ?? "";
  if (!repository) return null;
  const rule = REST_ALLOWED.find((r) => r.pattern.test(subPath));
  if (!rule || !rule.methods.includes(method)) return null;
  return { repository, subPath, write: method !== "GET" };
}
