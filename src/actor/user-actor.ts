/**
 * `UserActor`: one Durable Object per platform user (`idFromName(userId)`) owns that user's
 * connections, one per App, in its SQLite storage. This class is the RPC surface only; each
 * responsibility lives in its own module:
 *
 * | question | module |
 * | --- | --- |
 * | where is a row written? | connection-store.ts (synchronous, generation-checked) |
 * | where does a refresh happen? | refresher.ts |
 * | where is a connection's lifecycle decided? | lifecycle.ts (disconnect, deletion, revocation) and connect-flow.ts (connect) |
 * | where are tokens sealed? | token-vault.ts |
 * | where is a grant revoked? | grant-revoker.ts |
 * | repository permissions, capabilities, the alarm | repo-access.ts, capability-store.ts, housekeeping.ts |
 *
 * Results cross the RPC boundary as discriminated unions (contract.ts), since exceptions
 * lose everything but their message on the way.
 *
 * The schema is created by the first write path only (`beginConnect`): a lookup for a user
 * who never connected (a forged or stale capability, a stale index link) finds no schema and
 * answers "nothing here" without creating a database.
 */
import { DurableObject } from "cloudflare:workers";
import {
  failure,
  rfc3339,
  type CapabilityGrant,
  type Committer,
  type ConnectConfirmed,
  type ConnectionView,
  type Failure,
  type GrantOutcome,
  type Permission,
  type TokenGrant,
  type TokenResult,
} from "../contract";
import { timingSafeEqualStrings } from "../crypto";
import { githubFailure } from "../failures";
import { logEvent } from "../log";
import { mintCapability } from "../proxy/capability-token";
import type { PushPolicy } from "../proxy/ref-policy";
import { hasSchema, migrate, USER_ACTOR_MIGRATIONS } from "../schema";
import { CapabilityStore } from "./capability-store";
import { ConnectFlow, type CallbackResult } from "./connect-flow";
import { ConnectionStore, type ConnectionRow } from "./connection-store";
import { callContext, serviceContext, type CallContext } from "./context";
import { GrantRevoker } from "./grant-revoker";
import { Housekeeping } from "./housekeeping";
import { Lifecycle, type RevocationOutcome } from "./lifecycle";
import { Refresher, type Live } from "./refresher";
import { RepoAccess } from "./repo-access";
import { ScopedTokens, scopedGrant, type ScopeRequest } from "./scoped-tokens";
import { TokenVault } from "./token-vault";

export interface TokenInput {
  /** Present for `scope: "repository"`: a scoped token instead of the user token. */
  scope?: ScopeRequest | null;
  userId: string;
  appType: string;
  /** Validated `owner/name`. */
  repository: string;
  permission: Permission;
  minValiditySeconds: number;
}

/** How long a capability redemption's token must stay valid (a long clone or push). */
const REDEEM_MIN_VALIDITY_MS = 120_000;

export class UserActor extends DurableObject<Env> {
  readonly #store: ConnectionStore;
  readonly #vault = new TokenVault();
  readonly #refresher: Refresher;
  readonly #repos: RepoAccess;
  readonly #caps: CapabilityStore;
  readonly #revoker: GrantRevoker;
  readonly #lifecycle: Lifecycle;
  readonly #flow: ConnectFlow;
  readonly #housekeeping: Housekeeping;
  readonly #scoped: ScopedTokens;
  /** Whether the schema is known to exist (and be migrated) in this object's storage. */
  #ready = false;
  /** The user this object belongs to, once read from `meta`. */
  #owner: string | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    this.#store = new ConnectionStore(sql);
    this.#refresher = new Refresher(this.#store, this.#vault);
    this.#repos = new RepoAccess(this.#refresher);
    this.#caps = new CapabilityStore(sql);
    this.#scoped = new ScopedTokens(sql, this.#store, this.#vault);
    const objectOwner = `object:${ctx.id.toString()}`;
    this.#revoker = new GrantRevoker(sql, this.#vault, ctx.id.toString());
    const deps = { env, store: this.#store, refresher: this.#refresher, vault: this.#vault, revoker: this.#revoker, caps: this.#caps };
    this.#lifecycle = new Lifecycle(deps);
    this.#flow = new ConnectFlow({ ...deps, sql, lifecycle: this.#lifecycle });
    this.#housekeeping = new Housekeeping({ storage: ctx.storage, store: this.#store, vault: this.#vault, revoker: this.#revoker, caps: this.#caps, flow: this.#flow, objectOwner });
  }

  // ------------------------------------------------------------------ tokens

  /** A checked token for one repository (`POST /v1/users/{userId}/token`). */
  async token(input: TokenInput): Promise<TokenResult> {
    const started = Date.now();
    const c = await this.#read(input.userId, input.appType);
    if (!c.ok) return c;
    const minMs = input.minValiditySeconds * 1000;
    let result: TokenResult = failure("github_unavailable", "The connection changed while the broker was answering; try again.", 1);
    for (let round = 0; round < 3; round++) {
      const live = await this.#refresher.live(c.value, minMs);
      if (!live.ok) {
        result = live;
        break;
      }
      const checked = await this.#repos.check(c.value, live, input.repository, input.permission, minMs);
      if (checked.ok && input.scope && this.#refresher.isCurrent(checked)) {
        // `scope: "repository"` (scoped-tokens.ts): minted from this pair, handed out only while it is current.
        const scoped = await this.#scoped.get(c.value, checked, input.repository, input.scope, minMs);
        if (scoped.ok && !this.#refresher.isCurrent(checked)) continue;
        result = scoped.ok ? scopedGrant(grantOf(checked) as TokenGrant, scoped, input.repository, input.scope) : scoped;
        break;
      }
      if (!checked.ok || this.#refresher.isCurrent(checked)) {
        result = checked.ok ? grantOf(checked) : checked;
        break;
      }
      // A refresh started (or finished) while the repository was checked: that token is doomed.
    }
    logEvent({ event: "token", userId: input.userId, appType: input.appType, outcome: result.ok ? "ok" : result.reason, durationMs: Date.now() - started });
    return result;
  }

  /**
   * An agent reports that GitHub refused `token` (`POST /v1/users/{userId}/token/rejected`).
   * A report about a token other than the current one changes nothing. Otherwise GitHub is
   * asked (`GET /user`): alive → returned as it is; refused → refreshed.
   */
  async rejected(input: { userId: string; appType: string; token: string }): Promise<TokenResult> {
    const c = await this.#read(input.userId, input.appType);
    if (!c.ok) return c;
    let result: TokenResult = failure("github_unavailable", "The connection changed while the broker was answering; try again.", 1);
    for (let round = 0; round < 3; round++) {
      const current = await this.#refresher.live(c.value, 0);
      if (!current.ok) {
        result = current;
        break;
      }
      let answer: Live | Failure = current;
      if (await timingSafeEqualStrings(input.token, current.accessToken)) {
        const check = await c.value.github.getUser(current.accessToken);
        if (!check.ok && check.error.kind === "unauthorized") answer = await this.#refresher.live(c.value, 0, current.row);
        else if (!check.ok) answer = githubFailure(check.error);
      }
      if (!answer.ok || this.#refresher.isCurrent(answer)) {
        result = answer.ok ? grantOf(answer) : answer;
        break;
      }
    }
    logEvent({ event: "token_rejected", userId: input.userId, appType: input.appType, outcome: result.ok ? "ok" : result.reason });
    return result;
  }

  /** `GET /v1/users/{userId}/connection`. */
  async connection(input: { userId: string; appType: string }): Promise<ConnectionView> {
    if (!this.#readable()) return { status: "not_connected" };
    const row = this.#store.get(input.appType);
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

  // ------------------------------------------------------------------ connect

  /** Phase 1 of a connect: see connect-flow.ts. The only path that creates the schema. */
  async beginConnect(input: { userId: string; appType: string; returnTo: string }): Promise<
    { ok: true; nonce: string; codeChallenge: string; expiresAt: number } | Failure
  > {
    this.#writable();
    const owner = this.#claimOwner(input.userId);
    if (owner) return owner;
    const c = await callContext(this.env, input.userId, input.appType);
    if (!c.ok) return c;
    const begun = await this.#flow.begin(c.value, input.returnTo);
    await this.#housekeeping.schedule();
    return { ok: true, ...begun };
  }

  /** Phase 2: the OAuth callback, after the Worker verified the state's MAC. */
  async connectCallback(input: { userId: string; appType: string; nonce: string; code: string | null }): Promise<CallbackResult> {
    const c = await this.#read(input.userId, input.appType);
    if (!c.ok) return { ok: false, code: "invalid_state", returnTo: null };
    const result = await this.#flow.callback(c.value, input.nonce, input.code);
    await this.#housekeeping.schedule();
    return result;
  }

  /** Phase 3: `POST /v1/users/{userId}/connect/confirm`. */
  async confirmConnect(input: { userId: string; ticket: string }): Promise<ConnectConfirmed | Failure> {
    const invalid = failure("invalid_ticket", "The connect ticket is unknown, used, expired, or was issued for another user.");
    if (!this.#readable() || this.#ownerMismatch(input.userId)) return invalid;
    const appType = await this.#flow.ticketApp(input.ticket);
    if (!appType) return invalid;
    const c = await callContext(this.env, input.userId, appType);
    if (!c.ok) return c;
    const result = await this.#flow.confirm(c.value, input.ticket);
    // A reconnect keeps the grant: the previous generation's scoped tokens are revoked one by one.
    if (result.ok) await this.#scoped.retireStale(c.value, input.userId);
    await this.#housekeeping.schedule();
    return result;
  }

  // ------------------------------------------------------------------ lifecycle

  /** `DELETE /v1/users/{userId}/connection`: revoke first; what GitHub cannot confirm stays pending. */
  async disconnect(input: { userId: string; appType: string }): Promise<{ ok: true; githubGrant: GrantOutcome } | Failure> {
    if (!this.#readable()) return { ok: true, githubGrant: "already_gone" };
    const c = await this.#read(input.userId, input.appType);
    if (!c.ok) return c;
    const result = await this.#lifecycle.disconnect(c.value);
    await this.#housekeeping.schedule();
    return result;
  }

  /** `DELETE /v1/users/{userId}`: see {@link Lifecycle.deleteUser}. */
  async deleteUser(input: { userId: string }): Promise<{ ok: true; githubGrants: Record<string, GrantOutcome> } | Failure> {
    // Before any await: a connect in flight must see that a deletion began.
    this.#lifecycle.beginDeletion();
    if (!this.#readable()) return { ok: true, githubGrants: {} };
    if (this.#ownerMismatch(input.userId)) return failure("invalid_request", "userId does not match this actor");
    const service = await serviceContext(this.env);
    if (!service.ok) return service;
    const contextFor = async (appType: string): Promise<{ ok: true; value: CallContext }> => ({
      ok: true,
      value: {
        ...service.value,
        userId: input.userId,
        app: service.value.config.apps.get(appType) ?? { appType, clientId: "", clientSecret: "", webhookSecrets: [] },
      },
    });
    return this.#lifecycle.deleteUser(input.userId, contextFor, service.value, () => this.#wipe());
  }

  /** The revocation webhook reached this user through the identity index. */
  async revokedOnGitHub(input: { userId: string; appType: string; githubUserId: string }): Promise<RevocationOutcome> {
    const c = await this.#read(input.userId, input.appType);
    if (!c.ok) return "ignored";
    return this.#lifecycle.revokedOnGitHub(c.value, input.githubUserId);
  }

  // ------------------------------------------------------------------ capabilities

  /** `POST /v1/users/{userId}/capabilities`, after the same repository check as a token. */
  async issueCapability(input: TokenInput & { sessionId: string; ttlSeconds: number; policy: PushPolicy }): Promise<CapabilityGrant | Failure> {
    const c = await this.#read(input.userId, input.appType);
    if (!c.ok) return c;
    const minted = await mintCapability(this.env, input.userId);
    if (!minted.ok) return minted;
    for (let round = 0; round < 3; round++) {
      const live = await this.#refresher.live(c.value, 0);
      if (!live.ok) return live;
      const checked = await this.#repos.check(c.value, live, input.repository, input.permission, 0);
      if (!checked.ok) return checked;
      if (!this.#refresher.isCurrent(checked)) continue;
      const row = checked.row;
      const now = Date.now();
      // Never longer than the connection itself can last.
      const expiresAt = Math.min(now + input.ttlSeconds * 1000, row.refresh_token_expires_at ?? Infinity);
      this.#caps.insert({
        secretHash: minted.secretHash,
        sessionId: input.sessionId,
        appType: input.appType,
        repository: input.repository,
        permission: input.permission,
        githubUserId: row.github_user_id,
        connectedAt: row.connected_at,
        generation: row.generation,
        expiresAt,
        policy: input.policy,
      });
      await this.#housekeeping.schedule();
      logEvent({ event: "capability_issued", userId: input.userId, appType: input.appType, outcome: "ok", sessionId: input.sessionId });
      return {
        ok: true,
        capability: minted.capability,
        expiresAt: rfc3339(expiresAt),
        gitRemoteUrl: `${c.value.config.publicBaseUrl}/git/${input.repository}.git`,
        committer: committerOf(row),
        branches: input.policy.branches,
        allowDelete: input.policy.allowDelete,
      };
    }
    return failure("github_unavailable", "The connection changed while the broker was answering; try again.", 1);
  }

  /** `DELETE /v1/users/{userId}/capabilities/{sessionId}`. */
  async revokeCapabilities(input: { userId: string; sessionId: string }): Promise<{ ok: true; revoked: number }> {
    const revoked = this.#readable() && !this.#ownerMismatch(input.userId) ? this.#caps.revokeSession(input.sessionId) : 0;
    logEvent({ event: "capability_revoked", userId: input.userId, outcome: String(revoked), sessionId: input.sessionId });
    return { ok: true, revoked };
  }

  /**
   * Redeems a capability for one proxied request: known, not expired, this repository,
   * enough permission, and the connection still the generation it was issued under; then a
   * live token at this moment (joining a refresh in flight), so another session's refresh
   * never breaks a running one and a reconnect never lends another account's token.
   */
  async redeemCapability(input: { userId: string; secretHash: string; repository: string; write: boolean }): Promise<
    { ok: true; token: string; repository: string; policy: PushPolicy } | Failure
  > {
    if (!this.#readable() || this.#ownerMismatch(input.userId)) return failure("invalid_capability", "Unknown or revoked capability.");
    const cap = this.#caps.find(input.secretHash, input.repository, input.write);
    if ("ok" in cap) return cap;
    const gone = failure("source_unavailable", "The user's GitHub connection is gone.");
    const row = this.#store.get(cap.app_type);
    if (!row || row.status !== "connected" || row.generation !== cap.generation) return gone;
    const c = await callContext(this.env, input.userId, cap.app_type);
    if (!c.ok) return c;
    for (let round = 0; round < 3; round++) {
      const live = await this.#refresher.live(c.value, REDEEM_MIN_VALIDITY_MS);
      if (!live.ok) return live.reason === "revoked" || live.reason === "reconnect_required" || live.reason === "not_connected" ? gone : live;
      if (live.row.generation !== cap.generation) return gone;
      // The repository as issued: what is forwarded is exactly what was checked.
      if (this.#refresher.isCurrent(live)) return { ok: true, token: live.accessToken, repository: cap.repository, policy: CapabilityStore.policyOf(cap) };
    }
    return failure("github_unavailable", "The connection changed while the broker was answering; try again.", 1);
  }

  // ------------------------------------------------------------------ housekeeping

  /** See housekeeping.ts. */
  override async alarm(): Promise<void> {
    if (!this.#readable()) return;
    const service = await serviceContext(this.env);
    if (!service.ok) {
      // A configuration problem: try again in an hour rather than spin.
      await this.ctx.storage.setAlarm(Date.now() + 3600_000);
      return;
    }
    await this.#housekeeping.run(service.value, this.#ownerId());
    await this.#scoped.retireStale(service.value, this.#ownerId());
    await this.#housekeeping.schedule();
  }

  // ------------------------------------------------------------------ internals

  /** The call context for a read path; `not_connected` when the object holds nothing. */
  async #read(userId: string, appType: string): Promise<{ ok: true; value: CallContext } | Failure> {
    if (!this.#readable()) return failure("not_connected", "The user has not connected this GitHub App.");
    if (this.#ownerMismatch(userId)) return failure("invalid_request", "userId does not match this actor");
    return callContext(this.env, userId, appType);
  }

  #readable(): boolean {
    if (this.#ready) return true;
    if (!hasSchema(this.ctx.storage)) return false;
    this.#writable();
    return true;
  }

  #writable(): void {
    if (this.#ready) return;
    migrate(this.ctx.storage, USER_ACTOR_MIGRATIONS);
    this.#ready = true;
  }

  #ownerId(): string | null {
    if (this.#owner === undefined) {
      this.#owner = this.ctx.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'user_id'").toArray()[0]?.value;
    }
    return this.#owner ?? null;
  }

  /** The object is named by the user id; a mismatch is a bug upstream, never mixed data. */
  #ownerMismatch(userId: string): boolean {
    const owner = this.#ownerId();
    return owner !== null && owner !== userId;
  }

  #claimOwner(userId: string): Failure | null {
    const owner = this.#ownerId();
    if (owner === null) {
      this.ctx.storage.sql.exec("INSERT INTO meta (key, value) VALUES ('user_id', ?)", userId);
      this.#owner = userId;
      return null;
    }
    return owner === userId ? null : failure("invalid_request", "userId does not match this actor");
  }

  /**
   * Everything of the user goes; pending revocations (which name no user) stay until done.
   * The empty schema is re-created at once (the input gate holds other events across the
   * `deleteAll`), so operations still in flight find nothing instead of a missing table.
   */
  async #wipe(): Promise<void> {
    this.#vault.forget();
    this.#repos.forget();
    this.#owner = undefined;
    if (this.#revoker.pending().length === 0) {
      await this.ctx.storage.deleteAll();
      migrate(this.ctx.storage, USER_ACTOR_MIGRATIONS);
      return;
    }
    const sql = this.ctx.storage.sql;
    this.ctx.storage.transactionSync(() => {
      for (const table of ["connections", "pending_connects", "connect_tickets", "capabilities", "scoped_tokens", "meta"]) sql.exec(`DELETE FROM ${table}`);
    });
    await this.#housekeeping.schedule();
  }
}

function grantOf(live: Live): TokenResult {
  const { row } = live;
  const expiresAt = row.access_token_expires_at!;
  return {
    ok: true,
    identity: "user",
    token: live.accessToken,
    expiresAt: rfc3339(expiresAt),
    expiresInSeconds: Math.max(0, Math.floor((expiresAt - Date.now()) / 1000)),
    githubUserId: row.github_user_id,
    githubLogin: row.github_login,
    committer: committerOf(row),
  };
}

/** The user's git identity: display name (or login) and GitHub's no-reply address. */
function committerOf(row: ConnectionRow): Committer {
  return { name: row.github_name ?? row.github_login, email: `${row.github_user_id}+${row.github_login}@users.noreply.github.com` };
}
