/**
 * The App JWT: how the broker proves to GitHub that it is the App, to look up installations
 * and mint installation tokens.
 *
 * Signed RS256 with Web Crypto by `universal-github-app-jwt` (octokit's). That library
 * takes only PKCS#8 in workerd (its PKCS#1 conversion needs `node:crypto`), while GitHub
 * hands out the key as PKCS#1 (`BEGIN RSA PRIVATE KEY`). So a PKCS#1 key is wrapped here into
 * a PKCS#8 `PrivateKeyInfo`: a fixed DER header (version 0, the rsaEncryption algorithm
 * identifier) around the PKCS#1 bytes, no ASN.1 parsing needed.
 *
 * Claims: `iat` 60 s in the past (clock drift between the broker and GitHub), `exp` 9 minutes
 * ahead (GitHub refuses more than 10), `iss` the App's client id.
 *
 * The key never leaves this module: every failure is a {@link ConfigError} whose message
 * names the setting, never its value, and the library's own errors are not passed on.
 */
import githubAppJwt from "universal-github-app-jwt";
import type { AppConfig } from "../config";
import { ConfigError } from "../crypto";

/** Seconds the JWT's `iat` is set in the past. */
export const JWT_BACKDATE_SECONDS = 60;
/** Seconds from `iat` to `exp` (GitHub allows at most 600). */
export const JWT_LIFETIME_SECONDS = 600;

// The library backdates `iat` by 30 s from the `now` it is given.
const LIBRARY_BACKDATE_SECONDS = 30;

// The PKCS#8 form of each configured key, per isolate (keyed by the PEM as configured).
const pkcs8Cache = new Map<string, string>();

/**
 * A fresh App JWT for `app`. Throws {@link ConfigError} when the private key is unset or is
 * not an RSA private key in PEM (PKCS#1 or PKCS#8).
 */
export async function appJwt(app: AppConfig, nowMs = Date.now()): Promise<string> {
  const setting = `GITHUB_APP_PRIVATE_KEY_${app.appType.toUpperCase()}`;
  if (!app.privateKey) throw new ConfigError(`${setting} is not set: installation tokens are off for this App`);
  let pem = pkcs8Cache.get(app.privateKey);
  if (!pem) {
    pem = toPkcs8Pem(app.privateKey, setting);
    pkcs8Cache.set(app.privateKey, pem);
  }
  const now = Math.floor(nowMs / 1000) - (JWT_BACKDATE_SECONDS - LIBRARY_BACKDATE_SECONDS);
  try {
    const { token } = await githubAppJwt<string>({ id: app.clientId, privateKey: pem, now });
    return token;
  } catch {
    // The library's or Web Crypto's message is not ours to trust with key material.
    throw new ConfigError(`${setting} could not be used to sign the App JWT (not an RSA private key?)`);
  }
}

/**
 * Any accepted PEM as a PKCS#8 PEM with `\n` line breaks. Accepts the literal `\n` escapes
 * and CRLFs that private keys pick up in environment variables.
 */
export function toPkcs8Pem(configured: string, setting = "the private key"): string {
  const text = configured.replace(/\\n/g, "\n").replace(/\r/g, "").trim();
  const m = /^-----BEGIN ([A-Z ]+)-----\n([A-Za-z0-9+/=\n]+?)\n?-----END \1-----$/.exec(text);
  const label = m?.[1];
  if (!m || (label !== "RSA PRIVATE KEY" && label !== "PRIVATE KEY")) {
    throw new ConfigError(`${setting} must be a PEM RSA private key (BEGIN RSA PRIVATE KEY or BEGIN PRIVATE KEY)`);
  }
  let der: Uint8Array;
  try {
    der = base64ToBytes(m[2]!.replace(/\n/g, ""));
  } catch {
    throw new ConfigError(`${setting} is not valid PEM (bad base64)`);
  }
  const pkcs8 = label === "RSA PRIVATE KEY" ? wrapPkcs1(der) : der;
  const b64 = bytesToBase64(pkcs8);
  return `-----BEGIN PRIVATE KEY-----\n${b64.replace(/(.{64})/g, "$1\n").replace(/\n$/, "")}\n-----END PRIVATE KEY-----`;
}

/** `PrivateKeyInfo ::= SEQUENCE { version 0, AlgorithmIdentifier rsaEncryption NULL, OCTET STRING pkcs1 }`. */
function wrapPkcs1(pkcs1: Uint8Array): Uint8Array {
  const version = [0x02, 0x01, 0x00];
  // SEQUENCE { OID 1.2.840.113549.1.1.1, NULL }
  const algorithm = [0x30, 0x0d, 0x06, 0x09, 0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01, 0x05, 0x00];
  const octetString = [0x04, ...derLength(pkcs1.length)];
  const bodyLength = version.length + algorithm.length + octetString.length + pkcs1.length;
  const head = [0x30, ...derLength(bodyLength), ...version, ...algorithm, ...octetString];
  const out = new Uint8Array(head.length + pkcs1.length);
  out.set(head, 0);
  out.set(pkcs1, head.length);
  return out;
}

/** DER definite length: short form below 128, long form (0x80 | byte count, big-endian) above. */
function derLength(n: number): number[] {
  if (n < 0x80) return [n];
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v & 0xff);
  return [0x80 | bytes.length, ...bytes];
}

function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

function bytesToBase64(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}
