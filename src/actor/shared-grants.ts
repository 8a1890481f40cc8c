/**
 * One grant per (App, GitHub account), and several platform users may hold it: the same
 * account connected under two platform users, or under a new one after an account deletion.
 * Before a grant is revoked (grant-revoker.ts), the other holders are asked: the identity
 * index names who is linked (a link is written before its connection and may outlive it),
 * and each linked user's actor answers for itself ({@link grantUse}).
 */
import { identityIndexByKey } from "../identity-index";
import type { ConnectionStore } from "./connection-store";
import type { GrantRevoker } from "./grant-revoker";

/** What one actor answers about a grant: see {@link grantUse}. */
export type GrantUse = "in_use" | "connecting" | "free";

/**
 * Whether another platform user's connection of `appType` uses the grant of `account` now:
 * `in_use` as soon as one does; `unsure` when one is connecting the App (it may be obtaining
 * that grant); `free` otherwise. `self` (this actor's owner) is skipped: its own connection is
 * checked synchronously by the revoker.
 */
export async function inUseElsewhere(env: Env, self: string | null, appType: string, key: string, account: string): Promise<"in_use" | "free" | "unsure"> {
  let unsure = false;
  for (const link of await identityIndexByKey(env, key).links({ appType })) {
    if (link.userId === self) continue;
    const other = env.USER_ACTOR.get(env.USER_ACTOR.idFromName(link.userId));
    const answer = await other.grantInUse({ appType, account });
    if (answer === "in_use") return "in_use";
    if (answer === "connecting") unsure = true;
  }
  return unsure ? "unsure" : "free";
}

/**
 * This actor's answer: `in_use` when its connection of `appType` is `account`'s, `connecting`
 * while a confirm of the App is between its exchange and its stored generation.
 */
export function grantUse(store: ConnectionStore, revoker: GrantRevoker, appType: string, account: string): GrantUse {
  const row = store.get(appType);
  if (row?.status === "connected" && row.github_user_id === account) return "in_use";
  return revoker.isPaused(appType) ? "connecting" : "free";
}
