/**
 * The refresher: **every refresh of a user token happens here**, in {@link Refresher}'s
 * `#refresh`, and every caller that needs a live access token gets it from
 * {@link Refresher.live}.
 *
 * ## Why refreshes cannot race
 *
 * A GitHub refresh token is single use, and a refresh kills the previous access token too.
 * All of a user's traffic reaches one actor, which runs one event at a time until it awaits
 * I/O. Within it:
 *
 * 1. **Single flight.** The decision "needs a refresh" and the join-or-start of the one
 *    in-memory refresh promise per App happen with no `await` in between. The promise is
 *    dropped in `finally`, so a failed refresh never poisons later callers.
 * 2. **No doomed tokens.** While a refresh is in flight, *every* caller joins it, even one
 *    whose needs the stored token would meet: that token is about to be killed. A caller
 *    that read a token and then awaited (a repository check) asks {@link Refresher.isCurrent}
 *    before handing it out, synchronously.
 * 3. **Generations.** A refresh carries the {@link Stamp} it read and writes through
 *    {@link ConnectionStore.storeRotated}, which compares and writes synchronously. A refresh
 *    that finds the stamp changed (a reconnect, a disconnect, a revocation) is superseded: it
 *    writes nothing, hands out nothing, and its callers look again at the current row.
 * 4. **Durable before visible.** GitHub's answer is sealed and written with no I/O in between,
 *    and the output gate holds every response until that write is durable.
 *
 * Lifecycle writers (lifecycle.ts) call {@link Refresher.settle} right before their own
 * synchronous commit, so no refresh of a generation they end is still in flight.
 *
 * `blockConcurrencyWhile` is used for none of this: it would hold a lock across a network
 * call, which the runtime punishes by resetting the object on a timeout.
 */
import { failure, type Failure } from "../contract";
import { CONNECTION_CHANGED, providerFailure, missingKeyFailure, unusableFailure } from "../failures";
import type { Opened } from "../crypto";
import { logEvent } from "../log";
import { sameStamp, type ConnectionRow, type ConnectionStore, type Stamp } from "./connection-store";
import type { CallContext } from "./context";
import type { TokenVault } from "./token-vault";

/** A connected row with its opened access token. */
export interface Live {
  ok: true;
  row: ConnectionRow;
  accessToken: string;
}

/** A refresh that found the connection changed under it: it wrote and hands out nothing. */
const SUPERSEDED = Symbol("superseded");
type RefreshOutcome = Live | Failure | typeof SUPERSEDED;

/** How often `live` looks again after a superseded refresh before giving up (retryable). */
const MAX_ROUNDS = 4;

export class Refresher {
  /** Called with every refresh's outcome, for the audit trail. */
  onRefresh: (appType: string, outcome: string, durationMs: number) => void = () => undefined;
  readonly #inflight = new Map<string, Promise<RefreshOutcome>>();
  readonly #store: ConnectionStore;
  readonly #vault: TokenVault;

  constructor(store: ConnectionStore, vault: TokenVault) {
    this.#store = store;
    this.#vault = vault;
  }

  /** Whether a refresh of the App's connection is in flight. */
  inFlight(appType: string): boolean {
    return this.#inflight.has(appType);
  }

  /** Waits until no refresh of the App's connection is in flight. */
  async settle(appType: string): Promise<void> {
    for (let p = this.#inflight.get(appType); p; p = this.#inflight.get(appType)) await p.catch(() => undefined);
  }

  /**
   * Whether `live` may still be handed out: no refresh is in flight (it would kill the token)
   * and the row is still the one it was read from. Synchronous: call it right before answering.
   */
  isCurrent(live: Live): boolean {
    if (this.#inflight.has(live.row.app_type)) return false;
    const now = this.#store.stamp(live.row.app_type);
    return now !== null && now.generation === live.row.generation && now.version === live.row.version;
  }

  /**
   * A usable access token valid for `minValidityMs` more, refreshing first when needed, or
   * joining the refresh in flight. `stale`: the caller learned that the token of this stamp
   * is dead (GitHub answered 401); refresh unless the pair has changed since. `dead`: what a
   * connection this call finds dead becomes (`revoked` when a revocation webhook is the
   * reason for asking, so the platform hears one event, not reconnect_required then revoked).
   */
  async live(c: CallContext, minValidityMs: number, stale?: Stamp, dead: "reconnect_required" | "revoked" = "reconnect_required"): Promise<Live | Failure> {
    const appType = c.app.appType;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const shared = this.#inflight.get(appType);
      if (shared) {
        const joined = await shared;
        if (joined === SUPERSEDED) continue;
        if (joined.ok && !this.isCurrent(joined)) continue;
        return joined;
      }
      const row = this.#store.get(appType);
      const unusable = unusableFailure(row, c.provider.name);
      if (unusable) return unusable;
      const isStale = stale !== undefined && sameStamp(row, stale);
      if (!isStale && row!.access_token_expires_at! - Date.now() >= minValidityMs) {
        const opened = await this.#vault.openAccess(c.keyring, c.userId, row!);
        if (!opened.ok) {
          const broken = this.#unopenable(c, row!, opened);
          if (broken === SUPERSEDED) continue;
          return broken;
        }
        if (this.#vault.needsReseal(c.keyring, row!.access_token, row!.refresh_token)) await this.#reseal(c, row!, opened.value);
        // The token is the one opened from `row`: it may go out only while the stored pair is
        // still that one (a reseal keeps it; a rotation during the awaits above does not).
        const current = this.#store.get(appType);
        const live: Live = { ok: true, row: current!, accessToken: opened.value };
        if (sameStamp(current, row!) && this.isCurrent(live) && current!.access_token !== null) return live;
        continue;
      }
      // No await between the checks above and starting the shared refresh.
      const mine = this.#refresh(c, row!, dead).finally(() => this.#inflight.delete(appType));
      this.#inflight.set(appType, mine);
      const outcome = await mine;
      if (outcome === SUPERSEDED) continue;
      return outcome;
    }
    return CONNECTION_CHANGED;
  }

  /** THE refresh: spends the stored refresh token once and stores the new pair before anyone sees it. */
  async #refresh(c: CallContext, row: ConnectionRow, dead: "reconnect_required" | "revoked"): Promise<RefreshOutcome> {
    const started = Date.now();
    const appType = c.app.appType;
    const stamp: Stamp = { generation: row.generation, version: row.version };
    if (!row.refresh_token) return this.#broken(c, stamp, "no_refresh_token", dead);
    if (row.refresh_token_expires_at !== null && row.refresh_token_expires_at <= Date.now()) {
      return this.#broken(c, stamp, "refresh_token_expired", dead);
    }
    const opened = await this.#vault.open(c.keyring, c.userId, appType, "refresh_token", row.refresh_token);
    if (!opened.ok) return this.#unopenable(c, row, opened);
    if (!sameStamp(this.#store.get(appType), stamp)) return SUPERSEDED;

    const answer = await c.provider.refresh(c.app, opened.value);

    const log = (outcome: string, detail?: string) => {
      logEvent({ event: "refresh", userId: c.userId, appType, outcome, durationMs: Date.now() - started, detail });
      this.onRefresh(appType, outcome, Date.now() - started);
    };
    if (!sameStamp(this.#store.get(appType), stamp)) {
      log("superseded");
      return SUPERSEDED;
    }
    if (!answer.ok) {
      log(answer.error.kind, answer.error.detail);
      // Only GitHub's explicit "this refresh token is dead" disconnects the user.
      if (answer.error.kind === "bad_grant") return this.#broken(c, stamp, "refresh_token_rejected", dead);
      return providerFailure(answer.error, c.provider.name);
    }
    const pair = await this.#vault.sealPair(c.keyring, c.userId, appType, answer.value);
    const stored = this.#store.storeRotated(appType, stamp, pair);
    if (!stored) {
      log("superseded");
      return SUPERSEDED;
    }
    this.#vault.remember(appType, pair.accessToken, answer.value.accessToken);
    log("refreshed");
    return { ok: true, row: stored, accessToken: answer.value.accessToken };
  }

  /**
   * Re-seals a pair found under an old key as soon as it is read (housekeeping does the same
   * for values nobody reads): compare-and-set, so a refresh meanwhile wins.
   */
  async #reseal(c: CallContext, row: ConnectionRow, accessToken: string): Promise<void> {
    const refresh = row.refresh_token ? await this.#vault.open(c.keyring, c.userId, row.app_type, "refresh_token", row.refresh_token) : null;
    if (refresh && !refresh.ok) return; // left for the refresh to report
    const [access, sealedRefresh] = await Promise.all([
      this.#vault.seal(c.keyring, c.userId, row.app_type, "access_token", accessToken),
      refresh ? this.#vault.seal(c.keyring, c.userId, row.app_type, "refresh_token", refresh.value) : null,
    ]);
    if (this.#store.reseal(row.app_type, row, access, sealedRefresh)) this.#vault.remember(row.app_type, access, accessToken);
  }

  /** A stored token that does not open: a missing key keeps it, a failed tag breaks the connection. */
  #unopenable(c: CallContext, row: ConnectionRow, opened: Extract<Opened, { ok: false }>): Failure | typeof SUPERSEDED {
    if (opened.problem === "missing_key") {
      logEvent({ event: "missing_key", level: "error", userId: c.userId, appType: row.app_type, detail: `key id ${opened.kid}` });
      return missingKeyFailure();
    }
    logEvent({ event: "undecryptable", level: "warn", userId: c.userId, appType: row.app_type });
    return this.#broken(c, { generation: row.generation, version: row.version }, "undecryptable");
  }

  #broken(c: CallContext, stamp: Stamp, reason: "no_refresh_token" | "refresh_token_expired" | "refresh_token_rejected" | "undecryptable", dead: "reconnect_required" | "revoked" = "reconnect_required") {
    const row = dead === "revoked" ? this.#store.markBroken(c.app.appType, stamp, "revoked", "user_revoked") : this.#store.markBroken(c.app.appType, stamp, "reconnect_required", reason);
    return row ? unusableFailure(row, c.provider.name)! : SUPERSEDED;
  }
}
