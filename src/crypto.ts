/**
 * Cryptography, with Web Crypto only.
 *
 * ## Token encryption at rest
 *
 * Every stored token is sealed with AES-256-GCM under a key from the keyring
 * `TOKEN_ENCRYPTION_KEYS` (`kid:base64key,...`; the first key encrypts, all decrypt).
 * The sealed form is one ASCII string:
 *
 *     v1.<kid>.<iv: base64url, 12 bytes>.<ciphertext+tag: base64url>
 *
 * The additional authenticated data binds the ciphertext to where it lives:
 * `token-broker/v1\0<userId>\0<appType>\0<field>`. A ciphertext copied to another user,
 * another App or another column fails the GCM tag check, exactly like a tampered one.
 * A fresh random 96-bit IV is drawn for every seal: with random IVs GCM stays safe for
 * far more than 2^32 messages per key, which no single user's tokens approach.
 *
 * ## Other primitives
 *
 * HMAC-SHA256 signing and verification (the OAuth `state`), SHA-256, and a constant-time
 * comparison of secrets: `crypto.subtle.verify` compares MACs in constant time, and
 * {@link timingSafeEqualStrings} hashes both sides first so lengths never leak either.
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

/** One AES-GCM key of the keyring. */
interface KeyringKey {
  kid: string;
  key: CryptoKey;
}

/** The parsed `TOKEN_ENCRYPTION_KEYS`: `primary` encrypts, every key decrypts. */
export interface Keyring {
  primary: KeyringKey;
  byKid: Map<string, CryptoKey>;
}

/** Which stored value a ciphertext belongs to; part of the AAD. */
export interface SealContext {
  userId: string;
  appType: string;
  field: string;
}

const KID = /^[A-Za-z0-9_-]{1,32}$/;

// Parsing and importing keys costs a few hundred microseconds; an isolate keeps the result
// for the same configuration string.
const keyringCache = new Map<string, Promise<Keyring>>();

/**
 * Parses and imports `TOKEN_ENCRYPTION_KEYS`. Throws (with a message naming the problem,
 * never the key) when it is missing or malformed: a broker that cannot encrypt must not run.
 */
export function loadKeyring(spec: string | undefined): Promise<Keyring> {
  const source = (spec ?? "").trim();
  let cached = keyringCache.get(source);
  if (!cached) {
    cached = importKeyring(source);
    cached.catch(() => keyringCache.delete(source));
    keyringCache.set(source, cached);
  }
  return cached;
}

async function importKeyring(spec: string): Promise<Keyring> {
  const entries = spec.split(",").map((s) => s.trim()).filter(Boolean);
  if (entries.length === 0) throw new ConfigError("TOKEN_ENCRYPTION_KEYS is not set");
  const keys: KeyringKey[] = [];
  for (const entry of entries) {
    const sep = entry.indexOf(":");
    const kid = entry.slice(0, sep);
    if (sep < 0 || !KID.test(kid)) throw new ConfigError("TOKEN_ENCRYPTION_KEYS: each entry must be kid:base64key");
    let raw: Uint8Array;
    try {
      raw = base64Decode(entry.slice(sep + 1));
    } catch {
      throw new ConfigError(`TOKEN_ENCRYPTION_KEYS: key ${kid} is not base64`);
    }
    if (raw.length !== 32) throw new ConfigError(`TOKEN_ENCRYPTION_KEYS: key ${kid} must be 32 bytes (256 bits)`);
    if (keys.some((k) => k.kid === kid)) throw new ConfigError(`TOKEN_ENCRYPTION_KEYS: key id ${kid} appears twice`);
    keys.push({ kid, key: await crypto.subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]) });
  }
  return { primary: keys[0]!, byKid: new Map(keys.map((k) => [k.kid, k.key])) };
}

function aad(ctx: SealContext): Uint8Array {
  return enc.encode(`token-broker/v1\0${ctx.userId}\0${ctx.appType}\0${ctx.field}`);
}

/** Encrypts `plaintext` under the primary key, bound to `ctx`. */
export async function seal(keyring: Keyring, plaintext: string, ctx: SealContext): Promise<string> {
  const iv = crypto.getRandomValues(new Uint8Array(12));
  const ct = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv, additionalData: aad(ctx) },
    keyring.primary.key,
    enc.encode(plaintext),
  );
  return `v1.${keyring.primary.kid}.${base64urlEncode(iv)}.${base64urlEncode(new Uint8Array(ct))}`;
}

/**
 * What opening a sealed value found. The two failures are different facts and are handled
 * differently ("keys never wipe tokens"):
 * - `missing_key`: the value names a key id that `TOKEN_ENCRYPTION_KEYS` no longer holds.
 *   An operator's mistake: the value is kept and the caller answers `app_misconfigured`
 *   until the key is back.
 * - `undecryptable`: the GCM tag does not verify under a key that is present (tampered,
 *   moved to another user/App/field, or garbage). Only this makes a connection unusable.
 */
export type Opened = { ok: true; value: string } | { ok: false; problem: "missing_key"; kid: string } | { ok: false; problem: "undecryptable" };

/** Decrypts a value sealed by {@link seal} for the same `ctx`. Never throws. */
export async function openSealed(keyring: Keyring, sealed: string, ctx: SealContext): Promise<Opened> {
  const parts = sealed.split(".");
  if (parts.length !== 4 || parts[0] !== "v1") return { ok: false, problem: "undecryptable" };
  const key = keyring.byKid.get(parts[1]!);
  if (!key) return { ok: false, problem: "missing_key", kid: parts[1]! };
  try {
    const pt = await crypto.subtle.decrypt(
      { name: "AES-GCM", iv: base64urlBytes(parts[2]!), additionalData: aad(ctx) },
      key,
      base64urlBytes(parts[3]!),
    );
    return { ok: true, value: dec.decode(pt) };
  } catch {
    return { ok: false, problem: "undecryptable" };
  }
}

/** {@link openSealed} for callers that only need "the plaintext or nothing" (tests, tools). */
export async function open(keyring: Keyring, sealed: string, ctx: SealContext): Promise<string | null> {
  const opened = await openSealed(keyring, sealed, ctx);
  return opened.ok ? opened.value : null;
}

/** True when `sealed` was not made with the keyring's primary key (so it should be re-sealed). */
export function sealedWithOldKey(keyring: Keyring, sealed: string): boolean {
  return sealed.split(".")[1] !== keyring.primary.kid;
}

// ---- HMAC, hashing, comparison ----

const hmacKeyCache = new Map<string, Promise<CryptoKey>>();

function hmacKey(secret: string): Promise<CryptoKey> {
  let key = hmacKeyCache.get(secret);
  if (!key) {
    key = crypto.subtle.importKey("raw", enc.encode(secret), { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]);
    hmacKeyCache.set(secret, key);
  }
  return key;
}

export async function hmacSign(secret: string, message: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.sign("HMAC", await hmacKey(secret), enc.encode(message)));
}

/** Constant-time HMAC check (Web Crypto's `verify` compares in constant time). */
export async function hmacVerify(secret: string, message: string, mac: Uint8Array): Promise<boolean> {
  return crypto.subtle.verify("HMAC", await hmacKey(secret), mac, enc.encode(message));
}

export async function sha256(data: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(data)));
}

/**
 * Compares a given secret `a` with the expected one `b` without leaking where they differ or
 * how long they are: both are hashed to 32 bytes, then compared with workerd's
 * `timingSafeEqual`.
 */
export async function timingSafeEqualStrings(a: string, b: string): Promise<boolean> {
  const [ha, hb] = await Promise.all([sha256(a), expectedDigest(b)]);
  return crypto.subtle.timingSafeEqual(ha, hb);
}

// The expected side (a configured secret, or a stored token) is hashed once per isolate.
const digestCache = new Map<string, Promise<Uint8Array>>();
function expectedDigest(value: string): Promise<Uint8Array> {
  let digest = digestCache.get(value);
  if (!digest) {
    if (digestCache.size > 256) digestCache.clear();
    digest = sha256(value);
    digestCache.set(value, digest);
  }
  return digest;
}

/**
 * An HMAC key derived from `secret` for one purpose (`label`): HMAC-SHA256(secret, label)
 * used as the key. One configured secret can then serve several MACs (the OAuth state, the
 * session capabilities) without a MAC for one purpose ever verifying for another.
 */
export function derivedHmacKey(secret: string, label: string): Promise<CryptoKey> {
  const cacheKey = `${label}\0${secret}`;
  let key = derivedKeyCache.get(cacheKey);
  if (!key) {
    key = hmacSign(secret, label).then((raw) =>
      crypto.subtle.importKey("raw", raw, { name: "HMAC", hash: "SHA-256" }, false, ["sign", "verify"]),
    );
    derivedKeyCache.set(cacheKey, key);
  }
  return key;
}
const derivedKeyCache = new Map<string, Promise<CryptoKey>>();

/** Random bytes as base64url, for nonces and PKCE verifiers. */
export function randomString(bytes: number): string {
  return base64urlEncode(crypto.getRandomValues(new Uint8Array(bytes)));
}

// ---- encodings ----

export function base64urlEncode(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * Throws on anything that is not canonical base64url. Canonical matters: the last character
 * of an encoding carries unused bits, so several strings decode to the same bytes, and a MAC
 * checked on the bytes would accept every variant of a state or capability (one of them
 * could spend the real one's nonce). Only the one string that encodes the bytes is accepted.
 */
export function base64urlDecode(s: string): Uint8Array {
  const bytes = base64urlBytes(s);
  if (base64urlEncode(bytes) !== s) throw new Error("not canonical base64url");
  return bytes;
}

/** Lenient: for the broker's own stored values, which GCM authenticates anyway (a stored value is never refused for its encoding). */
function base64urlBytes(s: string): Uint8Array {
  if (!/^[A-Za-z0-9_-]*$/.test(s)) throw new Error("not base64url");
  return base64Decode(s.replace(/-/g, "+").replace(/_/g, "/"));
}

function base64Decode(s: string): Uint8Array {
  const bin = atob(s.padEnd(s.length + ((4 - (s.length % 4)) % 4), "="));
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

/** A configuration problem: reported to the operator, never blamed on the caller. */
export class ConfigError extends Error {
  override name = "ConfigError";
}
