/**
 * Capabilities with `identity` (contract, "Installation tokens"), the Worker's side: whether
 * an issue needs the installation, and the installation token for a redemption the user's
 * actor answered with "the App". The choice of identity at each request is the actor's
 * (src/actor/capabilities.ts); the token is the installation actor's. Neither the sandbox
 * nor the user's actor ever holds an installation token.
 */
import type { AppBinding, Redeemed } from "../actor/capabilities";
import {
  DEFAULT_INSTALLATION_PERMISSIONS,
  type CapabilityGrant,
  type CapabilityIdentity,
  type Failure,
  type InstallationPermissions,
  type Permission,
} from "../contract";
import { fallbackReasonOf } from "../failures";
import { DEFAULT_MIN_VALIDITY_SECONDS } from "../validate";
import { installationToken } from "./api";

/** How long an installation token must stay valid for one proxied request (a long push). */
const REDEEM_MIN_VALIDITY_SECONDS = 120;

/** The installation token's scope standing in for a user's `permission`: push code and open pull requests, or read. */
export function installationPermissionsFor(permission: Permission): InstallationPermissions {
  return permission === "pull" ? { contents: "read" } : { ...DEFAULT_INSTALLATION_PERMISSIONS };
}

/** What {@link issueWithIdentity} needs to know of the request. */
export interface IdentityIssue {
  appType: string;
  repository: string;
  permission: Permission;
  identity: CapabilityIdentity;
}

/**
 * Issues a capability for `identity`. `user` is the user's check only. `user_or_app` tries the
 * user first and starts out as the App only for a reason the user alone can fix. Before a
 * capability starts out as the App, the installation must serve the repository now (an
 * installation token is taken, which also warms the cache), so a session never holds a
 * capability that could not work.
 */
export async function issueWithIdentity(
  env: Env,
  input: IdentityIssue,
  asUser: () => Promise<CapabilityGrant | Failure>,
  asApp: (app: AppBinding) => Promise<CapabilityGrant | Failure>,
): Promise<CapabilityGrant | Failure> {
  let fallbackReason: AppBinding["fallbackReason"];
  if (input.identity !== "app") {
    const user = await asUser();
    if (user.ok || input.identity === "user") return user;
    const reason = fallbackReasonOf(user);
    if (!reason) return user;
    fallbackReason = reason;
  }
  const token = await installationToken(env, {
    appType: input.appType,
    repository: input.repository,
    permissions: installationPermissionsFor(input.permission),
    minValiditySeconds: DEFAULT_MIN_VALIDITY_SECONDS,
  });
  if (!token.ok) return token;
  return asApp(fallbackReason ? { committer: token.committer, fallbackReason } : { committer: token.committer });
}

/** The installation token for a redemption the user's actor answered with `app`. */
export async function installationTokenFor(env: Env, redeemed: Redeemed & { identity: "app" }): Promise<{ ok: true; token: string } | Failure> {
  const minted = await installationToken(env, {
    appType: redeemed.appType,
    repository: redeemed.repository,
    permissions: installationPermissionsFor(redeemed.permission),
    minValiditySeconds: REDEEM_MIN_VALIDITY_SECONDS,
  });
  return minted.ok ? { ok: true, token: minted.token } : minted;
}
