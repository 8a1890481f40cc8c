/**
 * The test Apps' RSA key pairs, generated once per process (Node only: vitest.config.ts and
 * the harness). Never a key in the repository: a fixed test key would be one more secret
 * look-alike for scanners, and nothing here needs it to be stable across runs.
 *
 * `standard` gets its private key as PKCS#1 (`BEGIN RSA PRIVATE KEY`, what GitHub hands
 * out), `lite` as PKCS#8, so both formats are exercised. The emulator gets the public keys.
 */
import { generateKeyPairSync } from "node:crypto";
import { APPS } from "./env.ts";
import type { EmulatorAppIdentity } from "../../emulator/github-apps.ts";

function pair() {
  const { privateKey, publicKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  return {
    pkcs1: privateKey.export({ type: "pkcs1", format: "pem" }) as string,
    pkcs8: privateKey.export({ type: "pkcs8", format: "pem" }) as string,
    spki: publicKey.export({ type: "spki", format: "pem" }) as string,
  };
}

const standard = pair();
const lite = pair();

/** Bindings: each App's private key, as `GITHUB_APP_PRIVATE_KEY_<APPTYPE>`. */
export const APP_KEY_BINDINGS: Record<string, string> = {
  GITHUB_APP_PRIVATE_KEY_STANDARD: standard.pkcs1,
  GITHUB_APP_PRIVATE_KEY_LITE: lite.pkcs8,
};

/** What the emulator needs to verify each App's JWTs. */
export const APP_IDENTITIES: EmulatorAppIdentity[] = [
  { ...identity("standard"), publicKeyPem: standard.spki },
  { ...identity("lite"), publicKeyPem: lite.spki },
];

function identity(appType: keyof typeof APPS) {
  const app = APPS[appType];
  return { clientId: app.clientId, appId: app.appId, slug: app.slug, botUserId: app.botUserId };
}
