/**
 * `UserActor`: one Durable Object per platform user (`idFromName(userId)`) owns that user's
 * connections, one per App, in its SQLite storage. This class is the RPC surface and the
 * wiring only; each responsibility lives in a module of its own in this folder, named for it
 * (the map is docs/architecture.md).
 *
 * Results cross the RPC boundary as discriminated unions (contract.ts), since exceptions
 * lose everything but their message on the way.
 *
 * The schema is created by the first write paths only (`beginConnect`, and an App capability
 * the authenticated platform asks for): a lookup for a user who never connected (a stale
 * capability, a stale index link) finds no schema and answers "nothing here" without creating
 * one.
 */
import { DurableObject } from "cloudflare:workers";
import { failure, rfc3339, type AuditPage, type Committer, type CapabilityGrant, type ConnectConfirmed, type ConnectionView, type Failure, type GrantOutcome, type Permission, type TokenGrant, type TokenResult } from "../contract";
import { jsonText, type JsonText } from "../json-text";
import { fallbackReasonOf, INVALID_TICKET, OWNER_MISMATCH, UNKNOWN_CAPABILITY } from "../failures";
import { logEvent } from "../log";
import { recordMetric } from "../metrics";
import { mintCapability } from "../proxy/capability-token";
import { hasSchema, migrate, USER_ACTOR_MIGRATIONS } from "../schema";
import { AuditLog } from "./audit-log";
import { Capabilities, type AppBinding, type IssueInput, type RedeemInput, type Redeemed } from "./capabilities";
import { CapabilityStore } from "./capability-store";
import { ConnectFlow, type CallbackResult } from "./connect-flow";
import { ConnectionStore } from "./connection-store";
import { callContext, serviceContext, type CallContext } from "./context";
import { EventOutbox } from "./event-outbox";
import { GrantRevoker } from "./grant-revoker";
import { Housekeeping } from "./housekeeping";
import { Lifecycle, type RevocationOutcome } from "./lifecycle";
import { Refresher } from "./refresher";
import { RepoAccess } from "./repo-access";
import { grantUse, inUseElsewhere, type GrantUse } from "./shared-grants";
import { ScopedTokens, type ScopeRequest } from "./scoped-tokens";
import { committerOf, TokenDesk } from "./token-desk";
import { TokenVault } from "./token-vault";

export interface TokenInput {
  /** Present for `scope: "repository"` (scoped-tokens.ts): a scoped token instead of the user token. */
  scope?: ScopeRequest | null;
  userId: string;
  appType: string;
  /** Validated `owner/name`. */
  repository: string;
  permission: Permission;
  minValiditySeconds: number;
  /** `"app"`: a failure the App may stand in for carries the user's co-author ({@link TokenFailure}). */
  fallback?: "app";
}

/**
 * A token request's failure as the actor answers it. With `fallback: "app"` and a reason the
 * App may stand in for, it carries the user's git identity where the actor knows it (even from
 * a revoked connection), so the fallback (src/installations/fallback.ts) needs no second call.
 * Never sent to a caller as it is: the fallback takes `coAuthor` off.
 */
export type TokenFailure = Failure & { coAuthor?: Committer };

/** A capability to issue (validated by the Worker, http/requests.ts). */
type CapabilityIssue = { userId: string; appType: string } & IssueInput;

type Context = { ok: true; value: CallContext } | Failure;

export class UserActor extends DurableObject<Env> {
  readonly #store: ConnectionStore;
  readonly #vault = new TokenVault();
  readonly #refresher: Refresher;
  readonly #repos: RepoAccess;
  readonly #desk: TokenDesk;
  readonly #scoped: ScopedTokens;
  readonly #caps: CapabilityStore;
  readonly #capabilities: Capabilities;
  readonly #revoker: GrantRevoker;
  readonly #lifecycle: Lifecycle;
  readonly #flow: ConnectFlow;
  readonly #outbox: EventOutbox;
  readonly #audit: AuditLog;
  readonly #housekeeping: Housekeeping;
  /** Whether the schema is known to exist (and be migrated) in this object's storage. */
  #ready = false;
  /** The user this object belongs to, once read from `meta`. */
  #owner: string | undefined;
  /** The alarm time a confirm set for its grace ({@link Housekeeping.release}), until released. */
  #graceAlarm: number | null = null;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    const sql = ctx.storage.sql;
    this.#store = new ConnectionStore(sql);
    this.#refresher = new Refresher(this.#store, this.#vault);
    this.#repos = new RepoAccess(this.#refresher);
    this.#caps = new CapabilityStore(sql);
    this.#audit = new AuditLog(sql, () => this.#ownerId() !== null);
    this.#outbox = new EventOutbox(sql, env);
    this.#capabilities = new Capabilities({ rows: this.#caps, store: this.#store, refresher: this.#refresher, repos: this.#repos, audit: this.#audit });
    const connectedAccount = (appType: string) => {
      const row = this.#store.get(appType);
      return row?.status === "connected" ? row.github_user_id : null;
    };
    this.#revoker = new GrantRevoker(sql, this.#vault, ctx.id.toString(), connectedAccount, (appType, key, account) => inUseElsewhere(env, this.#ownerId(), appType, key, account));
    this.#scoped = new ScopedTokens(sql, this.#store, this.#vault, this.#revoker);
    this.#desk = new TokenDesk(this.#refresher, this.#repos, this.#scoped);
    const deps = { env, store: this.#store, refresher: this.#refresher, vault: this.#vault, revoker: this.#revoker };
    this.#lifecycle = new Lifecycle(deps);
    this.#flow = new ConnectFlow({ ...deps, sql, lifecycle: this.#lifecycle, alarmBy: (at) => this.#alarmBy(at) });
    const kept = { store: this.#store, vault: this.#vault, revoker: this.#revoker, caps: this.#caps, flow: this.#flow, outbox: this.#outbox, audit: this.#audit };
    this.#housekeeping = new Housekeeping({ storage: ctx.storage, ...kept, objectOwner: `object:${ctx.id.toString()}` });
    // Every state change writes its event and audit entry in the same synchronous step.
    this.#store.onChange = (change) => {
      const userId = this.#ownerId() ?? "";
      const queued = this.#outbox.enqueue({ type: change.type, userId, appType: change.appType, githubUserId: change.githubUserId, ...(change.reason ? { reason: change.reason } : {}) });
      this.#audit.record(change.type, change.appType, { githubUserId: change.githubUserId, ...(change.reason ? { reason: change.reason } : {}) });
      // The alarm that delivers the event commits with it, whichever path wrote it (a token
      // request, a redemption): delivery is prompt, and a crash cannot strand it.
      if (queued) this.#housekeeping.soon();
    };
    this.#revoker.onEnqueue = () => this.#housekeeping.soon();
    this.#refresher.onRefresh = (appType, outcome, durationMs) => {
      this.#audit.record("refresh", appType, { outcome });
      recordMetric(env, { operation: "refresh", outcome, appType, durationMs, githubCalls: 1 });
    };
  }

  // ------------------------------------------------------------------ tokens

  /** A checked token for one repository (`POST /v1/users/{userId}/token`). */
  token(input: TokenInput): Promise<TokenResult> {
    return this.#measure("token", input.appType, async (c) => {
      const result = await this.#desk.token(c, input.repository, input.permission, input.minValiditySeconds, input.scope ?? null);
      if (result.ok) this.#audit.recordCoalesced("token_issued", input.appType, { repository: input.repository, identity: "user", scope: input.scope ? "repository" : "user" });
      return result;
    }, input.userId);
  }

  /**
   * {@link token} for the internal API: a grant comes back as its JSON text, which crosses
   * the RPC boundary far cheaper than the object and is the HTTP answer as it is
   * (src/json-text.ts); a failure stays a value, for the fallback and the status.
   */
  async tokenText(input: TokenInput): Promise<JsonText<TokenGrant> | TokenFailure> {
    const result = await this.token(input);
    if (result.ok) return jsonText(result);
    if (input.fallback !== "app" || !fallbackReasonOf(result)) return result;
    const coAuthor = await this.#knownCommitter(input.userId, input.appType);
    return coAuthor ? { ...result, coAuthor } : result;
  }

  /** An agent reports that GitHub refused `token` (`POST /v1/users/{userId}/token/rejected`). */
  rejected(input: { userId: string; appType: string; token: string }): Promise<TokenResult> {
    return this.#measure("token_rejected", input.appType, (c) => this.#desk.rejected(c, input.token), input.userId);
  }

  /** `GET /v1/users/{userId}/connection`. */
  async connection(input: { userId: string; appType: string }): Promise<ConnectionView> {
    const row = this.#readable() ? this.#store.get(input.appType) : null;
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

  /** `GET /v1/users/{userId}/audit`: newest first. */
  async audit(input: { userId: string; limit: number; before: number | null }): Promise<AuditPage | Failure> {
    if (!this.#readable()) return { ok: true, entries: [] };
    if (this.#ownerMismatch(input.userId)) return OWNER_MISMATCH;
    return { ok: true, ...this.#audit.list(input.limit, input.before) };
  }

  // ------------------------------------------------------------------ connect

  /** Phase 1 of a connect: see connect-flow.ts. Creates the schema (as does an App capability). */
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
    if (!this.#readable() || this.#ownerMismatch(input.userId)) return INVALID_TICKET;
    const appType = await this.#flow.ticketApp(input.ticket);
    if (!appType) return INVALID_TICKET;
    return this.#measure("confirm", appType, async (c) => {
      const result = await this.#flow.confirm(c, input.ticket);
      // A reconnect keeps the grant: the previous generation's scoped tokens are revoked one by one.
      if (result.ok) await this.#scoped.retireStale(c, input.userId);
      const grace = this.#graceAlarm;
      this.#graceAlarm = null;
      if (grace !== null) await this.#housekeeping.release(grace);
      return result;
    }, input.userId, true);
  }

  /** A confirm under another user id presented this user's ticket: it is spent here too. */
  async burnTicket(input: { userId: string; ticket: string }): Promise<void> {
    if (this.#readable() && this.#ownerId() === input.userId) await this.#flow.burn(input.ticket);
  }

  // ------------------------------------------------------------------ lifecycle

  /** `DELETE /v1/users/{userId}/connection`: revoke first; what GitHub cannot confirm stays pending. */
  async disconnect(input: { userId: string; appType: string }): Promise<{ ok: true; githubGrant: GrantOutcome } | Failure> {
    if (!this.#readable()) return { ok: true, githubGrant: "already_gone" };
    return this.#measure("disconnect", input.appType, (c) => this.#lifecycle.disconnect(c), input.userId, true);
  }

  /** `DELETE /v1/users/{userId}`: see {@link Lifecycle.deleteUser}. */
  async deleteUser(input: { userId: string }): Promise<{ ok: true; githubGrants: Record<string, GrantOutcome> } | Failure> {
    // Before any await: a connect in flight must see that a deletion began.
    this.#lifecycle.beginDeletion();
    if (!this.#readable()) return { ok: true, githubGrants: {} };
    if (this.#ownerMismatch(input.userId)) return OWNER_MISMATCH;
    const service = await serviceContext(this.env);
    if (!service.ok) return service;
    const contextFor = async (appType: string): Promise<{ ok: true; value: CallContext }> => {
      const app = service.value.config.apps.get(appType) ?? { appType, provider: "github" as const, clientId: "", clientSecret: "", webhookSecrets: [] };
      return { ok: true, value: { ...service.value, userId: input.userId, app, provider: service.value.providerFor(app) } };
    };
    const wipe = () => {
      this.#repos.forget();
      this.#owner = undefined;
      return this.#housekeeping.wipe();
    };
    const result = await this.#lifecycle.deleteUser(input.userId, contextFor, service.value, wipe);
    // The deletion's own events (one `deleted` per connection) go out now if they can.
    await this.#outbox.deliverDue();
    await this.#housekeeping.schedule();
    return result;
  }

  /** The revocation webhook reached this user through the identity index. */
  async revokedOnGitHub(input: { userId: string; appType: string; githubUserId: string }): Promise<RevocationOutcome> {
    const c = await this.#read(input.userId, input.appType);
    if (!c.ok) return "ignored";
    const outcome = await this.#lifecycle.revokedOnGitHub(c.value, input.githubUserId);
    await this.#housekeeping.schedule();
    return outcome;
  }

  // ------------------------------------------------------------------ capabilities

  /** `POST /v1/users/{userId}/capabilities`, after the same repository check as a token. */
  issueCapability(input: CapabilityIssue): Promise<CapabilityGrant | Failure> {
    return this.#measure("capability_issue", input.appType, async (c) => {
      const minted = await mintCapability(this.env, input.userId, input.containerId ?? null);
      if (!minted.ok) return minted;
      const result = await this.#capabilities.issue(c, input, minted);
      if (result.ok) logEvent({ event: "capability_issued", userId: input.userId, appType: input.appType, outcome: "ok", sessionId: input.sessionId });
      return result;
    }, input.userId, true);
  }

  /**
   * A capability that starts out as the App (src/installations/capability-identity.ts has
   * checked the installation): stored even for a user who never connected, since the caller
   * is the authenticated platform and the session's audit trail and early revocation live here.
   */
  async issueCapabilityAsApp(input: CapabilityIssue & { app: AppBinding }): Promise<CapabilityGrant | Failure> {
    this.#writable();
    const claimed = this.#claimOwner(input.userId);
    if (claimed) return claimed;
    // An account deletion that arrives during the awaits below wins: nothing is stored after it.
    const epoch = this.#lifecycle.epoch;
    const c = await callContext(this.env, input.userId, input.appType);
    if (!c.ok) return c;
    const minted = await mintCapability(this.env, input.userId, input.containerId ?? null);
    if (!minted.ok) return minted;
    if (epoch !== this.#lifecycle.epoch) return failure("invalid_request", "The user's account was deleted while the capability was being issued.");
    const grant = this.#capabilities.issueAsApp(c.value, input, minted, input.app);
    await this.#housekeeping.schedule();
    logEvent({ event: "capability_issued", userId: input.userId, appType: input.appType, outcome: "ok", sessionId: input.sessionId });
    return grant;
  }

  /** `DELETE /v1/users/{userId}/capabilities/{sessionId}`. */
  async revokeCapabilities(input: { userId: string; sessionId: string }): Promise<{ ok: true; revoked: number }> {
    const revoked = this.#readable() && !this.#ownerMismatch(input.userId) ? this.#caps.revokeSession(input.sessionId) : 0;
    if (revoked > 0) this.#audit.record("capability_revoked", null, { sessionId: input.sessionId, capabilities: revoked });
    logEvent({ event: "capability_revoked", userId: input.userId, outcome: String(revoked), sessionId: input.sessionId });
    return { ok: true, revoked };
  }

  /** A proxied request presents a capability (already MAC-checked by the Worker): see capabilities.ts. */
  async redeemCapability(input: RedeemInput & { userId: string }): Promise<Redeemed | Failure> {
    if (!this.#readable() || this.#ownerMismatch(input.userId)) return UNKNOWN_CAPABILITY;
    const started = Date.now();
    let context: CallContext | null = null;
    const result = await this.#capabilities.redeem(input, async (appType) => {
      const c = await callContext(this.env, input.userId, appType);
      if (c.ok) context = c.value;
      return c;
    });
    const c = context as CallContext | null;
    recordMetric(this.env, { operation: "capability_redeem", outcome: result.ok ? "ok" : result.reason, appType: c?.app.appType ?? "", durationMs: Date.now() - started, githubCalls: c?.provider.calls ?? 0 });
    return result;
  }

  /**
   * Another actor's grant revoker asks before revoking the grant of `account`: `in_use` when
   * this user's connection of `appType` is that account's, `connecting` while a confirm of the
   * App is between its exchange and its stored generation (it may be obtaining that grant).
   */
  async grantInUse(input: { appType: string; account: string }): Promise<GrantUse> {
    return this.#readable() ? grantUse(this.#store, this.#revoker, input.appType, input.account) : "free";
  }

  /** The git proxy read a push's ref updates: the audit trail records them and what happened. */
  async recordPush(input: { userId: string; sessionId: string; repository: string; refs: string[]; outcome: "forwarded" | "refused" }): Promise<void> {
    // Only for the owner: a report landing after the account's deletion records nothing.
    if (!this.#readable() || this.#ownerId() !== input.userId) return;
    this.#audit.record("capability_redeemed", null, {
      repository: input.repository,
      sessionId: input.sessionId,
      service: "git-receive-pack",
      refs: input.refs.slice(0, 50),
      outcome: input.outcome,
    });
  }

  // ------------------------------------------------------------------ housekeeping

  /** See housekeeping.ts. */
  override async alarm(): Promise<void> {
    // Checked afresh: an alarm may outlive the storage it was set for.
    this.#ready = false;
    if (!this.#readable()) return;
    const service = await serviceContext(this.env);
    if (!service.ok) {
      // A configuration problem: try again in an hour rather than spin.
      await this.ctx.storage.setAlarm(Date.now() + 3600_000);
      return;
    }
    await this.#housekeeping.run(service.value, this.#ownerId());
    if (!hasSchema(this.ctx.storage)) return; // emptied by an account deletion meanwhile
    await this.#scoped.retireStale(service.value, this.#ownerId());
    await this.#housekeeping.schedule();
  }

  // ------------------------------------------------------------------ internals

  async #alarmBy(at: number): Promise<void> {
    const current = await this.ctx.storage.getAlarm();
    if (current === null || current > at) {
      this.#graceAlarm = at;
      await this.ctx.storage.setAlarm(at);
    }
  }

  /**
   * Runs one operation for one App: its context, a metric data point (operation, outcome,
   * App, duration, GitHub calls), and (for writers) the alarm for what it left to do.
   */
  async #measure<T extends { ok: boolean; reason?: string }>(operation: string, appType: string, fn: (c: CallContext) => Promise<T | Failure>, userId: string, writes = false): Promise<T | Failure> {
    const started = Date.now();
    const c = await this.#read(userId, appType);
    const result = c.ok ? await fn(c.value) : c;
    if (writes) await this.#housekeeping.schedule();
    const outcome = result.ok ? "ok" : String(result.reason);
    recordMetric(this.env, { operation, outcome, appType, durationMs: Date.now() - started, githubCalls: c.ok ? c.value.provider.calls : 0 });
    // A token handed out is counted by the metric and the audit trail; the log keeps failures.
    if (operation === "token" && outcome !== "ok") logEvent({ event: "token", userId, appType, outcome, durationMs: Date.now() - started });
    return result;
  }

  /** The user's git identity for a `Co-authored-by:` trailer, where this actor knows it (a revoked connection included). */
  async #knownCommitter(userId: string, appType: string): Promise<Committer | null> {
    const c = await this.#read(userId, appType);
    const row = c.ok ? this.#store.get(appType) : null;
    return c.ok && row ? committerOf(row, c.value.provider) : null;
  }

  /** The call context for a read path; `not_connected` when the object holds nothing. */
  async #read(userId: string, appType: string): Promise<Context> {
    if (!this.#readable()) return failure("not_connected", "The user has not connected this App.");
    if (this.#ownerMismatch(userId)) return OWNER_MISMATCH;
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
    if (this.#owner === undefined && !this.#readable()) return null;
    this.#owner ??= this.ctx.storage.sql.exec<{ value: string }>("SELECT value FROM meta WHERE key = 'user_id'").toArray()[0]?.value;
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
    return owner === userId ? null : OWNER_MISMATCH;
  }
}
