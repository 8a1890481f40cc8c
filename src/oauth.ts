/**
 * The OAuth connect flow's Worker side: the authorize URL and the signed `state`.
 *
 * `state` = `base64url(JSON claims) "." base64url(HMAC-SHA256(STATE_SIGNING_KEY, claims part))`
 * with claims `{v: 1, u: userId, a: appType, r: returnTo, n: nonce, e: expiry (epoch s)}`.
 * The signature makes the claims trustworthy (so `returnTo` can be used for the redirect
 * and `u` names the only actor that can finish it); the nonce, kept by that user's actor
 * together with the PKCE verifier and deleted on first use, makes it single use.
 */
import type { AppConfig, BrokerConfig } from "./config";
import { providerOf } from "./providers";
import { base64urlDecode, base64urlEncode, ConfigError, hmacSign, hmacVerify } from "./crypto";

export interface StateClaims {
  userId: string;
  appType: string;
  returnTo: string;
  nonce: string;
  /** Epoch seconds. */
  expiresAt: number;
}

export type StateCheck =
  | { ok: true; claims: StateClaims }
  /** Signature fine but too old: the claims can be trusted for the redirect. */
  | { ok: false; code: "expired_state"; claims: StateClaims }
  /** Forged, tampered, malformed: nothing in it can be trusted. */
  | { ok: false; code: "invalid_state" };

const enc = new TextEncoder();
const dec = new TextDecoder();

function signingKey(key: string | undefined): string {
  if (!key || key.length < 16) throw new ConfigError("STATE_SIGNING_KEY must be set (at least 16 characters)");
  return key;
}

export async function signState(key: string | undefined, claims: StateClaims): Promise<string> {
  const body = base64urlEncode(
    enc.encode(JSON.stringify({ v: 1, u: claims.userId, a: claims.appType, r: claims.returnTo, n: claims.nonce, e: claims.expiresAt })),
  );
  return `${body}.${base64urlEncode(await hmacSign(signingKey(key), body))}`;
}

/** Verifies the MAC in constant time, then the expiry. */
export async function verifyState(key: string | undefined, state: string | null, nowMs = Date.now()): Promise<StateCheck> {
  const invalid = { ok: false, code: "invalid_state" } as const;
  if (!state || state.length > 2048) return invalid;
  const parts = state.split(".");
  if (parts.length !== 2) return invalid;
  let mac: Uint8Array;
  try {
    mac = base64urlDecode(parts[1]!);
  } catch {
    return invalid;
  }
  if (!(await hmacVerify(signingKey(key), parts[0]!, mac))) return invalid;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(dec.decode(base64urlDecode(parts[0]!))) as Record<string, unknown>;
  } catch {
    return invalid;
  }
  const { v, u, a, r, n, e } = raw;
  if (v !== 1 || typeof u !== "string" || typeof a !== "string" || typeof r !== "string" || typeof n !== "string" || typeof e !== "number") {
    return invalid;
  }
  const claims: StateClaims = { userId: u, appType: a, returnTo: r, nonce: n, expiresAt: e };
  if (e * 1000 <= nowMs) return { ok: false, code: "expired_state", claims };
  return { ok: true, claims };
}

/** The authorize URL of `app`'s provider (GitHub or GitLab), with PKCE S256: see each provider's `authorizeUrl`. */
export function authorizeUrl(config: BrokerConfig, app: AppConfig, state: string, codeChallenge: string, selectAccount = false): string {
  return providerOf(config, app).authorizeUrl(app, state, codeChallenge, selectAccount);
}

/**
 * Validates `returnTo`: an absolute http(s) URL on one of `ALLOWED_RETURN_ORIGINS`, with no
 * userinfo (no `https://allowed.example@evil.example` tricks). Returns the normalised URL.
 */
export function checkReturnTo(config: BrokerConfig, value: unknown): string | null {
  if (typeof value !== "string" || value.length > 2048) return null;
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    return null;
  }
  if (url.protocol !== "https:" && url.protocol !== "http:") return null;
  if (url.username || url.password) return null;
  if (!config.allowedReturnOrigins.has(url.origin)) return null;
  return url.toString();
}
