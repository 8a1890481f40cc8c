/**
 * The per-user actor: one Durable Object per platform user (`idFromName(userId)`) owns that
 * user's GitHub connections, one per App, in its SQLite storage. **Every refresh happens
 * here**, in {@link UserActor}'s `#refresh`, and nowhere else.
 *
 * ## Why refreshes cannot race
 *
 * A GitHub refresh token is single use. Two callers spending the same one disconnect the
 * user (the loser gets `bad_refresh_token`, and if the winner's answer is then lost, so
 * does everyone). The actor guarantees a refresh token reaches GitHub at most once:
 *
 * 1. All of a user's traffic reaches this one object, which runs one request at a time
 *    until it awaits something.
 * 2. The decision "needs a refresh" and the join-or-start of the shared refresh promise
 *    happen with no `await` in between, so every caller that needs a refresh while one is
 *    in flight awaits that same promise. The promise is dropped in `finally`, so a failed
 *    refresh never poisons later callers.
 * 3. The refresh re-reads storage after every `await`. A connection row carries a
 *    `version`, bumped by every writer that changes the pair or the state (reconnect,
 *    disconnect, revocation); a refresh that finds the version moved yields to that writer.
 * 4. GitHub's answer is sealed and written with no I/O in between (Web Crypto in workerd
 *    completes without yielding to other events), and the output gate holds every response
 *    until that write is durable: no caller sees a token whose pair is not stored.
 *
 * `blockConcurrencyWhile` is used for none of this: it would hold a lock across a network
 * call, which the runtime punishes by resetting the object on a timeout.
 *
 * ## Failures
 *
 * Results cross the RPC boundary as discriminated unions ({@link TokenResult} etc.), since
 * exceptions lose everything but their message on the way. A GitHub outage, timeout or rate
 * limit leaves storage exactly as it was. Only GitHub's explicit rejection of the refresh
 * token (or an undecryptable value) wipes the tokens and asks for a reconnect.
 */
import { DurableObject } from "cloudflare:workers";
import { loadConfig, misconfigured, type AppConfig, type BrokerConfig } from "./config";
import {
  failure,
  rfc3339,
  type CallbackErrorCode,
  type CapabilityGrant,
  type Committer,
  type ConnectionReason,
  type ConnectionView,
  type Failure,
  type GrantOutcome,
  type Permission,
  type TokenResult,
} from "./contract";
import { base64urlEncode, ConfigError, loadKeyring, open, randomString, seal, sealedWithOldKey, sha256, timingSafeEqualStrings, type Keyring } from "./crypto";
import { GitHubClient, type GitHubError, type GitHubUser, type TokenSet } from "./github";
import { mintCapability } from "./capabilities";
import { identityIndex } from "./identity-index";
import { logEvent } from "./log";
import { migrate, USER_ACTOR_MIGRATIONS } from "./schema";

/** A row of `connections` (migrations/user-actor). Times are epoch ms. */
interface ConnectionRow {
  app_type: string;
  status: "connected" | "revoked" | "reconnect_required";
  reason: ConnectionReason | null;
  github_user_id: string;
  github_login: string;
  github_name: string | null;
  access_token: string | null;
  access_token_expires_at: number | null;
  refresh_token: string | null;
  refresh_token_expires_at: number | null;
  connected_at: number;
  updated_at: number;
  revoked_at: number | null;
  version: number;
}

/** A connected row with its decrypted access token. */
interface Live {
  ok: true;
  row: ConnectionRow;
  accessToken: string;
}

/** Everything one call needs: who, which App, the config, the keys, a GitHub client. */
interface CallContext {
  userId: string;
  app: AppConfig;
  config: BrokerConfig;
  keyring: Keyring;
  github: GitHubClient;
}

export interface TokenInput {
  userId: string;
  appType: string;
  /** Validated `owner/name`. */
  repository: string;
  permission: Permission;
  minValiditySeconds: number;
}

export type ConnectCompletion = { ok: true; returnTo: string } | { ok: false; code: CallbackErrorCode; returnTo: string | null };

/** How long a repository-permission answer is reused (per App, GitHub user, repository). */
const REPO_CACHE_MS = 60_000;
const REPO_CACHE_MAX = 512;
/** How long an authorize URL (and its PKCE verifier) stays usable. */
export const CONNECT_TTL_MS = 10 * 60_000;

export class UserActor extends DurableObject<Env> {
  /** The single in-flight refresh per appType; every caller that needs one awaits it. */
  readonly #refreshes = new Map<string, Promise<Live | Failure>>();
  /** Serialises code exchanges (two browser tabs), so the last pair stored is the last issued. */
  #connectQueue: Promise<unknown> = Promise.resolve();
  readonly #repoCache = new Map<string, { push: boolean; pull: boolean; until: number }>();
  /** The user this object belongs to, once read from `meta`. */
  #owner: string | undefined;
  /**
   * The last decrypted access token per appType, keyed by its sealed form: the hot path
   * skips AES-GCM when the stored value has not changed. Memory only, never storage.
   */
  readonly #opened = new Map<string, { sealed: string; token: string }>();

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    migrate(ctx.storage, USER_ACTOR_MIGRATIONS);
  }

  // ------------------------------------------------------------------ RPC surface

  /** A checked token for one repository (`POST /v1/users/{userId}/token`). */
  async token(input: TokenInput): Promise<TokenResult> {
    const started = Date.now();
    const ctx = await this.#context(input.userId, input.appType);
    if (!ctx.ok) return ctx;
    const live = await this.#live(ctx.value, input.minValiditySeconds * 1000);
    let result: TokenResult;
    if (!live.ok) {
      result = live;
    } else {
      const access = await this.#checkRepository(ctx.value, live, input.repository, input.permission, input.minValiditySeconds * 1000);
      result = access.ok ? grantOf(access) : access;
    }
    logEvent({
      event: "token",
      userId: input.userId,
      appType: input.appType,
      outcome: result.ok ? "ok" : result.reason,
      durationMs: Date.now() - started,
    });
    return result;
  }

  /**
   * An agent reports that GitHub refused `token` (`POST /v1/users/{userId}/token/rejected`).
   * A report about a token other than the current one changes nothing. Otherwise the actor
   * asks GitHub whether the token is really dead (`GET /user`): if it is alive, it is
   * returned as it is; if not, the actor refreshes (which also tells revoked from expired).
   */
  async rejected(input: { userId: string; appType: string; token: string }): Promise<TokenResult> {
    const ctx = await this.#context(input.userId, input.appType);
    if (!ctx.ok) return ctx;
    const c = ctx.value;
    const current = await this.#live(c, 0);
    if (!current.ok) return current;
    if (!(await timingSafeEqualStrings(input.token, current.accessToken))) {
      // About an older token: answer with the current state, change nothing.
      return this.#grantIfStillCurrent(c, current);
    }
    const check = await c.github.getUser(current.accessToken);
    let result: TokenResult;
    if (check.ok) {
      result = this.#grantIfStillCurrent(c, current);
    } else if (check.error.kind === "unauthorized") {
      const fresh = await this.#live(c, 0, current.row.version);
      result = fresh.ok ? grantOf(fresh) : fresh;
    } else {
      result = githubFailure(check.error);
    }
    logEvent({ event: "token_rejected", userId: c.userId, appType: c.app.appType, outcome: result.ok ? "ok" : result.reason });
    return result;
  }

  /** `GET /v1/users/{userId}/connection`. */
  async connection(input: { userId: string; appType: string }): Promise<ConnectionView> {
    const row = this.#row(input.appType);
    if (!row) return { status: "not_connected" };
    const view: ConnectionView = {
      status: row.status,
      githubUserId: row.github_user_id,
      githubLogin: row.github_login,
      connectedAt: rfc3339(row.connected_at),
      updatedAt: rfc3339(row.updated_at),
    };
    if (row.access_token_expires_at !== null) view.accessTokenExpiresAt = rfc3339(row.access_token_expires_at);
    if (row.refresh_token_expires_at !== null) view.refreshTokenExpiresAt = rfc3339(row.refresh_token_expires_at);
    if (row.revoked_at !== null) view.revokedAt = rfc3339(row.revoked_at);
    if (row.reason !== null) view.reason = row.reason;
    return view;
  }

  /**
   * Records a pending connect and returns the nonce and PKCE challenge for the authorize
   * URL. The verifier stays here, sealed, until the callback consumes it.
   */
  async beginConnect(input: { userId: string; appType: string; returnTo: string }): Promise<
    { ok: true; nonce: string; codeChallenge: string; expiresAt: number } | Failure
  > {
    const ctx = await this.#context(input.userId, input.appType);
    if (!ctx.ok) return ctx;
    const nonce = randomString(18);
    const verifier = randomString(48);
    const sealedVerifier = await seal(ctx.value.keyring, verifier, { userId: input.userId, appType: input.appType, field: `pkce:${nonce}` });
    const now = Date.now();
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM pending_connects WHERE expires_at <= ?", now);
    sql.exec(
      "INSERT INTO pending_connects (nonce, app_type, code_verifier, return_to, expires_at) VALUES (?, ?, ?, ?, ?)",
      nonce,
      input.appType,
      sealedVerifier,
      input.returnTo,
      now + CONNECT_TTL_MS,
    );
    const codeChallenge = base64urlEncode(await sha256(verifier));
    return { ok: true, nonce, codeChallenge, expiresAt: now + CONNECT_TTL_MS };
  }

  /**
   * Finishes a connect after GitHub's consent screen: consumes the nonce (single use),
   * exchanges the code with the PKCE verifier, reads the GitHub identity, links it in the
   * identity index and stores the sealed pair. `code` is `null` when the user cancelled.
   */
  completeConnect(input: { userId: string; appType: string; nonce: string; code: string | null }): Promise<ConnectCompletion> {
    // Chained so that two tabs finishing at once store their pairs in the order GitHub
    // issued them.
    const run = this.#connectQueue.then(() => this.#completeConnect(input));
    // A connect that throws (an index call failed in transit) must not jam the queue.
    this.#connectQueue = run.catch(() => undefined);
    return run;
  }

  /**
   * `DELETE /v1/users/{userId}/connection`: the local connection is removed whatever GitHub
   * says (the user asked to disconnect), then the grant is revoked at GitHub.
   */
  async disconnect(input: { userId: string; appType: string }): Promise<{ ok: true; githubGrant: GrantOutcome } | Failure> {
    const ctx = await this.#context(input.userId, input.appType);
    if (!ctx.ok) return ctx;
    const outcome = await this.#disconnect(ctx.value);
    logEvent({ event: "disconnect", userId: input.userId, appType: input.appType, outcome });
    return { ok: true, githubGrant: outcome };
  }

  /**
   * `DELETE /v1/users/{userId}`: best-effort revocation of every grant, then every byte of
   * this object's storage deleted. Local deletion happens even when GitHub is down.
   */
  async deleteUser(input: { userId: string }): Promise<{ ok: true; githubGrants: Record<string, GrantOutcome> } | Failure> {
    const grants: Record<string, GrantOutcome> = {};
    const rows = this.ctx.storage.sql.exec<{ app_type: string }>("SELECT app_type FROM connections").toArray();
    await Promise.all(
      rows.map(async ({ app_type }) => {
        const ctx = await this.#context(input.userId, app_type);
        grants[app_type] = ctx.ok ? await this.#disconnect(ctx.value) : "failed";
      }),
    );
    // Nothing of the user remains: connections, pending connects, meta, the schema itself.
    await this.ctx.storage.deleteAlarm();
    await this.ctx.storage.deleteAll();
    this.#repoCache.clear();
    this.#opened.clear();
    this.#owner = undefined;
    // The next call on this object (a re-created user) needs the schema again.
    migrate(this.ctx.storage, USER_ACTOR_MIGRATIONS);
    logEvent({ event: "delete_user", userId: input.userId, outcome: "deleted" });
    return { ok: true, githubGrants: grants };
  }

  /**
   * The revocation webhook reached this user through the identity index. Marks the App's
   * connection `revoked` and wipes its tokens, but only if it is still linked to that GitHub
   * user: a stale index link (the user since connected another account) changes nothing.
   */
  async revokedOnGitHub(input: { userId: string; appType: string; githubUserId: string }): Promise<"revoked" | "ignored"> {
    const row = this.#row(input.appType);
    if (!row || row.github_user_id !== input.githubUserId || row.status === "revoked") return "ignored";
    this.#markBroken(row, "revoked", "user_revoked");
    logEvent({ event: "revoked_on_github", userId: input.userId, appType: input.appType, outcome: "revoked" });
    return "revoked";
  }

  /**
   * Issues a session capability (`POST /v1/users/{userId}/capabilities`) after the same
   * repository check as a token. See src/capabilities.ts for the format and why it is stored.
   */
  async issueCapability(input: TokenInput & { sessionId: string; ttlSeconds: number }): Promise<CapabilityGrant | Failure> {
    const ctx = await this.#context(input.userId, input.appType);
    if (!ctx.ok) return ctx;
    const c = ctx.value;
    const live = await this.#live(c, 0);
    if (!live.ok) return live;
    const checked = await this.#checkRepository(c, live, input.repository, input.permission, 0);
    if (!checked.ok) return checked;
    const row = checked.row;
    const now = Date.now();
    // Never longer than the connection itself can last.
    const expiresAt = Math.min(now + input.ttlSeconds * 1000, row.refresh_token_expires_at ?? now + input.ttlSeconds * 1000);
    const { capability, secretHash } = await mintCapability(input.userId);
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM capabilities WHERE expires_at <= ?", now);
    sql.exec(
      `INSERT INTO capabilities (secret_hash, session_id, app_type, repository, permission, github_user_id, connected_at, issued_at, expires_at)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      secretHash,
      input.sessionId,
      c.app.appType,
      input.repository,
      input.permission,
      row.github_user_id,
      row.connected_at,
      now,
      expiresAt,
    );
    logEvent({ event: "capability_issued", userId: c.userId, appType: c.app.appType, outcome: "ok", sessionId: input.sessionId });
    return {
      ok: true,
      capability,
      expiresAt: rfc3339(expiresAt),
      gitRemoteUrl: `${c.config.publicBaseUrl}/git/${input.repository}.git`,
      committer: committerOf(row),
    };
  }

  /** `DELETE /v1/users/{userId}/capabilities/{sessionId}`: revokes every capability of the session. */
  async revokeCapabilities(input: { userId: string; sessionId: string }): Promise<{ ok: true; revoked: number }> {
    const revoked = this.ctx.storage.sql.exec("DELETE FROM capabilities WHERE session_id = ?", input.sessionId).rowsWritten;
    logEvent({ event: "capability_revoked", userId: input.userId, outcome: String(revoked), sessionId: input.sessionId });
    return { ok: true, revoked };
  }

  /**
   * Redeems a capability for one proxied request: checks it (known, not expired, this
   * repository, enough permission, connection still the one it was issued under) and
   * answers a live user token at this moment, so a refresh by another session never breaks
   * a running one.
   */
  async redeemCapability(input: { userId: string; secretHash: string; repository: string; write: boolean }): Promise<
    { ok: true; token: string; repository: string } | Failure
  > {
    const sql = this.ctx.storage.sql;
    const cap = sql
      .exec<{ app_type: string; repository: string; permission: string; github_user_id: string; connected_at: number; expires_at: number }>(
        "SELECT app_type, repository, permission, github_user_id, connected_at, expires_at FROM capabilities WHERE secret_hash = ?",
        input.secretHash,
      )
      .toArray()[0];
    if (!cap) return failure("invalid_capability", "Unknown or revoked capability.");
    if (cap.expires_at <= Date.now()) {
      sql.exec("DELETE FROM capabilities WHERE secret_hash = ?", input.secretHash);
      return failure("expired_capability", "The capability has expired; ask the broker for a new one.");
    }
    if (cap.repository.toLowerCase() !== input.repository.toLowerCase()) {
      return failure("repository_mismatch", `This capability is for ${cap.repository} only.`);
    }
    if (input.write && cap.permission !== "push") return failure("insufficient_permission", "This capability is read-only.");
    const row = this.#row(cap.app_type);
    // Dead with the connection it was issued under: revoked, disconnected, or replaced.
    if (!row || row.status !== "connected" || row.github_user_id !== cap.github_user_id || row.connected_at !== cap.connected_at) {
      return failure("source_unavailable", "The user's GitHub connection is gone.");
    }
    const ctx = await this.#context(input.userId, cap.app_type);
    if (!ctx.ok) return ctx;
    const live = await this.#live(ctx.value, 120_000);
    if (!live.ok) {
      return live.reason === "revoked" || live.reason === "reconnect_required" || live.reason === "not_connected"
        ? failure("source_unavailable", "The user's GitHub connection is gone.")
        : live;
    }
    // The repository as issued: what is forwarded is exactly what was checked.
    return { ok: true, token: live.accessToken, repository: cap.repository };
  }

  /** Local demo only (`DEMO_MODE`): make the broker see the access token as expired now. */
  async demoExpireAccessToken(input: { appType: string }): Promise<void> {
    if (this.env.DEMO_MODE !== "true") return;
    this.ctx.storage.sql.exec(
      "UPDATE connections SET access_token_expires_at = ?, updated_at = ? WHERE app_type = ? AND status = 'connected'",
      Date.now(),
      Date.now(),
      input.appType,
    );
  }

  // ------------------------------------------------------------------ internals

  async #context(userId: string, appType: string): Promise<{ ok: true; value: CallContext } | Failure> {
    try {
      const config = loadConfig(this.env);
      const app = config.apps.get(appType);
      if (!app) return failure("invalid_request", "unknown appType");
      const keyring = await loadKeyring(this.env.TOKEN_ENCRYPTION_KEYS);
      // The object is named by the user id; remembering it lets us refuse a mismatch
      // (a bug upstream) instead of mixing two users' data.
      if (this.#owner === undefined) {
        const sql = this.ctx.storage.sql;
        this.#owner = sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'user_id'").toArray()[0]?.value;
        if (this.#owner === undefined) {
          sql.exec("INSERT INTO meta (key, value) VALUES ('user_id', ?)", userId);
          this.#owner = userId;
        }
      }
      if (this.#owner !== userId) return failure("invalid_request", "userId does not match this actor");
      return { ok: true, value: { userId, app, config, keyring, github: new GitHubClient(config) } };
    } catch (err) {
      if (err instanceof ConfigError) return misconfigured(err);
      throw err;
    }
  }

  #row(appType: string): ConnectionRow | null {
    const row = this.ctx.storage.sql.exec("SELECT * FROM connections WHERE app_type = ?", appType).toArray()[0];
    return (row as unknown as ConnectionRow | undefined) ?? null;
  }

  /**
   * A usable access token valid for `minValidityMs` more, refreshing first when needed.
   * `staleVersion`: the caller knows the token of that version is dead; refresh unless the
   * pair has changed since.
   */
  #live(c: CallContext, minValidityMs: number, staleVersion?: number): Promise<Live | Failure> {
    const row = this.#row(c.app.appType);
    const unusable = unusableFailure(row);
    if (unusable) return Promise.resolve(unusable);
    const stale = staleVersion !== undefined && row!.version === staleVersion;
    if (!stale && row!.access_token_expires_at! - Date.now() >= minValidityMs) return this.#openAccess(c, row!);
    // No await between the check above and joining or starting the shared refresh.
    let shared = this.#refreshes.get(c.app.appType);
    if (!shared) {
      shared = this.#refresh(c).finally(() => this.#refreshes.delete(c.app.appType));
      this.#refreshes.set(c.app.appType, shared);
    }
    return shared;
  }

  /** Decrypts the stored access token (re-sealing under the primary key when it is old). */
  async #openAccess(c: CallContext, row: ConnectionRow): Promise<Live | Failure> {
    const cached = this.#opened.get(c.app.appType);
    if (cached && cached.sealed === row.access_token && !sealedWithOldKey(c.keyring, row.access_token)) {
      return { ok: true, row, accessToken: cached.token };
    }
    const ctx = { userId: c.userId, appType: c.app.appType, field: "access_token" };
    const token = await open(c.keyring, row.access_token!, ctx);
    if (token === null) return this.#undecryptable(c, row);
    this.#opened.set(c.app.appType, { sealed: row.access_token!, token });
    if (sealedWithOldKey(c.keyring, row.access_token!) || (row.refresh_token && sealedWithOldKey(c.keyring, row.refresh_token))) {
      await this.#reseal(c, row, token);
    }
    return { ok: true, row, accessToken: token };
  }

  /**
   * THE refresh. Spends the stored refresh token once and stores the new pair before
   * anyone sees it. Runs at most once at a time per appType (see {@link #live}).
   */
  async #refresh(c: CallContext): Promise<Live | Failure> {
    const started = Date.now();
    const row = this.#row(c.app.appType);
    const unusable = unusableFailure(row);
    if (unusable) return unusable;
    if (!row!.refresh_token) return this.#markBroken(row!, "reconnect_required", "no_refresh_token");
    if (row!.refresh_token_expires_at !== null && row!.refresh_token_expires_at <= Date.now()) {
      return this.#markBroken(row!, "reconnect_required", "refresh_token_expired");
    }
    const refreshToken = await open(c.keyring, row!.refresh_token, { userId: c.userId, appType: c.app.appType, field: "refresh_token" });
    if (refreshToken === null) return this.#undecryptable(c, row!);

    const answer = await c.github.refresh(c.app, refreshToken);

    const log = (outcome: string, detail?: string) =>
      logEvent({ event: "refresh", userId: c.userId, appType: c.app.appType, outcome, durationMs: Date.now() - started, detail });
    if (!answer.ok) {
      log(answer.error.kind, answer.error.detail);
      const now = this.#row(c.app.appType);
      if (!now || now.version !== row!.version) return this.#afterConflict(c);
      // Only GitHub's explicit "this refresh token is dead" disconnects the user.
      if (answer.error.kind === "bad_grant") return this.#markBroken(now, "reconnect_required", "refresh_token_rejected");
      return githubFailure(answer.error);
    }
    const stored = await this.#storeRefreshed(c, row!, answer.value);
    log(stored.ok ? "refreshed" : "superseded");
    return stored;
  }

  /** Seals and writes a refreshed pair, unless another writer replaced the row meanwhile. */
  async #storeRefreshed(c: CallContext, before: ConnectionRow, tokens: TokenSet): Promise<Live | Failure> {
    const [access, refresh] = await this.#sealPair(c, tokens);
    const row = this.#row(c.app.appType);
    if (!row || row.version !== before.version) return this.#afterConflict(c);
    const now = Date.now();
    this.ctx.storage.sql.exec(
      `UPDATE connections SET access_token = ?, access_token_expires_at = ?, refresh_token = ?, refresh_token_expires_at = ?,
         updated_at = ?, version = version + 1 WHERE app_type = ? AND version = ?`,
      access,
      tokens.accessTokenExpiresAt,
      refresh,
      tokens.refreshTokenExpiresAt,
      now,
      c.app.appType,
      before.version,
    );
    return { ok: true, row: this.#row(c.app.appType)!, accessToken: tokens.accessToken };
  }

  /** What a refresh returns after another writer changed the connection under it. */
  async #afterConflict(c: CallContext): Promise<Live | Failure> {
    const row = this.#row(c.app.appType);
    return unusableFailure(row) ?? this.#openAccess(c, row!);
  }

  #sealPair(c: CallContext, tokens: TokenSet): Promise<[string, string | null]> {
    const base = { userId: c.userId, appType: c.app.appType };
    return Promise.all([
      seal(c.keyring, tokens.accessToken, { ...base, field: "access_token" }),
      tokens.refreshToken === null ? null : seal(c.keyring, tokens.refreshToken, { ...base, field: "refresh_token" }),
    ]);
  }

  /** Re-seals both tokens under the primary key; the pair itself (and `version`) is unchanged. */
  async #reseal(c: CallContext, row: ConnectionRow, accessToken: string): Promise<void> {
    const base = { userId: c.userId, appType: c.app.appType };
    const refreshToken = row.refresh_token ? await open(c.keyring, row.refresh_token, { ...base, field: "refresh_token" }) : null;
    if (row.refresh_token && refreshToken === null) return; // left for the refresh to report
    const [access, refresh] = await this.#sealPair(c, {
      accessToken,
      accessTokenExpiresAt: 0,
      refreshToken,
      refreshTokenExpiresAt: null,
    });
    this.ctx.storage.sql.exec(
      "UPDATE connections SET access_token = ?, refresh_token = ?, updated_at = ? WHERE app_type = ? AND version = ?",
      access,
      refresh,
      Date.now(),
      c.app.appType,
      row.version,
    );
  }

  #undecryptable(c: CallContext, row: ConnectionRow): Failure {
    logEvent({ event: "undecryptable", level: "warn", userId: c.userId, appType: c.app.appType });
    return this.#markBroken(row, "reconnect_required", "undecryptable");
  }

  /** Moves a connection to `revoked` / `reconnect_required` and wipes its tokens. */
  #markBroken(row: ConnectionRow, status: "revoked" | "reconnect_required", reason: ConnectionReason): Failure {
    const now = Date.now();
    this.ctx.storage.sql.exec(
      `UPDATE connections SET status = ?, reason = ?, access_token = NULL, access_token_expires_at = NULL,
         refresh_token = NULL, refresh_token_expires_at = NULL, revoked_at = ?, updated_at = ?, version = version + 1
       WHERE app_type = ?`,
      status,
      reason,
      status === "revoked" ? now : row.revoked_at,
      now,
      row.app_type,
    );
    this.#forgetRepos(row.app_type);
    return unusableFailure(this.#row(row.app_type))!;
  }

  async #checkRepository(
    c: CallContext,
    live: Live,
    repository: string,
    permission: Permission,
    minValidityMs: number,
  ): Promise<Live | Failure> {
    const key = `${c.app.appType}\0${live.row.github_user_id}\0${repository.toLowerCase()}`;
    let perms = this.#repoCache.get(key);
    if (!perms || perms.until <= Date.now()) {
      let answer = await c.github.getRepoPermissions(live.accessToken, repository);
      if (!answer.ok && answer.error.kind === "unauthorized") {
        // GitHub refused a token we thought valid: refresh once (shared) and ask again.
        const fresh = await this.#live(c, minValidityMs, live.row.version);
        if (!fresh.ok) return fresh;
        live = fresh;
        answer = await c.github.getRepoPermissions(live.accessToken, repository);
      }
      if (!answer.ok) {
        if (answer.error.kind !== "not_found" && answer.error.kind !== "forbidden") return githubFailure(answer.error);
        perms = { push: false, pull: false, until: Date.now() + REPO_CACHE_MS };
      } else {
        perms = { ...answer.value, until: Date.now() + REPO_CACHE_MS };
      }
      if (this.#repoCache.size >= REPO_CACHE_MAX) this.#repoCache.delete(this.#repoCache.keys().next().value!);
      this.#repoCache.set(key, perms);
    }
    if (!perms[permission]) {
      return failure("no_repo_access", `The GitHub user has no ${permission} access to ${repository}, or it does not exist for them.`);
    }
    return live;
  }

  #forgetRepos(appType: string): void {
    for (const key of this.#repoCache.keys()) if (key.startsWith(`${appType}\0`)) this.#repoCache.delete(key);
  }

  /** The grant for `live`, provided the connection has not changed since it was read. */
  #grantIfStillCurrent(c: CallContext, live: Live): TokenResult {
    const row = this.#row(c.app.appType);
    return unusableFailure(row) ?? (row!.version === live.row.version ? grantOf(live) : failure("github_unavailable", "The connection changed; try again.", 1));
  }

  async #completeConnect(input: { userId: string; appType: string; nonce: string; code: string | null }): Promise<ConnectCompletion> {
    const sql = this.ctx.storage.sql;
    const pending = sql
      .exec<{ app_type: string; code_verifier: string; return_to: string; expires_at: number }>(
        "SELECT app_type, code_verifier, return_to, expires_at FROM pending_connects WHERE nonce = ?",
        input.nonce,
      )
      .toArray()[0];
    // Consumed before anything else: a state is accepted once, whatever happens next.
    sql.exec("DELETE FROM pending_connects WHERE nonce = ?", input.nonce);
    if (!pending || pending.app_type !== input.appType) return { ok: false, code: "invalid_state", returnTo: null };
    const returnTo = pending.return_to;
    if (pending.expires_at <= Date.now()) return { ok: false, code: "expired_state", returnTo };
    if (input.code === null) return { ok: false, code: "access_denied", returnTo };

    const ctx = await this.#context(input.userId, input.appType);
    if (!ctx.ok) return { ok: false, code: "exchange_failed", returnTo };
    const c = ctx.value;
    const log = (outcome: string, detail?: string) =>
      logEvent({ event: "connect", userId: c.userId, appType: c.app.appType, outcome, detail });
    const verifier = await open(c.keyring, pending.code_verifier, { userId: c.userId, appType: c.app.appType, field: `pkce:${input.nonce}` });
    if (verifier === null) return { ok: false, code: "exchange_failed", returnTo };

    const exchanged = await c.github.exchangeCode(c.app, input.code, verifier);
    if (!exchanged.ok) {
      log(exchanged.error.kind, exchanged.error.detail);
      return { ok: false, code: callbackCode(exchanged.error), returnTo };
    }
    const tokens = exchanged.value;
    if (tokens.refreshToken === null) {
      log("exchange_failed", "no refresh token: the App must have 'Expire user authorization tokens' on");
      await c.github.revokeGrant(c.app, tokens.accessToken);
      return { ok: false, code: "exchange_failed", returnTo };
    }
    const user = await c.github.getUser(tokens.accessToken);
    if (!user.ok) {
      log(user.error.kind, user.error.detail);
      return { ok: false, code: callbackCode(user.error), returnTo };
    }
    await this.#storeConnection(c, tokens, user.value);
    log("connected");
    return { ok: true, returnTo };
  }

  /**
   * Stores a freshly exchanged pair. Order matters for the identity index: the new link is
   * written before the connection, and an old account's link removed after it, so a crash
   * in between leaves at worst a stale link (ignored by {@link revokedOnGitHub}), never a
   * connection the revocation webhook cannot reach.
   */
  async #storeConnection(c: CallContext, tokens: TokenSet, user: GitHubUser): Promise<void> {
    await identityIndex(this.env, user.id).link({ appType: c.app.appType, userId: c.userId });
    const [access, refresh] = await this.#sealPair(c, tokens);
    const before = this.#row(c.app.appType);
    const now = Date.now();
    this.ctx.storage.sql.exec(
      `INSERT INTO connections (app_type, status, reason, github_user_id, github_login, github_name, access_token,
         access_token_expires_at, refresh_token, refresh_token_expires_at, connected_at, updated_at, revoked_at, version)
       VALUES (?, 'connected', NULL, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?)
       ON CONFLICT (app_type) DO UPDATE SET status = 'connected', reason = NULL, github_user_id = excluded.github_user_id,
         github_login = excluded.github_login, github_name = excluded.github_name, access_token = excluded.access_token,
         access_token_expires_at = excluded.access_token_expires_at, refresh_token = excluded.refresh_token,
         refresh_token_expires_at = excluded.refresh_token_expires_at, connected_at = excluded.connected_at,
         updated_at = excluded.updated_at, revoked_at = NULL, version = connections.version + 1`,
      c.app.appType,
      user.id,
      user.login,
      user.name,
      access,
      tokens.accessTokenExpiresAt,
      refresh,
      tokens.refreshTokenExpiresAt,
      now,
      now,
      1,
    );
    this.#forgetRepos(c.app.appType);
    if (before && before.github_user_id !== user.id) {
      await identityIndex(this.env, before.github_user_id).unlink({ appType: c.app.appType, userId: c.userId });
    }
  }

  /** Removes the connection locally, then revokes the grant at GitHub with a live token. */
  async #disconnect(c: CallContext): Promise<GrantOutcome> {
    const appType = c.app.appType;
    const row = this.#row(appType);
    if (!row) return "already_gone";
    // A live token to revoke the grant with: refreshed first if it has expired.
    const live = row.status === "connected" ? await this.#live(c, 0) : null;
    const current = this.#row(appType);
    if (current) {
      this.ctx.storage.sql.exec("DELETE FROM connections WHERE app_type = ?", appType);
      this.#forgetRepos(appType);
      await identityIndex(this.env, current.github_user_id).unlink({ appType, userId: c.userId });
    }
    if (!live || !live.ok) {
      // No live credential for the grant: revoked, expired, or GitHub unreachable.
      return live && !live.ok && (live.reason === "github_unavailable" || live.reason === "rate_limited" || live.reason === "app_misconfigured")
        ? "failed"
        : "already_gone";
    }
    return c.github.revokeGrant(c.app, live.accessToken);
  }
}

/** The failure for a row that cannot give a token, or `null` when it is connected. */
function unusableFailure(row: ConnectionRow | null): Failure | null {
  if (!row) return failure("not_connected", "The user has not connected this GitHub App.");
  if (row.status === "revoked") return failure("revoked", "The user revoked the App's authorization on GitHub; they need to reconnect.");
  if (row.status === "reconnect_required" || row.access_token === null) {
    return failure("reconnect_required", "The user's GitHub connection expired or was rejected; they need to reconnect.");
  }
  return null;
}

function githubFailure(error: GitHubError): Failure {
  switch (error.kind) {
    case "rate_limited":
      return failure("rate_limited", "GitHub rate-limited the user's token.", error.retryAfterSeconds);
    case "app_misconfigured":
      return failure("app_misconfigured", "GitHub rejected the App's client credentials; the user's tokens are kept.");
    case "unavailable":
      return failure("github_unavailable", "GitHub did not answer in time; the stored tokens are untouched.", error.retryAfterSeconds);
    default:
      return failure("github_unavailable", "GitHub gave an unexpected answer; the stored tokens are untouched.", 5);
  }
}

function callbackCode(error: GitHubError): CallbackErrorCode {
  return error.kind === "unavailable" || error.kind === "rate_limited" ? "github_unavailable" : "exchange_failed";
}

function grantOf(live: Live): TokenResult {
  const { row } = live;
  return {
    ok: true,
    token: live.accessToken,
    expiresAt: rfc3339(row.access_token_expires_at!),
    githubUserId: row.github_user_id,
    githubLogin: row.github_login,
    committer: committerOf(row),
  };
}

/** The user's git identity: display name (or login) and GitHub's no-reply address. */
function committerOf(row: ConnectionRow): Committer {
  return { name: row.github_name ?? row.github_login, email: `${row.github_user_id}+${row.github_login}@users.noreply.github.com` };
}
