/**
 * Session capabilities: what an agent session holds instead of the user's token.
 *
 * Format: `gcap1.<base64url(userId)>.<base64url(16 random bytes ‖ 16-byte MAC)>`, where the
 * MAC is HMAC-SHA256, truncated to 128 bits, over `gcap1.<userId part>.<random part>` under a
 * key derived from `STATE_SIGNING_KEY` for this purpose only (crypto.ts `derivedHmacKey`).
 *
 * - **The Worker authenticates it before any Durable Object is touched.** A forged or
 *   altered capability (any byte, the user id included) fails the MAC and is refused at the
 *   edge: it cannot wake a user's actor, let alone create storage.
 * - **The actor still stores it** (a SHA-256 of the secret part, with session, App,
 *   repository, permission, expiry and generation) and looks it up on every redemption. Every
 *   proxied request asks the user's actor for a live token anyway, so the lookup is free;
 *   revocation is exact and immediate (delete the rows: early revocation, disconnect, GitHub
 *   revocation, reconnect, account deletion) with no deny-list; a stolen row is worthless.
 *
 * **Container-bound capabilities** (`containerId` at issue) are spelled
 * `gcapc1.<base64url(userId)>.<base64url(16 random bytes ‖ 16-byte MAC)>`, the MAC taken over
 * `gcapc1.<userId part>.<random part>\n<containerId>`. The container id is not in the string:
 * only a caller that knows it (the egress handler, told it by the container runtime) can
 * verify one. The public doors refuse the `gcapc1` prefix outright, before any MAC or
 * Durable Object; the egress door verifies the MAC with its container's id, so a copy used from
 * another container fails at the edge too. The actor compares the row's container id as well.
 *
 * Rotating `STATE_SIGNING_KEY` invalidates every capability (sessions ask for new ones).
 */
import { catchingConfigErrors } from "../config";
import { failure, type Failure } from "../contract";
import { base64urlDecode, base64urlEncode, ConfigError, derivedHmacKey, sha256 } from "../crypto";
import { isName } from "../validate";

const PREFIX = "gcap1";
const BOUND_PREFIX = "gcapc1";
const MAC_LABEL = "token-broker/v1 session capability";
const RANDOM_BYTES = 16;
const MAC_BYTES = 16;

export interface VerifiedCapability {
  userId: string;
  /** The container a bound capability was verified for; `null` for an unbound one. */
  containerId: string | null;
  /** Hex SHA-256 of the secret part: what the actor stores and looks up. */
  secretHash: string;
}

function macKey(env: Env): Promise<CryptoKey> {
  const secret = env.STATE_SIGNING_KEY;
  if (!secret || secret.length < 16) throw new ConfigError("STATE_SIGNING_KEY must be set (at least 16 characters)");
  return derivedHmacKey(secret, MAC_LABEL);
}

/** Where a capability is presented: a public door, or the egress door of one container. */
export type Door = { kind: "public" } | { kind: "egress"; containerId: string; capability: string };

/** The public proxies and AGENT_HOST: the capability comes from the request. */
export const PUBLIC_DOOR: Door = { kind: "public" };

async function mac(key: CryptoKey, userPart: string, randomPart: Uint8Array, containerId: string | null): Promise<Uint8Array> {
  // A newline never occurs in the base64url parts nor in a container id, so the input is unambiguous.
  const head = `${containerId === null ? PREFIX : BOUND_PREFIX}.${userPart}.${base64urlEncode(randomPart)}`;
  const message = new TextEncoder().encode(containerId === null ? head : `${head}\n${containerId}`);
  return new Uint8Array(await crypto.subtle.sign("HMAC", key, message)).slice(0, MAC_BYTES);
}

/** Mints a capability for `userId` (bound to `containerId` when one is given); returns it and the hash the actor stores. */
export async function mintCapability(env: Env, userId: string, containerId: string | null = null): Promise<{ ok: true; capability: string; secretHash: string } | Failure> {
  const key = await catchingConfigErrors(() => macKey(env));
  if (!(key instanceof CryptoKey)) return key;
  const userPart = base64urlEncode(new TextEncoder().encode(userId));
  const random = crypto.getRandomValues(new Uint8Array(RANDOM_BYTES));
  const secret = new Uint8Array(RANDOM_BYTES + MAC_BYTES);
  secret.set(random);
  secret.set(await mac(key, userPart, random, containerId), RANDOM_BYTES);
  const secretPart = base64urlEncode(secret);
  return { ok: true, capability: `${containerId === null ? PREFIX : BOUND_PREFIX}.${userPart}.${secretPart}`, secretHash: await hashSecret(secretPart) };
}

/**
 * Authenticates a capability string: well-formed, a valid user id, and a MAC that verifies
 * (compared in constant time). A bound capability verifies only at the egress door of its own
 * container (`containerId`); at a public door (`null`) it is refused before any MAC. `null`
 * for anything else. Throws {@link ConfigError} only when the broker itself has no key.
 */
export async function verifyCapability(env: Env, value: string, containerId: string | null = null): Promise<VerifiedCapability | null> {
  const parts = value.split(".");
  const bound = parts[0] === BOUND_PREFIX;
  if (bound && containerId === null) return null;
  if (parts.length !== 3 || (parts[0] !== PREFIX && !bound) || !/^[A-Za-z0-9_-]{43}$/.test(parts[2]!) || parts[1]!.length > 200) return null;
  let userId: string;
  let secret: Uint8Array;
  try {
    // Invalid UTF-8 decodes to U+FFFD, which the user id check rejects.
    userId = new TextDecoder().decode(base64urlDecode(parts[1]!));
    secret = base64urlDecode(parts[2]!);
  } catch {
    return null;
  }
  if (!isName(userId) || secret.length !== RANDOM_BYTES + MAC_BYTES) return null;
  const binding = bound ? containerId : null;
  const expected = await mac(await macKey(env), parts[1]!, secret.slice(0, RANDOM_BYTES), binding);
  if (!crypto.subtle.timingSafeEqual(expected, secret.slice(RANDOM_BYTES))) return null;
  return { userId, containerId: binding, secretHash: await hashSecret(parts[2]!) };
}

async function hashSecret(secret: string): Promise<string> {
  return [...(await sha256(secret))].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** The capability a door presents: the platform's, at the egress door; else the request's own. */
export function presentedCapability(request: Request, door: Door): string | null {
  return door.kind === "egress" ? door.capability : capabilityFromRequest(request);
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
