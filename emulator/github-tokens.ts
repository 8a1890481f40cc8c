/**
 * The GitHub emulator's user tokens: authorization codes, access and refresh tokens (and the
 * repository-scoped tokens cut from them), grants made on the consent screen, and per grant
 * what ended its tokens. The truth the tests check; the HTTP side is emulator/github-oauth.ts.
 */
import { randomToken } from "./encoding.ts";
import type { EmulatorSettings, EmulatorUser } from "./github-host.ts";

export interface TokenRecord {
  clientId: string;
  userId: number;
  expiresAt: number;
  alive: boolean;
  /** Access and refresh token issued together share a pair id. */
  pairId: number;
  /** A refresh token spent by a refresh (as opposed to revoked or expired). */
  rotated?: boolean;
  /** What ended it, and the arrival sequence number of the request that did. */
  killedBy?: { cause: "rotation" | "revocation"; seq: number };
  /**
   * A scoped token (`POST /applications/{client_id}/token/scoped`): only these repositories
   * (lower-case `owner/name`) and, when given, these permissions. It shares its parent's pair
   * and expiry, so the parent's rotation and the grant's revocation kill it too.
   */
  scope?: { repositories: string[]; permissions: Record<string, string> | null };
}

export interface TokenState {
  alive: boolean;
  pairId: number;
  userId: number;
  clientId: string;
  /** Why it died (rotation or revocation) and the arrival number of the request that killed it. */
  killedBy?: { cause: "rotation" | "revocation"; seq: number };
}

/** An authorization code (both emulators): bound to client, redirect and PKCE challenge; single use. */
export interface CodeRecord {
  clientId: string;
  userId: number;
  redirectUri: string;
  codeChallenge: string | null;
  expiresAt: number;
  used: boolean;
}

/** Per grant (App and user): the events that can legitimately end a connection, and reuses. */
export interface GrantHistory {
  /** Refreshes that rotated the pair but whose answer was never delivered. */
  droppedRotations: number;
  /** Grant revocations ("Revoke" in the user's settings, or `DELETE .../grant`). */
  revocations: number;
  /** Refresh attempts with a refresh token already spent by an earlier refresh. */
  spentTokenReuses: number;
}

/** The parts of a snapshot this module keeps (see `EmulatorSnapshot`). */
export interface TokensSnapshot {
  accessTokens: [string, TokenRecord][];
  refreshTokens: [string, TokenRecord][];
  nextPair: number;
  history: [string, GrantHistory][];
  authorizations: [string, number][];
}

/** What the token store reads from the emulator. */
export interface TokensHost {
  now(): number;
  readonly settings: EmulatorSettings;
  readonly users: ReadonlyMap<number, EmulatorUser>;
}

export class GitHubTokens {
  readonly access = new Map<string, TokenRecord>();
  readonly refresh = new Map<string, TokenRecord>();
  readonly codes = new Map<string, CodeRecord>();
  #nextPair = 1;
  /** Per `clientId:userId`: rotations whose answer was dropped, and grant revocations. */
  readonly #history = new Map<string, GrantHistory>();
  /**
   * Grants made on the consent screen: `clientId:userId` → the user's revocation count at the
   * time. The grant stands while no revocation came after it (see {@link hasAuthorized}).
   */
  readonly #authorizations = new Map<string, number>();
  readonly #host: TokensHost;

  constructor(host: TokensHost) {
    this.#host = host;
  }

  /** The next pair id (a scoped token's `id`). */
  get nextPair(): number {
    return this.#nextPair;
  }

  reset(): void {
    this.access.clear();
    this.refresh.clear();
    this.codes.clear();
    this.#history.clear();
    this.#authorizations.clear();
  }

  /** Issues an authorization code as if `userId` clicked "Authorize" on the consent page. */
  authorize(params: { clientId: string; userId: number; redirectUri: string; codeChallenge?: string | null }): string {
    const code = randomToken("");
    this.codes.set(code, {
      clientId: params.clientId,
      userId: params.userId,
      redirectUri: params.redirectUri,
      codeChallenge: params.codeChallenge ?? null,
      expiresAt: this.#host.now() + 600_000,
      used: false,
    });
    return code;
  }

  /** Issues a pair directly (no code), for seeding; returns the tokens as GitHub would. */
  issuePair(clientId: string, userId: number): { accessToken: string; refreshToken: string | null; pairId: number } {
    const pairId = this.#nextPair++;
    const now = this.#host.now();
    const settings = this.#host.settings;
    const accessToken = randomToken("ghu_");
    this.access.set(accessToken, { clientId, userId, pairId, alive: true, expiresAt: now + settings.accessTokenExpiresIn * 1000 });
    let refreshToken: string | null = null;
    if (settings.expiringTokens) {
      refreshToken = randomToken("ghr_");
      this.refresh.set(refreshToken, { clientId, userId, pairId, alive: true, expiresAt: now + settings.refreshTokenExpiresIn * 1000 });
    }
    return { accessToken, refreshToken, pairId };
  }

  /** The truth about a token record: alive (usable now) or not, and its pair. */
  state(rec: TokenRecord | undefined): TokenState | null {
    if (!rec) return null;
    const state: TokenState = { alive: this.live(rec), pairId: rec.pairId, userId: rec.userId, clientId: rec.clientId };
    if (rec.killedBy) state.killedBy = rec.killedBy;
    return state;
  }

  /** Not killed and not expired. */
  live(rec: TokenRecord): boolean {
    return rec.alive && rec.expiresAt > this.#host.now();
  }

  /** The live tokens of one grant in `map` (`scoped`: only repository-scoped ones). */
  liveOf(map: Map<string, TokenRecord>, clientId: string, userId: number, scoped: boolean): string[] {
    const out: string[] = [];
    for (const [token, rec] of map) {
      if ((!scoped || rec.scope) && rec.clientId === clientId && rec.userId === userId && this.live(rec)) out.push(token);
    }
    return out;
  }

  /** What happened to a grant that can legitimately end a connection. */
  history(clientId: string, userId: number): GrantHistory {
    return { ...(this.#history.get(`${clientId}:${userId}`) ?? emptyHistory()) };
  }

  record(clientId: string, userId: number, what: keyof GrantHistory): void {
    const key = `${clientId}:${userId}`;
    const entry = this.#history.get(key) ?? emptyHistory();
    entry[what]++;
    this.#history.set(key, entry);
  }

  /** Kills every live token of the grant, as killed by revocation at arrival `seq`. */
  revokeGrant(clientId: string, userId: number, seq: number): void {
    this.record(clientId, userId, "revocations");
    for (const map of [this.access, this.refresh]) {
      for (const rec of map.values()) {
        if (rec.clientId !== clientId || rec.userId !== userId || !rec.alive) continue;
        rec.alive = false;
        rec.killedBy = { cause: "revocation", seq };
      }
    }
  }

  /** Records that the user granted the App on the consent screen. */
  grant(clientId: string, userId: number): void {
    this.#authorizations.set(`${clientId}:${userId}`, this.history(clientId, userId).revocations);
  }

  /** Whether `userId` authorized the App and no revocation came since. */
  hasAuthorized(clientId: string, userId: number): boolean {
    const at = this.#authorizations.get(`${clientId}:${userId}`);
    return at !== undefined && at === this.history(clientId, userId).revocations;
  }

  /** The live record of a request's `Authorization: token|Bearer` user token, or `null`. */
  bearer(request: Request): TokenRecord | null {
    const m = /^(?:token|bearer) (\S+)$/i.exec(request.headers.get("authorization") ?? "");
    const rec = m ? this.access.get(m[1]!) : undefined;
    return rec && this.live(rec) ? rec : null;
  }

  /** The user's permission on a repository through this token: a scoped token reaches only its own. */
  permission(rec: TokenRecord, repository: string): "push" | "pull" | undefined {
    const perm = this.#host.users.get(rec.userId)?.repos[repository.toLowerCase()];
    if (!perm || !rec.scope) return perm;
    if (!rec.scope.repositories.includes(repository.toLowerCase())) return undefined;
    const contents = rec.scope.permissions?.contents;
    if (rec.scope.permissions && contents !== "write") return contents === "read" ? "pull" : undefined;
    return perm;
  }

  snapshot(): TokensSnapshot {
    return {
      accessTokens: [...this.access],
      refreshTokens: [...this.refresh],
      nextPair: this.#nextPair,
      history: [...this.#history],
      authorizations: [...this.#authorizations],
    };
  }

  restore(saved: TokensSnapshot): void {
    for (const [k, v] of saved.accessTokens) this.access.set(k, v);
    for (const [k, v] of saved.refreshTokens) this.refresh.set(k, v);
    for (const [k, v] of saved.history) this.#history.set(k, v);
    for (const [k, v] of saved.authorizations) this.#authorizations.set(k, v);
    this.#nextPair = Math.max(this.#nextPair, saved.nextPair);
  }
}

function emptyHistory(): GrantHistory {
  return { droppedRotations: 0, revocations: 0, spentTokenReuses: 0 };
}
