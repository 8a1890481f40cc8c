/**
 * Session capabilities, the actor's side: issuing one (after the same repository check as a
 * token) and redeeming one for a proxied request. The format and the MAC are
 * src/proxy/capability-token.ts; the rows are capability-store.ts.
 */
import { failure, rfc3339, type CapabilityGrant, type Failure, type Permission } from "../contract";
import type { PushPolicy } from "../proxy/ref-policy";
import type { AuditLog } from "./audit-log";
import { CapabilityStore } from "./capability-store";
import type { ConnectionStore } from "./connection-store";
import type { CallContext } from "./context";
import type { Refresher } from "./refresher";
import type { RepoAccess } from "./repo-access";
import { committerOf } from "./token-desk";

/** How long a redemption's token must stay valid (a long clone or push). */
const REDEEM_MIN_VALIDITY_MS = 120_000;
const ROUNDS = 3;
const CHANGED = failure("github_unavailable", "The connection changed while the broker was answering; try again.", 1);

export interface IssueInput {
  repository: string;
  permission: Permission;
  sessionId: string;
  ttlSeconds: number;
  /** The branch policy the git proxy applies to this session's pushes (ref-policy.ts). */
  policy: PushPolicy;
}

export interface RedeemInput {
  secretHash: string;
  repository: string;
  write: boolean;
  /** `git-upload-pack`, `git-receive-pack`, or `rest`, for the audit trail. */
  service: string;
}

export interface Redeemed {
  ok: true;
  token: string;
  repository: string;
  sessionId: string;
  policy: PushPolicy;
}

export class Capabilities {
  readonly #d: { rows: CapabilityStore; store: ConnectionStore; refresher: Refresher; repos: RepoAccess; audit: AuditLog };

  constructor(deps: { rows: CapabilityStore; store: ConnectionStore; refresher: Refresher; repos: RepoAccess; audit: AuditLog }) {
    this.#d = deps;
  }

  /** Stores a minted capability once the user's permission on the repository is checked. */
  async issue(c: CallContext, input: IssueInput, minted: { capability: string; secretHash: string }): Promise<CapabilityGrant | Failure> {
    for (let round = 0; round < ROUNDS; round++) {
      const live = await this.#d.refresher.live(c, 0);
      if (!live.ok) return live;
      const checked = await this.#d.repos.check(c, live, input.repository, input.permission, 0);
      if (!checked.ok) return checked;
      if (!this.#d.refresher.isCurrent(checked)) continue;
      const row = checked.row;
      const now = Date.now();
      // Never longer than the connection itself can last.
      const expiresAt = Math.min(now + input.ttlSeconds * 1000, row.refresh_token_expires_at ?? Infinity);
      this.#d.rows.insert({
        secretHash: minted.secretHash,
        sessionId: input.sessionId,
        appType: c.app.appType,
        repository: input.repository,
        permission: input.permission,
        githubUserId: row.github_user_id,
        connectedAt: row.connected_at,
        generation: row.generation,
        expiresAt,
        policy: input.policy,
      });
      this.#d.audit.record("capability_issued", c.app.appType, { repository: input.repository, sessionId: input.sessionId, permission: input.permission });
      return {
        ok: true,
        capability: minted.capability,
        expiresAt: rfc3339(expiresAt),
        gitRemoteUrl: `${c.config.publicBaseUrl}/git/${input.repository}.git`,
        committer: committerOf(row),
        branches: input.policy.branches,
        allowDelete: input.policy.allowDelete,
      };
    }
    return CHANGED;
  }

  /**
   * Redeems a capability for one proxied request: known, not expired, this repository,
   * enough permission, and the connection still the generation it was issued under; then a
   * live token at this moment (joining a refresh in flight), so another session's refresh
   * never breaks a running one and a reconnect never lends another account's token.
   * `contextFor` builds the call context once the capability names its App.
   */
  async redeem(input: RedeemInput, contextFor: (appType: string) => Promise<{ ok: true; value: CallContext } | Failure>): Promise<Redeemed | Failure> {
    const cap = this.#d.rows.find(input.secretHash, input.repository, input.write);
    if ("ok" in cap) return cap;
    const gone = failure("source_unavailable", "The user's GitHub connection is gone.");
    const row = this.#d.store.get(cap.app_type);
    if (!row || row.status !== "connected" || row.generation !== cap.generation) return gone;
    const c = await contextFor(cap.app_type);
    if (!c.ok) return c;
    for (let round = 0; round < ROUNDS; round++) {
      const live = await this.#d.refresher.live(c.value, REDEEM_MIN_VALIDITY_MS);
      if (!live.ok) return live.reason === "revoked" || live.reason === "reconnect_required" || live.reason === "not_connected" ? gone : live;
      if (live.row.generation !== cap.generation) return gone;
      if (!this.#d.refresher.isCurrent(live)) continue;
      this.#d.audit.recordCoalesced("capability_redeemed", cap.app_type, { repository: cap.repository, sessionId: cap.session_id, service: input.service });
      // The repository as issued: what is forwarded is exactly what was checked.
      return { ok: true, token: live.accessToken, repository: cap.repository, sessionId: cap.session_id, policy: CapabilityStore.policyOf(cap) };
    }
    return CHANGED;
  }
}
