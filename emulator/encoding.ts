/**
 * Token and digest encodings the emulators share: random tokens as GitHub and GitLab shape
 * them, base64url, and PKCE's S256. Web-standard APIs only.
 */

/** Bytes as unpadded base64url. */
export function base64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/** `prefix` and 27 random bytes as base64url (GitHub's `ghu_`/`ghr_` shape). */
export function randomToken(prefix: string): string {
  return prefix + base64url(crypto.getRandomValues(new Uint8Array(27)));
}

/** `length` random bytes as hex (GitLab's tokens and codes: 20; log keys: 16). */
export function randomHex(length = 20): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/** PKCE's S256: base64url(SHA-256(verifier)). */
export async function s256(verifier: string): Promise<string> {
  return base64url(new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(verifier))));
}
