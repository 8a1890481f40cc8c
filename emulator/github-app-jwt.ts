/**
 * App JWTs for the GitHub emulator's installation side (emulator/github-apps.ts): each App's
 * registered public key, and verification with GitHub's claim checks: RS256 against the key,
 * `iss` the client id (or numeric App id), `exp` in the future and at most 10 minutes after
 * `iat`, `iat` not in the future. A rotated key makes the configured private key wrong, as
 * deleting it on GitHub would.
 */

/** An App's identity for installation tokens. */
export interface EmulatorAppIdentity {
  clientId: string;
  appId: number;
  slug: string;
  botUserId: number;
  /** SPKI PEM of the App's key pair; the broker holds the private half. */
  publicKeyPem: string;
}

/** A verified JWT's App and claims, or the message of GitHub's 401. */
export type JwtCheck = { ok: true; identity: EmulatorAppIdentity; iss: unknown; iat: number; exp: number; verifiedAt: number } | { ok: false; message: string };

interface AppKey {
  identity: EmulatorAppIdentity;
  key: Promise<CryptoKey>;
}

const RS256 = { name: "RSASSA-PKCS1-v1_5", hash: "SHA-256" } as const;
const UNDECODABLE = "A JSON web token could not be decoded";

export class AppKeys {
  readonly #registered = new Map<string, EmulatorAppIdentity>();
  #keys = new Map<string, AppKey>();

  /** Makes an App able to sign JWTs with its key (kept across {@link reset}). */
  register(identity: EmulatorAppIdentity): void {
    this.#registered.set(identity.clientId, identity);
    this.#keys.set(identity.clientId, { identity, key: importSpki(identity.publicKeyPem) });
  }

  /** A registered App's identity. */
  identity(clientId: string): EmulatorAppIdentity | undefined {
    return this.#registered.get(clientId);
  }

  /** Puts back every App's registered key. */
  reset(): void {
    this.#keys = new Map();
    for (const identity of this.#registered.values()) this.register(identity);
  }

  /** GitHub now holds a new key for the App: the broker's private key no longer signs valid JWTs. */
  rotate(clientId: string): void {
    const current = this.#keys.get(clientId);
    if (!current) throw new Error("unknown App");
    const key = crypto.subtle
      .generateKey({ ...RS256, modulusLength: 2048, publicExponent: new Uint8Array([1, 0, 1]) }, false, ["sign", "verify"])
      .then((pair) => (pair as CryptoKeyPair).publicKey);
    this.#keys.set(clientId, { identity: current.identity, key });
  }

  /** Verifies the request's `Authorization: Bearer <JWT>` (`clock`: now in seconds, read once the signature checked out). */
  async verify(request: Request, clock: () => number): Promise<JwtCheck> {
    const reject = (message: string): JwtCheck => ({ ok: false, message });
    const jwt = /^Bearer (\S+)$/i.exec(request.headers.get("authorization") ?? "")?.[1] ?? "";
    const parts = jwt.split(".");
    if (parts.length !== 3) return reject(UNDECODABLE);
    let header: { alg?: unknown };
    let claims: { iss?: unknown; iat?: unknown; exp?: unknown };
    try {
      header = JSON.parse(textOf(parts[0]!));
      claims = JSON.parse(textOf(parts[1]!));
    } catch {
      return reject(UNDECODABLE);
    }
    const entry = [...this.#keys.values()].find((k) => k.identity.clientId === claims.iss || k.identity.appId === claims.iss);
    if (header.alg !== "RS256" || !entry) return reject(UNDECODABLE);
    let valid = false;
    try {
      valid = await crypto.subtle.verify(RS256, await entry.key, bytesOf(parts[2]!), new TextEncoder().encode(`${parts[0]}.${parts[1]}`));
    } catch {
      valid = false;
    }
    if (!valid) return reject(UNDECODABLE);
    const now = clock();
    const { iat, exp } = claims;
    if (typeof iat !== "number" || typeof exp !== "number") return reject(UNDECODABLE);
    if (iat > now + 1) return reject("'Issued at' claim ('iat') must be an Integer representing the time that the assertion was issued.");
    if (exp <= now) return reject("'Expiration time' claim ('exp') must be a numeric value representing the future time at which the assertion expires.");
    if (exp - iat > 600) return reject("'Expiration time' claim ('exp') is too far in the future.");
    return { ok: true, identity: entry.identity, iss: claims.iss, iat, exp, verifiedAt: now };
  }
}

function importSpki(pem: string): Promise<CryptoKey> {
  const b64 = pem.replace(/-----(BEGIN|END) PUBLIC KEY-----/g, "").replace(/\s+/g, "");
  const der = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  return crypto.subtle.importKey("spki", der, RS256, false, ["verify"]);
}

function bytesOf(b64url: string): Uint8Array<ArrayBuffer> {
  const b64 = b64url.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64.padEnd(b64.length + ((4 - (b64.length % 4)) % 4), "=")), (c) => c.charCodeAt(0));
}

function textOf(b64url: string): string {
  return new TextDecoder().decode(bytesOf(b64url));
}
