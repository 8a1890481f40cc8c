/**
 * Validation of everything that comes from outside: user ids, App types, repositories and
 * request bodies. Each parser returns the clean value or a {@link Failure} with reason
 * `invalid_request` and a message that names the field, never echoing a secret.
 */
import type { BrokerConfig, AppConfig } from "./config";
import { failure, type Failure, type Permission } from "./contract";

/** The platform's user id: 1-128 chars of `[A-Za-z0-9_.:@-]`. */
const USER_ID = /^[A-Za-z0-9_.:@-]{1,128}$/;

/** GitHub logins and organisation names: alphanumerics and single inner hyphens, 1-39. */
const OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;

/** GitHub repository names: 1-100 of `[A-Za-z0-9._-]`, but not `.` or `..`. */
const REPO = /^[A-Za-z0-9._-]{1,100}$/;

/** Largest accepted request body. */
export const MAX_BODY_BYTES = 16 * 1024;

export type Parsed<T> = { ok: true; value: T } | Failure;

export function parseUserId(value: unknown): Parsed<string> {
  return typeof value === "string" && USER_ID.test(value)
    ? { ok: true, value }
    : failure("invalid_request", "userId must be 1-128 characters of A-Z a-z 0-9 _ . : @ -");
}

/** A capability's `sessionId`: the platform's name for an agent session, the user id's characters. */
export function parseSessionId(value: unknown): Parsed<string> {
  return typeof value === "string" && USER_ID.test(value)
    ? { ok: true, value }
    : failure("invalid_request", "sessionId must be 1-128 characters of A-Z a-z 0-9 _ . : @ -");
}

/**
 * A capability's `containerId` (absent: unbound): what `ctx.containerId` names in a container's
 * outbound handler, 1-128 characters of the user id's set (a Durable Object id is 64 hex digits).
 */
export function parseContainerId(value: unknown): Parsed<string | null> {
  if (value === undefined || value === null) return { ok: true, value: null };
  return typeof value === "string" && USER_ID.test(value)
    ? { ok: true, value }
    : failure("invalid_request", "containerId must be 1-128 characters of A-Z a-z 0-9 _ . : @ -");
}

export function parseAppType(config: BrokerConfig, value: unknown): Parsed<AppConfig> {
  const app = typeof value === "string" ? config.apps.get(value) : undefined;
  return app ? { ok: true, value: app } : failure("invalid_request", `appType must be one of: ${[...config.apps.keys()].join(", ")}`);
}

/**
 * `owner/name`, or a clone URL of it on the configured GitHub host
 * (`https://github.com/owner/name` with an optional `.git`). Returns `owner/name`.
 */
export function parseRepository(config: BrokerConfig, value: unknown): Parsed<string> {
  const bad = failure("invalid_request", "repository must be owner/name or https://<github host>/owner/name(.git)");
  if (typeof value !== "string" || value.length > 300) return bad;
  let path = value;
  if (value.includes("://")) {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return bad;
    }
    const host = new URL(config.webUrl);
    // The raw string must be exactly a clone URL: no userinfo, port tricks, query, fragment,
    // percent-encoding or dot segments that URL parsing would quietly normalise away.
    const expectedPrefix = `${host.origin}/`;
    if (url.origin !== host.origin || url.username || url.password || url.search || url.hash) return bad;
    if (!value.startsWith(expectedPrefix) || value.includes("%")) return bad;
    path = value.slice(expectedPrefix.length).replace(/\.git$/, "");
  }
  const parts = path.split("/");
  if (parts.length !== 2) return bad;
  const repository = repositoryOf(parts[0]!, parts[1]!);
  return repository ? { ok: true, value: repository } : bad;
}

/** `minValiditySeconds` when the caller names none. */
export const DEFAULT_MIN_VALIDITY_SECONDS = 300;

/**
 * `owner/name` when both follow GitHub's rules, else `null`. The one definition of a
 * repository name, shared by the API and the proxies' paths. (A name ending in `.git` is
 * refused: the suffix is the clone URL's, never the repository's.)
 */
export function repositoryOf(owner: string, name: string): string | null {
  if (!OWNER.test(owner) || !REPO.test(name) || name === "." || name === ".." || name.endsWith(".git")) return null;
  return `${owner}/${name}`;
}

export function parsePermission(value: unknown): Parsed<Permission> {
  if (value === undefined) return { ok: true, value: "push" };
  return value === "push" || value === "pull" ? { ok: true, value } : failure("invalid_request", 'permission must be "push" or "pull"');
}

export function parseMinValidity(value: unknown): Parsed<number> {
  if (value === undefined) return { ok: true, value: DEFAULT_MIN_VALIDITY_SECONDS };
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 3600
    ? { ok: true, value }
    : failure("invalid_request", "minValiditySeconds must be an integer from 0 to 3600");
}

/**
 * Reads a JSON object body of at most {@link MAX_BODY_BYTES}, without buffering more than
 * that: the stream is cut as soon as the limit is passed.
 */
export async function readJsonBody(request: Request): Promise<Parsed<Record<string, unknown>>> {
  const text = await readLimited(request, MAX_BODY_BYTES);
  if (text === null) return failure("invalid_request", `body must be at most ${MAX_BODY_BYTES} bytes`);
  let body: unknown;
  try {
    body = JSON.parse(text);
  } catch {
    return failure("invalid_request", "body must be JSON");
  }
  if (!body || typeof body !== "object" || Array.isArray(body)) return failure("invalid_request", "body must be a JSON object");
  return { ok: true, value: body as Record<string, unknown> };
}

/**
 * The body as text, or `null` when it is over `limit` bytes: refused unread when the
 * Content-Length says so, otherwise cut as soon as the stream passes the limit.
 */
export async function readLimited(request: Request, limit: number): Promise<string | null> {
  if (!request.body) return "";
  const declared = request.headers.get("content-length");
  if (declared !== null && /^\d+$/.test(declared)) {
    if (Number(declared) > limit) {
      await request.body.cancel();
      return null;
    }
    // The runtime delivers exactly the declared length: read it in one go.
    return request.text();
  }
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    size += value.byteLength;
    if (size > limit) {
      await reader.cancel();
      return null;
    }
    chunks.push(value);
  }
  const all = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    all.set(c, offset);
    offset += c.byteLength;
  }
  return new TextDecoder().decode(all);
}
