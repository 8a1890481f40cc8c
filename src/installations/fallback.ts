/**
 * `POST /v1/users/{userId}/token` with `fallback: "app"`: where the user's token cannot be
 * given for a reason only the user can fix ({@link FALLBACK_REASONS}), the answer is an
 * installation token for the same repository, with `fallbackReason` and, where the user's
 * GitHub identity is known, `coAuthor` for a `Co-authored-by:` trailer. Outages, rate limits
 * and the broker's own failures are returned as they are: never masked by the other identity.
 */
import { userActor } from "../actors";
import { FALLBACK_REASONS, type Committer, type Failure, type Permission, type UserTokenResult } from "../contract";
import { installationToken } from "./api";
import { installationPermissionsFor } from "./capability-identity";

/** The user-token request a fallback answers, as validated. */
export interface FallbackInput {
  userId: string;
  appType: string;
  repository: string;
  permission: Permission;
  minValiditySeconds: number;
}

/** The installation token that stands in for `failed`, or `failed` itself when it must not. */
export async function fallBackToApp(env: Env, input: FallbackInput, failed: Failure): Promise<UserTokenResult> {
  const reason = (FALLBACK_REASONS as readonly string[]).includes(failed.reason) ? (failed.reason as (typeof FALLBACK_REASONS)[number]) : null;
  if (!reason) return failed;
  const app = await installationToken(env, {
    appType: input.appType,
    repository: input.repository,
    permissions: installationPermissionsFor(input.permission),
    minValiditySeconds: input.minValiditySeconds,
  });
  if (!app.ok) return app;
  const coAuthor = await knownIdentity(env, input.userId, input.appType);
  return coAuthor ? { ...app, fallbackReason: reason, coAuthor } : { ...app, fallbackReason: reason };
}

/**
 * The user's git identity where the actor knows it (even from a revoked connection): the
 * same string a capability's `coAuthor` carries (token-desk.ts `committerOf`: display name,
 * else login, and the provider's no-reply address).
 */
async function knownIdentity(env: Env, userId: string, appType: string): Promise<Committer | undefined> {
  try {
    return (await userActor(env, userId).coAuthor({ userId, appType })) ?? undefined;
  } catch {
    // Without it the token still works; the trailer is a courtesy.
    return undefined;
  }
}
