/**
 * The syntax of the names every transport shares (user ids and the like, GitHub repositories)
 * and the reading of a bounded body. The internal API's field parsers are in
 * http/fields.ts; these are what they, the proxies and the webhooks have in common.
 */
import { failure, type Failure } from "./contract";

/** The platform's names (user ids, session ids, container ids): 1-128 chars of `[A-Za-z0-9_.:@-]`. */
const NAME = /^[A-Za-z0-9_.:@-]{1,128}$/;

/** What {@link NAME} allows, as the failure messages say it. */
export const NAME_RULE = "1-128 characters of A-Z a-z 0-9 _ . : @ -";

/** GitHub logins and organisation names: alphanumerics and single inner hyphens, 1-39. */
const OWNER = /^[A-Za-z0-9](?:[A-Za-z0-9]|-(?=[A-Za-z0-9])){0,38}$/;

/** GitHub repository names: 1-100 of `[A-Za-z0-9._-]`, but not `.` or `..`. */
const REPO = /^[A-Za-z0-9._-]{1,100}$/;

/** Largest accepted request body. */
export const MAX_BODY_BYTES = 16 * 1024;

/** A parser's answer: the clean value, or the failure that names the field. */
export type Parsed<T> = { ok: true; value: T } | Failure;

/** Whether `value` is one of the platform's names ({@link NAME_RULE}). */
export function isName(value: unknown): value is string {
  return typeof value === "string" && NAME.test(value);
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
