/**
 * The caller-side client, published as `github-token-broker/client` (built JS and
 * declarations in `dist/`): what an agent session and the web app use to talk to the broker
 * through a service binding to its `BrokerApi` entrypoint.
 *
 * ```ts
 * import { brokerBinding, shouldFallBack, UserTokenClient } from "github-token-broker/client";
 *
 * const broker = brokerBinding(env.TOKEN_BROKER); // `wrangler types` says `Service`; this types it
 * const tokens = new UserTokenClient({ broker, userId, appType: "standard" });
 * const result = await tokens.getToken("octo-org/hello-world");
 * if (result.ok) git.push({ token: result.token, author: result.committer });
 * else if (shouldFallBack(result)) useInstallationToken(result.reason);
 * else throw new Error(result.message); // invalid_request / unauthorized: a bug in the caller
 * ```
 *
 * - Never throws for a broker or transport failure: a binding that cannot be reached is
 *   `broker_unreachable` (a client-side reason, never confused with GitHub's outages).
 * - {@link shouldFallBack} is false for the caller's own bugs (`invalid_request`,
 *   `unauthorized`): a bug must surface, not silently push as the bot.
 * - {@link UserTokenClient} keeps each token until its remaining life (`expiresInSeconds`,
 *   on this client's clock) is down to `refreshMarginSeconds` (5 minutes by default), and
 *   coalesces concurrent calls of a session into one broker call per repository.
 * - {@link BrokerClient} is the web app's side: connect, the confirmation step, connection
 *   status, disconnect, and session capabilities.
 */
import type {
  AuditPage,
  AuditQuery,
  CapabilityGrant,
  CapabilityRequest,
  ConnectConfirmed,
  ConnectConfirmRequest,
  ConnectionView,
  ConnectRequest,
  ConnectStarted,
  Disconnected,
  Failure,
  InstallationPermissions,
  InstallationTokenGrant,
  InstallationTokenRequest,
  InstallationTokenResult,
  Permission,
  Reason,
  RejectedTokenReport,
  TokenGrant,
  TokenRequest,
  TokenResult,
  UserDeleted,
  UserTokenResult,
} from "./contract.js";

// Every contract type (results, requests, reasons, events, audit entries), for callers.
// Relative imports name the emitted `.js` file, so the declarations resolve under `nodenext` too.
export type * from "./contract.js";

/** A reason only the client produces: the binding itself failed (the broker was not reached). */
export type ClientReason = "broker_unreachable";

/** A failure as the client returns it: the broker's {@link Failure}, or {@link ClientReason}. */
export interface ClientFailure extends Omit<Failure, "reason"> {
  reason: Reason | ClientReason;
}

/** What every client method answers: the broker's success type, or a {@link ClientFailure}. */
export type ClientResult<T> = T | ClientFailure;

/** `GET /connection` as RPC answers it. */
export type ConnectionResult = ({ ok: true } & ConnectionView) | Failure;

/**
 * The `BrokerApi` entrypoint's RPC methods, as a type a caller can use without the broker's
 * source. A `Service<typeof BrokerApi>` satisfies it.
 */
export interface BrokerApiMethods {
  /** With `fallback: "app"` it may answer an installation token (`identity: "app"`). */
  getToken(userId: string, request: TokenRequest): Promise<UserTokenResult>;
  reportRejectedToken(userId: string, report: RejectedTokenReport): Promise<TokenResult>;
  getConnection(userId: string, appType: string): Promise<ConnectionResult>;
  startConnect(userId: string, request: ConnectRequest): Promise<ConnectStarted | Failure>;
  confirmConnect(userId: string, request: ConnectConfirmRequest): Promise<ConnectConfirmed | Failure>;
  disconnect(userId: string, appType: string): Promise<Disconnected | Failure>;
  issueCapability(userId: string, request: CapabilityRequest): Promise<CapabilityGrant | Failure>;
  revokeCapabilities(userId: string, sessionId: string): Promise<{ ok: true; revoked: number } | Failure>;
  getAudit(userId: string, options?: AuditQuery): Promise<AuditPage | Failure>;
  deleteUser(userId: string): Promise<UserDeleted | Failure>;
  getInstallationToken(request: InstallationTokenRequest): Promise<InstallationTokenResult>;
}

/**
 * The binding's HTTP `fetch`: the global `fetch` type of the caller's own program (Workers
 * types, the DOM lib or `@types/node`), so it answers that program's `Response`. A program
 * whose lib declares no `fetch` gets {@link MinimalFetch}: the client's declarations need no
 * lib beyond ES2022.
 */
export type BrokerFetch = typeof globalThis extends { fetch: infer F } ? F : MinimalFetch;

/** {@link BrokerFetch} where no lib declares `fetch`: the parts of it the broker's `/v1` routes use. */
export type MinimalFetch = (
  input: string,
  init?: { method?: string; headers?: Record<string, string>; body?: string },
) => Promise<{ readonly ok: boolean; readonly status: number; json(): Promise<unknown>; text(): Promise<string> }>;

/**
 * The service binding to the broker (`[[services]] ... entrypoint = "BrokerApi"`), typed: the
 * RPC methods and the HTTP `fetch` (`/v1/...` with no bearer token).
 */
export type BrokerService = BrokerApiMethods & { fetch: BrokerFetch };

/** A URL as a string, or anything with an `href` (a WHATWG `URL`), without needing the DOM lib. */
export type UrlInput = string | { readonly href: string };

/**
 * Types a service binding as {@link BrokerService}. `wrangler types` writes a binding to
 * another Worker as plain `Service` (it cannot see the other Worker's class), which has no
 * RPC methods in its type; this is the one place that says what the binding really is.
 */
export function brokerBinding(binding: { fetch: unknown }): BrokerService {
  return binding as unknown as BrokerService;
}

/** The caller's own bugs: falling back would hide them. */
const CALLER_BUGS: ReadonlySet<string> = new Set(["invalid_request", "unauthorized"]);

/**
 * Whether the caller should use the App installation token instead: any failure except the
 * caller's own bugs (`invalid_request`, `unauthorized`; see {@link isCallerBug}). The
 * `reason` says whether the user must act (`not_connected`, `revoked`, `reconnect_required`,
 * `no_repo_access`) or it is worth retrying later (`retryAfterSeconds`: `rate_limited`,
 * `github_unavailable`, `broker_unreachable`, ...).
 */
export function shouldFallBack(result: { ok: true } | ClientFailure): boolean {
  return !result.ok && !CALLER_BUGS.has(result.reason);
}

/** A failure caused by the caller (a malformed request, a wrong credential): fix the caller. */
export function isCallerBug(result: { ok: true } | ClientFailure): boolean {
  return !result.ok && CALLER_BUGS.has(result.reason);
}

/** Calls the binding; a throw (the broker not reached, the call lost) is `broker_unreachable`. */
async function reach<T>(fn: () => Promise<T>): Promise<T | ClientFailure> {
  try {
    return await fn();
  } catch {
    return { ok: false, reason: "broker_unreachable", message: "The token broker could not be reached through its service binding.", retryAfterSeconds: 1 };
  }
}

/** The part of the broker an agent session's {@link UserTokenClient} uses. */
export type TokenBrokerBinding = Pick<BrokerApiMethods, "getToken" | "reportRejectedToken">;

export interface UserTokenClientOptions {
  /** The service binding (see {@link brokerBinding}). */
  broker: TokenBrokerBinding;
  userId: string;
  appType: string;
  /** A cached token is replaced this long before it expires. Default 300 s. */
  refreshMarginSeconds?: number;
  /** Clock, for tests. */
  now?: () => number;
}

/** One agent session's user tokens: cached, refreshed ahead of expiry, coalesced. */
export class UserTokenClient {
  readonly #broker: UserTokenClientOptions["broker"];
  readonly #userId: string;
  readonly #appType: string;
  readonly #marginMs: number;
  readonly #now: () => number;
  /** Each grant with its expiry on this client's clock (receipt + `expiresInSeconds`). */
  readonly #cache = new Map<string, { grant: TokenGrant; expiresAt: number }>();
  readonly #inflight = new Map<string, Promise<ClientResult<TokenGrant>>>();

  constructor(options: UserTokenClientOptions) {
    this.#broker = options.broker;
    this.#userId = options.userId;
    this.#appType = options.appType;
    this.#marginMs = (options.refreshMarginSeconds ?? 300) * 1000;
    this.#now = options.now ?? Date.now;
  }

  /** A token for `repository` valid for more than the refresh margin, or why there is none. */
  getToken(repository: string, permission: Permission = "push"): Promise<ClientResult<TokenGrant>> {
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
  async reportRejected(repository: string, token: string, permission: Permission = "push"): Promise<ClientResult<TokenGrant>> {
    const key = `${permission} ${repository.toLowerCase()}`;
    if (this.#cache.get(key)?.grant.token === token) this.#cache.delete(key);
    const result = await reach(() => this.#broker.reportRejectedToken(this.#userId, { appType: this.#appType, token }));
    if (!result.ok) return result;
    // The broker vouches for the token; the repository check of the original grant stands.
    return this.#remember(key, result);
  }

  /** Forgets every cached token (for example when the session ends). */
  clear(): void {
    this.#cache.clear();
  }

  async #fetch(key: string, repository: string, permission: Permission): Promise<ClientResult<TokenGrant>> {
    // Ask for a token that outlives the margin by as much again, so it is cached a while.
    const minValiditySeconds = Math.min(3600, Math.ceil((2 * this.#marginMs) / 1000));
    const result = await reach(() => this.#broker.getToken(this.#userId, { appType: this.#appType, repository, permission, minValiditySeconds }));
    if (!result.ok) {
      this.#cache.delete(key);
      return result;
    }
    // No `fallback` was asked for, so this is the user's own token; anything else is refused.
    if (result.identity !== "user") return { ok: false, reason: "internal_error", message: "The broker answered a token of another identity." };
    return this.#remember(key, result);
  }

  #remember(key: string, grant: TokenGrant): ClientResult<TokenGrant> {
    // Scheduled from the remaining life the broker reported, not from `expiresAt`: this
    // client's clock may differ from the broker's ("one clock").
    const expiresAt = this.#now() + grant.expiresInSeconds * 1000;
    if (expiresAt - this.#marginMs <= this.#now()) {
      // Never hand out a token about to expire: the broker could not give a longer one.
      return { ok: false, reason: "github_unavailable", message: "The broker returned a token too close to expiry.", retryAfterSeconds: 5 };
    }
    this.#cache.set(key, { grant, expiresAt });
    return grant;
  }
}

/** What the broker's callback put on `returnTo`, read by the web app (see {@link BrokerClient.finishConnect}). */
export type ConnectReturn = { kind: "confirm"; ticket: string } | { kind: "error"; reason: string } | { kind: "none" };

/** Reads `github_connect`, `connect_ticket` and `reason` from the URL the browser came back to. */
export function readConnectReturn(url: UrlInput): ConnectReturn {
  const params = new URL(typeof url === "string" ? url : url.href).searchParams;
  const outcome = params.get("github_connect");
  const ticket = params.get("connect_ticket");
  if (outcome === "confirm" && ticket) return { kind: "confirm", ticket };
  if (outcome === "error") return { kind: "error", reason: params.get("reason") ?? "invalid_state" };
  return { kind: "none" };
}

/** What the web app should offer for a connection: "Connect", "Reconnect", or nothing. */
export function connectionAction(view: { status: ConnectionView["status"] }): "connect" | "reconnect" | "none" {
  if (view.status === "not_connected") return "connect";
  if (view.status === "revoked" || view.status === "reconnect_required") return "reconnect";
  return "none";
}

/**
 * The web app's side of the broker, and whoever issues capabilities to agent sessions. Every
 * method answers a {@link ClientResult}; none throws for a broker or transport failure.
 *
 * **The confirmation step.** GitHub sends a user who already authorized the App straight
 * back with a code, so the OAuth `state` proves only who *started* a connect. The broker
 * connects nothing until the web app confirms the ticket as the user signed in to *that
 * browser session*: pass the session's user id to {@link finishConnect}, never an id read
 * from the URL, or anyone could link their victim's GitHub account to their own user.
 */
export class BrokerClient {
  readonly #broker: BrokerApiMethods;

  constructor(broker: BrokerApiMethods) {
    this.#broker = broker;
  }

  /** Starts a connect: send the browser to `authorizeUrl`. `selectAccount` shows GitHub's account picker. */
  startConnect(userId: string, request: ConnectRequest): Promise<ClientResult<ConnectStarted>> {
    return reach(() => this.#broker.startConnect(userId, request));
  }

  /**
   * Finishes a connect when the browser comes back to `returnTo`. `sessionUserId` is the user
   * signed in to the web app in this browser (from your session cookie). `invalid_ticket`
   * means the link was started by someone else, expired or was already used: nothing was
   * connected; tell the person so.
   */
  async finishConnect(sessionUserId: string, returnedTo: UrlInput): Promise<ClientResult<ConnectConfirmed> | { ok: false; reason: "callback_error"; callbackReason: string; message: string } | null> {
    const back = readConnectReturn(returnedTo);
    if (back.kind === "none") return null;
    if (back.kind === "error") return { ok: false, reason: "callback_error", callbackReason: back.reason, message: "GitHub did not authorize the connection." };
    return reach(() => this.#broker.confirmConnect(sessionUserId, { ticket: back.ticket }));
  }

  /** The connection's state, for the "Connect" / "Reconnect" button (see {@link connectionAction}). */
  getConnection(userId: string, appType: string): Promise<ClientResult<ConnectionResult>> {
    return reach(() => this.#broker.getConnection(userId, appType));
  }

  /** Disconnects and revokes the GitHub grant. */
  disconnect(userId: string, appType: string): Promise<ClientResult<Disconnected>> {
    return reach(() => this.#broker.disconnect(userId, appType));
  }

  /** A session capability for one repository; give the sandbox {@link capabilityRemote} of it. */
  issueCapability(userId: string, request: CapabilityRequest): Promise<ClientResult<CapabilityGrant>> {
    return reach(() => this.#broker.issueCapability(userId, request));
  }

  /** Revokes every capability of one session at once (when the session ends). */
  revokeCapabilities(userId: string, sessionId: string): Promise<ClientResult<{ ok: true; revoked: number }>> {
    return reach(() => this.#broker.revokeCapabilities(userId, sessionId));
  }

  /** The user's audit trail, newest first; pass the answer's `nextBefore` as `before` for older entries. */
  getAudit(userId: string, options: AuditQuery = {}): Promise<ClientResult<AuditPage>> {
    return reach(() => this.#broker.getAudit(userId, options));
  }

  /** Deletes the user: every connection, grant and capability. */
  deleteUser(userId: string): Promise<ClientResult<UserDeleted>> {
    return reach(() => this.#broker.deleteUser(userId));
  }
}

/**
 * The git remote a sandbox uses: `gitRemoteUrl` with the capability as the HTTP password
 * (`https://x:<capability>@broker/git/owner/repo.git`), so plain `git clone` and `git push`
 * work with no credential helper.
 */
export function capabilityRemote(grant: Pick<CapabilityGrant, "gitRemoteUrl" | "capability">): string {
  const url = new URL(grant.gitRemoteUrl);
  url.username = "x";
  url.password = grant.capability;
  return url.toString();
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

/** The part of the broker an {@link InstallationTokenClient} uses. */
export type InstallationTokenBinding = Pick<BrokerApiMethods, "getInstallationToken">;

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
  readonly #inflight = new Map<string, Promise<ClientResult<InstallationTokenGrant>>>();

  constructor(options: { broker: InstallationTokenBinding; appType: string; refreshMarginSeconds?: number; now?: () => number }) {
    this.#broker = options.broker;
    this.#appType = options.appType;
    this.#marginMs = (options.refreshMarginSeconds ?? 300) * 1000;
    this.#now = options.now ?? Date.now;
  }

  /** A token for `repository` (and `permissions`, default contents + pull requests write). */
  getToken(repository: string, permissions?: InstallationPermissions): Promise<ClientResult<InstallationTokenGrant>> {
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

  async #fetch(key: string, repository: string, permissions?: InstallationPermissions): Promise<ClientResult<InstallationTokenGrant>> {
    const minValiditySeconds = Math.min(3600, Math.ceil((2 * this.#marginMs) / 1000));
    const result = await reach(() => this.#broker.getInstallationToken({ appType: this.#appType, repository, permissions, minValiditySeconds }));
    if (!result.ok) {
      this.#cache.delete(key);
      return result;
    }
    const until = this.#now() + result.expiresInSeconds * 1000 - this.#marginMs;
    if (until > this.#now()) this.#cache.set(key, { grant: result, until });
    return result;
  }
}
