/**
 * Repository-scoped user tokens (`POST /v1/users/{userId}/token` with `scope: "repository"`):
 * a user token that reaches one repository only (and only `permissions`, when given), minted
 * from the user's token with `POST /applications/{client_id}/token/scoped`. A leaked scoped
 * token is worth one repository, not everything the user can reach.
 *
 * - **Cached sealed** in table `scoped_tokens`, one per (App, repository, permissions,
 *   generation), and reused while it has `minValiditySeconds` left and was minted from the
 *   connection's current pair (`version`): a scoped token shares its parent's life at GitHub,
 *   so the pair's rotation ends it (the emulator models this; where GitHub is kinder, the
 *   broker only mints a little more often).
 * - **Never outlives its generation.** Lookups match the current generation only. Rows of a
 *   generation that ended (a reconnect, a disconnect, a revocation) are revoked at GitHub one
 *   by one (`DELETE /applications/{client_id}/token`) right after a reconnect and from the
 *   alarm, then forgotten; a reconnect does not revoke the grant, so without this an old
 *   scoped token would live on for its 8 hours.
 * - **Never forgotten.** A token whose pair stopped being current while GitHub minted it (a
 *   reconnect, a disconnect, a refresh) is handed to no one: it goes to the grant revoker as a
 *   single token (`DELETE /applications/{client_id}/token`, retried from the alarm), and the
 *   caller's answer is made from the connection as it is now.
 * - Concurrent callers for the same key share one mint.
 */
import { logEvent } from "../log";
import { singleFlight } from "../single-flight";
import { failure, rfc3339, type Failure, type TokenGrant } from "../contract";
import { providerFailure, missingKeyFailure } from "../failures";
import type { ConnectionStore } from "./connection-store";
import type { CallContext, ServiceContext } from "./context";
import type { GrantRevoker } from "./grant-revoker";
import type { Live } from "./refresher";
import type { TokenVault } from "./token-vault";

/** What a caller asked to scope to (parsed by http/fields.ts); `permissions: null` keeps the user token's permissions. */
export interface ScopeRequest {
  permissions: Record<string, string> | null;
}

interface ScopedRow {
  app_type: string;
  repository: string;
  permissions: string;
  generation: string;
  version: number;
  token: string;
  expires_at: number;
}

type Minted = { ok: true; token: string; expiresAt: number } | Failure;

export class ScopedTokens {
  readonly #sql: SqlStorage;
  readonly #store: ConnectionStore;
  readonly #vault: TokenVault;
  readonly #revoker: GrantRevoker;
  readonly #inflight = new Map<string, Promise<Minted>>();

  constructor(sql: SqlStorage, store: ConnectionStore, vault: TokenVault, revoker: GrantRevoker) {
    this.#sql = sql;
    this.#store = store;
    this.#vault = vault;
    this.#revoker = revoker;
  }

  /**
   * A scoped token for `repository`, from the cache or minted from `live`'s token. The
   * caller checks that `live` is still current afterwards (no doomed tokens).
   */
  get(c: CallContext, live: Live, repository: string, scope: ScopeRequest, minValidityMs: number): Promise<Minted> {
    const perms = scope.permissions ? JSON.stringify(scope.permissions) : "";
    const key = [c.app.appType, repository.toLowerCase(), perms, live.row.generation, live.row.version].join("\0");
    return singleFlight(this.#inflight, key, () => this.#get(c, live, repository, scope, perms, minValidityMs));
  }

  async #get(c: CallContext, live: Live, repository: string, scope: ScopeRequest, perms: string, minValidityMs: number): Promise<Minted> {
    const appType = c.app.appType;
    const repo = repository.toLowerCase();
    const field = `scoped:${live.row.generation}:${repo}:${perms}`;
    const row = this.#sql
      .exec("SELECT * FROM scoped_tokens WHERE app_type = ? AND repository = ? AND permissions = ? AND generation = ?", appType, repo, perms, live.row.generation)
      .toArray()[0] as unknown as ScopedRow | undefined;
    if (row && row.version === live.row.version && row.expires_at - Date.now() >= minValidityMs) {
      const opened = await this.#vault.open(c.keyring, c.userId, appType, field, row.token);
      if (opened.ok) return { ok: true, token: opened.value, expiresAt: row.expires_at };
      if (opened.problem === "missing_key") return missingKeyFailure();
      // Undecryptable: mint a fresh one below.
    }
    const minter = c.provider.scopedTokens;
    // The Worker refuses `scope` for a provider without them; this is the actor's own guard.
    if (!minter) return failure("invalid_request", `scope "repository" is not a ${c.provider.name} feature`);
    const minted = await minter.scopedToken(c.app, live.accessToken, repository, scope.permissions, live.row.access_token_expires_at!);
    if (!minted.ok) {
      if (minted.error.kind === "unauthorized") {
        return failure("github_unavailable", "GitHub did not accept the user's token for a scoped token; try again.", 1);
      }
      if (minted.error.kind === "invalid_request") logEvent({ event: "scoped_token", level: "warn", userId: c.userId, appType, outcome: "invalid_request", detail: minted.error.detail });
      return providerFailure(minted.error, "GitHub");
    }
    const sealed = await this.#vault.seal(c.keyring, c.userId, appType, field, minted.value.token);
    // No await from here: stored only while the connection is still the pair it came from.
    const current = this.#store.get(appType);
    if (!current || current.generation !== live.row.generation || current.version !== live.row.version) {
      // The connection changed while GitHub minted (a reconnect, a disconnect, a refresh): the
      // token is handed to nobody and forgotten by nobody: the revoker ends it at GitHub.
      await this.#orphan(c, minted.value);
      return failure("github_unavailable", "The connection changed while the scoped token was minted; try again.", 1);
    }
    {
      this.#sql.exec(
        `INSERT INTO scoped_tokens (app_type, repository, permissions, generation, version, token, expires_at, created_at)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (app_type, repository, permissions, generation)
         DO UPDATE SET version = excluded.version, token = excluded.token, expires_at = excluded.expires_at, created_at = excluded.created_at`,
        appType,
        repo,
        perms,
        live.row.generation,
        live.row.version,
        sealed,
        minted.value.expiresAt,
        Date.now(),
      );
    }
    return { ok: true, token: minted.value.token, expiresAt: minted.value.expiresAt };
  }

  /** A minted token nobody may have: recorded for revocation, then revoked now if GitHub answers. */
  async #orphan(c: CallContext, minted: { token: string; expiresAt: number }): Promise<void> {
    const prepared = await this.#revoker.prepareToken(c, c.app.appType, minted.token, minted.expiresAt);
    this.#revoker.enqueue(prepared, { scope: "token" });
    await this.#revoker.attempt(c, prepared.id);
  }

  /**
   * Scoped tokens of generations that are no longer current: revoked at GitHub one by one,
   * then forgotten; expired ones are just forgotten. What GitHub could not confirm stays for
   * the next run (the alarm). Idempotent.
   */
  async retireStale(s: ServiceContext, userId: string | null): Promise<void> {
    const now = Date.now();
    this.#sql.exec("DELETE FROM scoped_tokens WHERE expires_at <= ?", now);
    const rows = this.#sql.exec("SELECT * FROM scoped_tokens").toArray() as unknown as ScopedRow[];
    for (const row of rows) {
      const current = this.#store.get(row.app_type);
      if (current && current.generation === row.generation && current.status === "connected") continue;
      const app = s.config.apps.get(row.app_type);
      const forget = () =>
        this.#sql.exec(
          "DELETE FROM scoped_tokens WHERE app_type = ? AND repository = ? AND permissions = ? AND generation = ? AND token = ?",
          row.app_type,
          row.repository,
          row.permissions,
          row.generation,
          row.token,
        );
      if (!app || userId === null) {
        forget();
        continue;
      }
      const opened = await this.#vault.open(s.keyring, userId, row.app_type, `scoped:${row.generation}:${row.repository}:${row.permissions}`, row.token);
      if (!opened.ok) {
        if (opened.problem !== "missing_key") forget();
        continue;
      }
      const outcome = await s.providerFor(app).revokeToken(app, opened.value);
      if (outcome !== "failed") forget();
    }
  }

  /** Whether anything is cached (the alarm keeps running while it is). */
  any(): boolean {
    return this.#sql.exec("SELECT 1 FROM scoped_tokens LIMIT 1").toArray().length > 0;
  }
}

/** The answer for a scoped token: the user grant's identity fields, the scoped token's own expiry. */
export function scopedGrant(base: TokenGrant, minted: { token: string; expiresAt: number }, repository: string, scope: ScopeRequest): TokenGrant {
  const grant: TokenGrant = {
    ...base,
    token: minted.token,
    expiresAt: rfc3339(minted.expiresAt),
    expiresInSeconds: Math.max(0, Math.floor((minted.expiresAt - Date.now()) / 1000)),
    scope: "repository",
    repository,
  };
  if (scope.permissions) grant.permissions = scope.permissions;
  return grant;
}
