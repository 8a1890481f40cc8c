/**
 * The agent-side client: what an agent session uses to get the user's token, through a
 * service binding to the broker's `BrokerApi` entrypoint.
 *
 * ```ts
 * import { UserTokenClient, shouldFallBack } from "github-token-broker/client";
 *
 * const tokens = new UserTokenClient({ broker: env.TOKEN_BROKER, userId, appType: "standard" });
 * const result = await tokens.getToken("octo-org/hello-world");
 * if (shouldFallBack(result)) useInstallationToken(result.reason);
 * else git.push({ token: result.token, author: result.committer });
 * ```
 *
 * - Keeps each token until its remaining life (`expiresInSeconds`, counted on this
 *   client's clock) is down to `refreshMarginSeconds` (5 minutes by default), and
 *   asks for a fresh one ahead of that; a token closer to expiry is never handed out.
 * - Coalesces concurrent calls in one session: one broker call per repository at a time.
 * - {@link UserTokenClient.reportRejected} tells the broker GitHub refused a token and
 *   returns the replacement (or the reason there is none).
 * - Never throws for a broker or transport failure: every result is the contract's
 *   {@link TokenResult}, so the caller can switch to the App installation token on `reason`.
 */
import type {
  InstallationPermissions,
  InstallationTokenGrant,
  InstallationTokenRequest,
  InstallationTokenResult,
  Permission,
  RejectedTokenReport,
  TokenGrant,
  TokenRequest,
  TokenResult,
} from "./contract";
import { failure } from "./contract";

export type {
  AuditEntry,
  AuditPage,
  ConnectionEvent,
  ConnectionEventType,
  Failure,
  InstallationPermissions,
  InstallationTokenGrant,
  InstallationTokenResult,
  Permission,
  Reason,
  TokenGrant,
  TokenResult,
} from "./contract";

/** The part of the `BrokerApi` entrypoint the client uses (a service binding satisfies it). */
export interface TokenBrokerBinding {
  getToken(userId: string, request: TokenRequest): Promise<TokenResult>;
  reportRejectedToken(userId: string, report: RejectedTokenReport): Promise<TokenResult>;
}

export interface UserTokenClientOptions {
  broker: TokenBrokerBinding;
  userId: string;
  appType: string;
  /** A cached token is replaced this long before it expires. Default 300 s. */
  refreshMarginSeconds?: number;
  /** Clock, for tests. */
  now?: () => number;
}

export class UserTokenClient {
  readonly #broker: TokenBrokerBinding;
  readonly #userId: string;
  readonly #appType: string;
  readonly #marginMs: number;
  readonly #now: () => number;
  /** Each grant with its expiry on this client's clock (receipt + `expiresInSeconds`). */
  readonly #cache = new Map<string, { grant: TokenGrant; expiresAt: number }>();
  readonly #inflight = new Map<string, Promise<TokenResult>>();

  constructor(options: UserTokenClientOptions) {
    this.#broker = options.broker;
    this.#userId = options.userId;
    this.#appType = options.appType;
    this.#marginMs = (options.refreshMarginSeconds ?? 300) * 1000;
    this.#now = options.now ?? Date.now;
  }

  /** A token for `repository` valid for more than the refresh margin, or why there is none. */
  getToken(repository: string, permission: Permission = "push"): Promise<TokenResult> {
    const key = `${permission} ${repository.toLowerCase()}`;
    const cached = this.#cache.get(key);
    if (cached && cached.expiresAt - this.#marginMs > this.#now()) return Promise.resolve(cached.grant);
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.#fetch(key, repository, permission).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return pending;
  }

  /**
   * GitHub refused `token` (a 401 on a push or an API call): tell the broker, which checks
   * with GitHub and answers a working token or the reason there is none.
   */
  async reportRejected(repository: string, token: string, permission: Permission = "push"): Promise<TokenResult> {
    const key = `${permission} ${repository.toLowerCase()}`;
    if (this.#cache.get(key)?.grant.token === token) this.#cache.delete(key);
    const result = await this.#call(() => this.#broker.reportRejectedToken(this.#userId, { appType: this.#appType, token }));
    if (!result.ok) return result;
    // The broker vouches for the token; the repository check of the original grant stands.
    this.#remember(key, result);
    return result;
  }

  /** Forgets every cached token (for example when the session ends). */
  clear(): void {
    this.#cache.clear();
  }

  async #fetch(key: string, repository: string, permission: Permission): Promise<TokenResult> {
    // Ask for a token that outlives the margin by as much again, so it is cached a while.
    const minValiditySeconds = Math.min(3600, Math.ceil((2 * this.#marginMs) / 1000));
    const result = await this.#call(() =>
      this.#broker.getToken(this.#userId, { appType: this.#appType, repository, permission, minValiditySeconds }),
    );
    if (!result.ok) {
      this.#cache.delete(key);
      return result;
    }
    return this.#remember(key, result);
  }

  #remember(key: string, grant: TokenGrant): TokenResult {
    // Scheduled from the remaining life the broker reported, not from `expiresAt`: this
    // client's clock may differ from the broker's ("one clock").
    const expiresAt = this.#now() + grant.expiresInSeconds * 1000;
    if (expiresAt - this.#marginMs <= this.#now()) {
      // Never hand out a token about to expire: the broker could not give a longer one.
      return failure("github_unavailable", "The broker returned a token too close to expiry.", 5);
    }
    this.#cache.set(key, { grant, expiresAt });
    return grant;
  }

  async #call(fn: () => Promise<TokenResult>): Promise<TokenResult> {
    try {
      return await fn();
    } catch {
      return failure("github_unavailable", "The token broker could not be reached.", 1);
    }
  }
}

/**
 * Whether the caller should use the App installation token instead: any failure. The
 * `reason` says whether the user must act (`revoked`, `reconnect_required`,
 * `not_connected`, `no_repo_access`) or it is worth retrying later (`retryAfterSeconds`).
 */
export function shouldFallBack(result: TokenResult): result is Extract<TokenResult, { ok: false }> {
  return !result.ok;
}

/**
 * Verifies a connection event POSTed by the broker to `EVENTS_URL`: `signature` is the
 * `X-Broker-Signature-256` header (`sha256=<hex HMAC-SHA256 of the raw body>` under
 * `EVENTS_SIGNING_KEY`), checked with Web Crypto's `verify`, which compares in constant time.
 * Verify the raw body as received, before parsing it; deduplicate events on their `id`.
 */
export async function verifyBrokerEvent(body: string, signature: string | null, key: string): Promise<boolean> {
  const hex = /^sha256=([0-9a-f]{64})$/.exec(signature ?? "")?.[1];
  if (!hex || !key) return false;
  const mac = new Uint8Array(32);
  for (let i = 0; i < 32; i++) mac[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  const enc = new TextEncoder();
  const cryptoKey = await crypto.subtle.importKey("raw", enc.encode(key), { name: "HMAC", hash: "SHA-256" }, false, ["verify"]);
  return crypto.subtle.verify("HMAC", cryptoKey, mac, enc.encode(body));
}

// ---- installation tokens (the App's identity) ----

/** The part of the `BrokerApi` entrypoint {@link InstallationTokenClient} uses. */
export interface InstallationTokenBinding {
  getInstallationToken(request: InstallationTokenRequest): Promise<InstallationTokenResult>;
}

/**
 * App installation tokens for an agent session, from the broker (no private key in the
 * session). Like {@link UserTokenClient}: cached until `refreshMarginSeconds` before expiry,
 * measured with `expiresInSeconds` on the local clock (so clock skew does not matter),
 * concurrent calls coalesced, and failures returned, never thrown.
 */
export class InstallationTokenClient {
  readonly #broker: InstallationTokenBinding;
  readonly #appType: string;
  readonly #marginMs: number;
  readonly #now: () => number;
  readonly #cache = new Map<string, { grant: InstallationTokenGrant; until: number }>();
  readonly #inflight = new Map<string, Promise<InstallationTokenResult>>();

  constructor(options: { broker: InstallationTokenBinding; appType: string; refreshMarginSeconds?: number; now?: () => number }) {
    this.#broker = options.broker;
    this.#appType = options.appType;
    this.#marginMs = (options.refreshMarginSeconds ?? 300) * 1000;
    this.#now = options.now ?? Date.now;
  }

  /** A token for `repository` (and `permissions`, default contents + pull requests write). */
  getToken(repository: string, permissions?: InstallationPermissions): Promise<InstallationTokenResult> {
    const key = `${repository.toLowerCase()} ${JSON.stringify(permissions ? Object.entries(permissions).sort() : null)}`;
    const cached = this.#cache.get(key);
    if (cached && cached.until > this.#now()) return Promise.resolve(cached.grant);
    let pending = this.#inflight.get(key);
    if (!pending) {
      pending = this.#fetch(key, repository, permissions).finally(() => this.#inflight.delete(key));
      this.#inflight.set(key, pending);
    }
    return pending;
  }

  async #fetch(key: string, repository: string, permissions?: InstallationPermissions): Promise<InstallationTokenResult> {
    const minValiditySeconds = Math.min(3600, Math.ceil((2 * this.#marginMs) / 1000));
    let result: InstallationTokenResult;
    try {
      result = await this.#broker.getInstallationToken({ appType: this.#appType, repository, permissions, minValiditySeconds });
    } catch {
      return failure("github_unavailable", "The token broker could not be reached.", 1);
    }
    if (!result.ok) {
      this.#cache.delete(key);
      return result;
    }
    const until = this.#now() + result.expiresInSeconds * 1000 - this.#marginMs;
    if (until > this.#now()) this.#cache.set(key, { grant: result, until });
    return result;
  }
}
