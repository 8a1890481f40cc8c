/**
 * Session capabilities, the actor's side: issuing one (after the same repository check as a
 * token) and redeeming one for a proxied request. The format and the MAC are
 * src/proxy/capability-token.ts; the rows are capability-store.ts.
 *
 * Which identity a redemption lends is decided here, at the moment of the request
 * ({@link CapabilityIdentity}): the user's live token, or "the App" (the Worker then takes
 * an installation token, src/installations/capability-identity.ts). The user's token is
 * lent only under the generation the capability was issued under.
 */
import { FALLBACK_REASONS, failure, rfc3339, type CapabilityGrant, type CapabilityIdentity, type Committer, type Failure, type Permission } from "../contract";
import { CONNECTION_CHANGED, UNKNOWN_CAPABILITY } from "../failures";
import type { PushPolicy } from "../proxy/ref-policy";
import type { AuditLog } from "./audit-log";
import { CapabilityStore, NO_GENERATION, type CapabilityRow } from "./capability-store";
import type { ConnectionStore } from "./connection-store";
import type { CallContext } from "./context";
import type { Refresher } from "./refresher";
import type { RepoAccess } from "./repo-access";
import { committerOf } from "./token-desk";

/** How long a redemption's token must stay valid (a long clone or push). */
const REDEEM_MIN_VALIDITY_MS = 120_000;
const ROUNDS = 3;

export interface IssueInput {
  repository: string;
  permission: Permission;
  sessionId: string;
  ttlSeconds: number;
  /** The branch policy the git proxy applies to this session's pushes (ref-policy.ts). */
  policy: PushPolicy;
  identity: CapabilityIdentity;
  /** The container the capability is bound to (redeemed only through its egress handler); `null`: unbound. */
  containerId?: string | null;
}

/**
 * A capability that starts out as the App (`app`, or `user_or_app` while the user cannot
 * lend): the Worker has already checked that the installation serves the repository.
 */
export interface AppBinding {
  /** The App's bot, from the installation token the Worker obtained. */
  committer: Committer;
  fallbackReason?: (typeof FALLBACK_REASONS)[number];
}

export interface RedeemInput {
  secretHash: string;
  /**
   * The repository the request names, checked against the capability's; `null` where the
   * request names none of its own (GraphQL, `/user`): the GitHub-shaped surface then judges
   * the request against the repository the redemption answers (src/surface/).
   */
  repository: string | null;
  write: boolean;
  /** `git-upload-pack`, `git-receive-pack`, or `rest`, for the audit trail. */
  service: string;
  /**
   * The App the proxy path names: a GitLab App's appType (`/git/{appType}/...`), or `null`
   * for the GitHub paths. A capability answers only where its App's provider is served, so a
   * GitLab token never goes to GitHub, nor a GitHub token to a GitLab instance.
   */
  appType?: string | null;
  /** The container whose egress handler presents the capability; `null` (or absent) at a public door. */
  containerId?: string | null;
}

export interface RedeemedBase {
  ok: true;
  repository: string;
  sessionId: string;
  policy: PushPolicy;
  permission: Permission;
  /** The capability's App: the proxy forwards to its provider's host. */
  appType: string;
}

/**
 * What a redemption lends: the user's live token, or `app` without a token (the Worker takes
 * the installation token for the repository: the user's actor never holds one).
 */
export type Redeemed = (RedeemedBase & { identity: "user"; token: string }) | (RedeemedBase & { identity: "app"; token: null });

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
      const user = committerOf(row, c.provider);
      const bound = { githubUserId: row.github_user_id, connectedAt: row.connected_at, generation: row.generation };
      return this.#store(c, input, minted, expiresAt, bound, user, input.identity === "user" ? undefined : user);
    }
    return CONNECTION_CHANGED;
  }

  /**
   * Stores a capability that starts out as the App: no connection is needed or lent. The
   * user's identity, where this actor knows it (even from a revoked connection), becomes the
   * co-author.
   */
  issueAsApp(c: CallContext, input: IssueInput, minted: { capability: string; secretHash: string }, app: AppBinding): CapabilityGrant {
    const row = this.#d.store.get(c.app.appType);
    const coAuthor = row ? committerOf(row, c.provider) : undefined;
    const expiresAt = Date.now() + input.ttlSeconds * 1000;
    const bound = { githubUserId: row?.github_user_id ?? "", connectedAt: 0, generation: NO_GENERATION };
    const grant = this.#store(c, input, minted, expiresAt, bound, app.committer, coAuthor);
    return app.fallbackReason ? { ...grant, fallbackReason: app.fallbackReason } : grant;
  }

  /** Stores the row, records it in the audit trail, and answers the grant. */
  #store(
    c: CallContext,
    input: IssueInput,
    minted: { capability: string; secretHash: string },
    expiresAt: number,
    bound: { githubUserId: string; connectedAt: number; generation: string },
    committer: Committer,
    coAuthor: Committer | undefined,
  ): CapabilityGrant {
    const { sessionId, repository, permission, policy, identity } = input;
    const containerId = input.containerId ?? null;
    this.#d.rows.insert({ secretHash: minted.secretHash, sessionId, appType: c.app.appType, repository, permission, ...bound, expiresAt, policy, identity, containerId });
    this.#d.audit.record("capability_issued", c.app.appType, { repository, sessionId, permission, identity });
    const grant: CapabilityGrant = {
      ok: true,
      capability: minted.capability,
      expiresAt: rfc3339(expiresAt),
      gitRemoteUrl: gitRemoteUrl(c, repository, containerId),
      committer,
      branches: policy.branches,
      allowDelete: policy.allowDelete,
      identity,
    };
    if (containerId !== null) grant.containerId = containerId;
    return coAuthor ? { ...grant, coAuthor } : grant;
  }

  /**
   * Redeems a capability for one proxied request: known, not expired, this repository,
   * enough permission, and the connection still the generation it was issued under; then a
   * live token at this moment (joining a refresh in flight), so another session's refresh
   * never breaks a running one and a reconnect never lends another account's token.
   * `contextFor` builds the call context once the capability names its App.
   *
   * Every await here (the context, a refresh) lets a revocation, a disconnect or a reconnect
   * run: the capability row is read again after each, and the answer is made from that
   * reading with no await in between, so a capability revoked before the answer lends nothing.
   */
  async redeem(input: RedeemInput, contextFor: (appType: string) => Promise<{ ok: true; value: CallContext } | Failure>): Promise<Redeemed | Failure> {
    const found = this.#d.rows.find(input.secretHash, input.repository, input.write, input.containerId ?? null);
    if ("ok" in found) return found;
    const gone = failure("source_unavailable", "The user's connection behind this capability is gone.");
    const lendable = (cap: CapabilityRow) => {
      const row = this.#d.store.get(cap.app_type);
      return cap.identity !== "app" && !!row && row.status === "connected" && row.generation === cap.generation;
    };
    if (!lendable(found) && found.identity === "user") return gone;
    const c = await contextFor(found.app_type);
    if (!c.ok) return c;
    if ((input.appType ?? null) !== c.value.provider.pathApp) return failure("repository_mismatch", "This capability is for a repository of another App.");
    for (let round = 0; round < ROUNDS; round++) {
      // Read again after every await: the row may have been revoked meanwhile.
      const cap = this.#again(input, found);
      if ("ok" in cap) return cap;
      if (!lendable(cap)) return cap.identity === "user" ? gone : this.#asApp(cap, input.service);
      const live = await this.#d.refresher.live(c.value, REDEEM_MIN_VALIDITY_MS);
      const now = this.#again(input, found);
      if ("ok" in now) return now;
      // Only what the user alone can fix hands over to the App; an outage is an outage.
      const userGone = !live.ok ? live.reason === "revoked" || live.reason === "reconnect_required" || live.reason === "not_connected" : live.row.generation !== now.generation || !lendable(now);
      if (userGone) return now.identity === "user_or_app" ? this.#asApp(now, input.service) : gone;
      if (!live.ok) return live;
      if (!this.#d.refresher.isCurrent(live)) continue;
      this.#d.audit.recordCoalesced("capability_redeemed", now.app_type, { repository: now.repository, sessionId: now.session_id, service: input.service, identity: "user" });
      // The repository as issued: what is forwarded is exactly what was checked.
      return { ...this.#redeemed(now), identity: "user", token: live.accessToken };
    }
    return CONNECTION_CHANGED;
  }

  /** The capability's row as it is now: revoked, expired or re-issued rows answer their failure. */
  #again(input: RedeemInput, first: CapabilityRow): CapabilityRow | Failure {
    const cap = this.#d.rows.find(input.secretHash, input.repository, input.write, input.containerId ?? null);
    if ("ok" in cap) return cap;
    // A row is never rewritten in place; a different generation is a different grant.
    return cap.generation === first.generation && cap.session_id === first.session_id ? cap : UNKNOWN_CAPABILITY;
  }

  #asApp(cap: CapabilityRow, service: string): Redeemed {
    this.#d.audit.recordCoalesced("capability_redeemed", cap.app_type, { repository: cap.repository, sessionId: cap.session_id, service, identity: "app" });
    return { ...this.#redeemed(cap), identity: "app", token: null };
  }

  #redeemed(cap: CapabilityRow): RedeemedBase {
    return { ok: true, repository: cap.repository, sessionId: cap.session_id, policy: CapabilityStore.policyOf(cap), permission: cap.permission, appType: cap.app_type };
  }
}

/**
 * Where the session points git: the broker's proxy, or, for a container-bound capability, the
 * provider's own URL, which the container's egress handler intercepts.
 */
function gitRemoteUrl(c: CallContext, repository: string, containerId: string | null): string {
  return containerId !== null ? c.provider.gitRemoteUrl(repository) : `${c.config.publicBaseUrl}${c.provider.proxyPath(repository)}`;
}
