/**
 * `POST /v1/users/{userId}/token` with `fallback: "app"`: where the user's token cannot be
 * given for a reason only the user can fix (`FALLBACK_REASONS`), the answer is an
 * installation token for the same repository, with `fallbackReason` and, where the user's
 * GitHub identity is known, `coAuthor` for a `Co-authored-by:` trailer (the same as the
 * user's own `committer`: token-desk.ts `committerOf`). Outages, rate limits
 * and the broker's own failures are returned as they are: never masked by the other identity.
 */
import type { TokenFailure } from "../actor/user-actor";
import type { Permission, UserTokenResult } from "../contract";
import { fallbackReasonOf } from "../failures";
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

/**
 * The installation token that stands in for `failed`, or `failed` itself when it must not.
 * The user's actor attached the co-author to `failed` where it knows it (`TokenFailure`);
 * it never reaches the caller on a failure.
 */
export async function fallBackToApp(env: Env, input: FallbackInput, failed: TokenFailure): Promise<UserTokenResult> {
  const { coAuthor, ...failure } = failed;
  const reason = fallbackReasonOf(failure);
  if (!reason) return failure;
  const app = await installationToken(env, {
    appType: input.appType,
    repository: input.repository,
    permissions: installationPermissionsFor(input.permission),
    minValiditySeconds: input.minValiditySeconds,
  });
  if (!app.ok) return app;
  return coAuthor ? { ...app, fallbackReason: reason, coAuthor } : { ...app, fallbackReason: reason };
}
