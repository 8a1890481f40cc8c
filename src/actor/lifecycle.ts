/**
 * Where a connection's lifecycle is decided. The lifecycle writers of one user (confirm,
 * disconnect, account deletion, revocation) **take turns**: each runs after the previous one
 * finished, through {@link Lifecycle.run}. Token requests are not writers and never wait here.
 *
 * - An account deletion bumps {@link Lifecycle.epoch} the moment it arrives, before it
 *   queues: a connect already past its checks sees the change at its next step, stores
 *   nothing, and hands the grant it obtained to the revoker ("deletion wins").
 * - A writer that ends a generation first {@link Lifecycle.retire}s it: waits for any
 *   refresh in flight, then in one synchronous step moves the tokens to the revoker and
 *   removes the connection, so no token of it is handed out afterwards and no live grant is
 *   forgotten.
 * - A revocation webhook is confirmed with GitHub before anything is wiped (a late or
 *   replayed delivery for a grant GitHub still honours changes nothing).
 */
import type { Failure, GrantOutcome } from "../contract";
import { CONNECTION_KEPT_CHANGING, missingKeyFailure } from "../failures";
import type { TokenSet } from "../providers/provider";
import { identityIndexByKey } from "../identity-index";
import { logEvent } from "../log";
import { sameStamp, type ConnectionRow, type ConnectionStore, type RemovalCause } from "./connection-store";
import type { CallContext, ServiceContext } from "./context";
import type { GrantRevoker, PreparedRevocation } from "./grant-revoker";
import type { Refresher } from "./refresher";
import type { TokenVault } from "./token-vault";

export interface LifecycleDeps {
  env: Env;
  store: ConnectionStore;
  refresher: Refresher;
  vault: TokenVault;
  revoker: GrantRevoker;
}

/**
 * Ending a generation, prepared: its row as read and its tokens ready for the revoker. All
 * the awaits are done; {@link Lifecycle.commitRetirement} does the rest in one synchronous
 * step, so a caller can end a generation in the same step as it stores the next one.
 */
export interface Retirement {
  row: ConnectionRow;
  prepared: PreparedRevocation | null;
}

/** How a revocation webhook ended for this user. */
export type RevocationOutcome = "revoked" | "ignored" | "still_authorized";

export class Lifecycle {
  #tail: Promise<unknown> = Promise.resolve();
  #epoch = 0;
  readonly #d: LifecycleDeps;

  constructor(deps: LifecycleDeps) {
    this.#d = deps;
  }

  /** Bumped by every account deletion on arrival; a connect compares it after each await. */
  get epoch(): number {
    return this.#epoch;
  }

  /** Called synchronously when an account deletion arrives, before it queues. */
  beginDeletion(): void {
    this.#epoch++;
  }

  /** Runs `fn` after every lifecycle writer queued before it. A throw does not jam the queue. */
  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.#tail.then(fn);
    this.#tail = result.catch(() => undefined);
    return result;
  }

  /**
   * Ends the App's current generation: its tokens go to the revoker and the row is removed,
   * in one synchronous step after any refresh in flight. Returns the pending revocation id
   * (`null` when the row had no usable tokens), or a failure when a stored value names a
   * missing encryption key (then nothing changed).
   */
  async retire(c: CallContext, appType: string, cause: RemovalCause): Promise<{ ok: true; row: ConnectionRow | null; revocation: string | null } | Failure> {
    for (let round = 0; round < 3; round++) {
      const retirement = await this.prepareRetirement(c, appType);
      if (!retirement.ok) return retirement;
      if (!retirement.value) return { ok: true, row: null, revocation: null };
      await this.#d.refresher.settle(appType);
      if (!this.commitRetirement(retirement.value, cause)) continue; // a refresh rotated meanwhile: take the new pair
      return { ok: true, row: retirement.value.row, revocation: retirement.value.prepared?.id ?? null };
    }
    return CONNECTION_KEPT_CHANGING;
  }

  /**
   * The awaits of ending the App's current generation (after any refresh in flight): the row,
   * its tokens opened and prepared for the revoker. `null` when there is no row; a failure
   * when a stored value names a missing encryption key. Changes nothing.
   */
  async prepareRetirement(c: CallContext, appType: string): Promise<{ ok: true; value: Retirement | null } | Failure> {
    await this.#d.refresher.settle(appType);
    const row = this.#d.store.get(appType);
    if (!row) return { ok: true, value: null };
    const tokens = await this.#openPair(c, row);
    if (tokens && !tokens.ok) return tokens;
    const prepared = tokens ? await this.#d.revoker.prepare(c, appType, tokens.value, row.github_user_id) : null;
    return { ok: true, value: { row, prepared } };
  }

  /**
   * Synchronous: the prepared generation's grant goes to the revoker and its row is removed,
   * iff the row is still exactly the one prepared (`false`, changing nothing, when a refresh
   * or a state change came in between: prepare again). No refresh may be in flight.
   */
  commitRetirement(r: Retirement, cause: RemovalCause): boolean {
    if (!sameStamp(this.#d.store.get(r.row.app_type), r.row)) return false;
    if (r.prepared) this.#d.revoker.enqueue(r.prepared);
    this.#d.store.remove(r.row.app_type, r.row.generation, cause);
    return true;
  }

  /** `DELETE /v1/users/{userId}/connection`. */
  disconnect(c: CallContext): Promise<{ ok: true; githubGrant: GrantOutcome } | Failure> {
    return this.run(async () => {
      const appType = c.app.appType;
      const retired = await this.retire(c, appType, "disconnected");
      if (!retired.ok) return retired;
      if (retired.row) await this.#unlink(c, retired.row, c.userId);
      const githubGrant = combine(await Promise.all(this.#d.revoker.pending(appType).map((id) => this.#d.revoker.attempt(c, id))));
      logEvent({ event: "disconnect", userId: c.userId, appType, outcome: githubGrant });
      return { ok: true, githubGrant };
    });
  }

  /**
   * `DELETE /v1/users/{userId}`: retires every connection, revokes every grant it can, then
   * `wipe` removes the rest of the user's storage (keeping only pending revocations, which
   * name no user). The caller has already called {@link beginDeletion}.
   */
  deleteUser(
    userId: string,
    contextFor: (appType: string) => Promise<{ ok: true; value: CallContext } | Failure>,
    service: ServiceContext,
    wipe: () => Promise<void>,
  ): Promise<{ ok: true; githubGrants: Record<string, GrantOutcome> } | Failure> {
    return this.run(async () => {
      for (const row of this.#d.store.all()) {
        const c = await contextFor(row.app_type);
        if (!c.ok) return c;
        const retired = await this.retire(c.value, row.app_type, "deleted");
        if (!retired.ok) return retired;
        if (retired.row) await this.#unlink(c.value, retired.row, userId);
      }
      const byApp = new Map<string, GrantOutcome[]>();
      await Promise.all(
        this.#d.revoker.pending().map(async (id) => {
          const appType = this.#d.revoker.appTypeOf(id);
          const outcome = await this.#d.revoker.attempt(service, id);
          if (appType) byApp.set(appType, [...(byApp.get(appType) ?? []), outcome]);
        }),
      );
      await wipe();
      const githubGrants = Object.fromEntries([...byApp].map(([app, outcomes]) => [app, combine(outcomes)]));
      logEvent({ event: "delete_user", userId, outcome: "deleted", grants: JSON.stringify(githubGrants) });
      return { ok: true, githubGrants };
    });
  }

  /**
   * The revocation webhook reached this user through the identity index. Acts only if the
   * App's connection is linked to that GitHub user and GitHub confirms the stored token is
   * dead (`GET /user` → 401, or the refresh token is refused). A 2xx means a late or replayed
   * delivery for a grant the user has since re-authorized: nothing changes. When GitHub
   * cannot be reached the revocation is honoured.
   */
  revokedOnGitHub(c: CallContext, githubUserId: string): Promise<RevocationOutcome> {
    return this.run(async () => {
      const appType = c.app.appType;
      const row = this.#d.store.get(appType);
      if (!row || row.github_user_id !== githubUserId || row.status === "revoked") return "ignored";
      if (row.status === "connected" && (await this.#stillAuthorized(c))) {
        logEvent({ event: "revoked_on_github", userId: c.userId, appType, outcome: "still_authorized" });
        return "still_authorized";
      }
      await this.#d.refresher.settle(appType);
      // The check's own refresh, refused, already recorded the revocation (one event).
      const now = this.#d.store.get(appType);
      if (now?.generation === row.generation && now.status === "revoked") return logRevoked(c, appType);
      const broken = this.#d.store.markBroken(appType, { generation: row.generation }, "revoked", "user_revoked");
      if (!broken) return "ignored";
      return logRevoked(c, appType);
    });
  }

  async #stillAuthorized(c: CallContext): Promise<boolean> {
    // A stored access token that has expired is refreshed first; refused, the connection is
    // marked `revoked` at once (not reconnect_required first): the webhook said why.
    const live = await this.#d.refresher.live(c, 0, undefined, "revoked");
    if (!live.ok) return false; // refused refresh (dead grant), or GitHub unreachable: honour the revocation
    const user = await c.provider.getUser(live.accessToken);
    return user.ok;
  }

  /** Both tokens of a row, opened; `null` when it holds none (revoked, reconnect_required, undecryptable). */
  async #openPair(c: CallContext, row: ConnectionRow): Promise<{ ok: true; value: TokenSet } | Failure | null> {
    if (row.status !== "connected" || !row.access_token) return null;
    const access = await this.#d.vault.open(c.keyring, c.userId, row.app_type, "access_token", row.access_token);
    const refresh = row.refresh_token ? await this.#d.vault.open(c.keyring, c.userId, row.app_type, "refresh_token", row.refresh_token) : null;
    if ((!access.ok && access.problem === "missing_key") || (refresh && !refresh.ok && refresh.problem === "missing_key")) return missingKeyFailure();
    if (!access.ok) return null;
    return {
      ok: true,
      value: {
        accessToken: access.value,
        accessTokenExpiresAt: row.access_token_expires_at!,
        refreshToken: refresh?.ok ? refresh.value : null,
        refreshTokenExpiresAt: refresh?.ok ? row.refresh_token_expires_at : null,
      },
    };
  }

  /** Removes the identity-index link after the row is gone; a failure leaves a stale link, which is harmless. */
  async #unlink(c: CallContext, row: ConnectionRow, userId: string): Promise<void> {
    try {
      await identityIndexByKey(this.#d.env, c.provider.identityKey(row.github_user_id)).unlink({ appType: row.app_type, userId });
    } catch (err) {
      logEvent({ event: "index_unlink", level: "warn", userId, appType: row.app_type, detail: String((err as Error)?.message).slice(0, 200) });
    }
  }
}

function logRevoked(c: CallContext, appType: string): "revoked" {
  logEvent({ event: "revoked_on_github", userId: c.userId, appType, outcome: "revoked" });
  return "revoked";
}

/** One answer for several revocations of an App: pending wins, then revoked. */
function combine(outcomes: GrantOutcome[]): GrantOutcome {
  if (outcomes.includes("pending")) return "pending";
  if (outcomes.includes("revoked")) return "revoked";
  return "already_gone";
}
