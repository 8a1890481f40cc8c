/**
 * The token desk: what a caller asking for a user token gets. `/token` (a live token, its
 * repository checked) and `/token/rejected` (an agent reports GitHub refused a token). Both
 * re-check, synchronously before answering, that the token is still the current one and no
 * refresh is in flight ("no doomed tokens"); after a repository check that outlived a refresh
 * they look again rather than answer with the killed token.
 */
import { failure, rfc3339, type Committer, type Failure, type Permission, type TokenGrant, type TokenResult } from "../contract";
import { timingSafeEqualStrings } from "../crypto";
import { CONNECTION_CHANGED, providerFailure } from "../failures";
import type { Provider } from "../providers/provider";
import type { ConnectionRow } from "./connection-store";
import type { CallContext } from "./context";
import type { Live, Refresher } from "./refresher";
import type { RepoAccess } from "./repo-access";
import { scopedGrant, type ScopedTokens, type ScopeRequest } from "./scoped-tokens";

/** How often an answer is tried again when the connection changed under it. */
const ROUNDS = 3;

export class TokenDesk {
  readonly #refresher: Refresher;
  readonly #repos: RepoAccess;
  readonly #scoped: ScopedTokens;

  constructor(refresher: Refresher, repos: RepoAccess, scoped: ScopedTokens) {
    this.#refresher = refresher;
    this.#repos = repos;
    this.#scoped = scoped;
  }

  /** A live token valid `minValiditySeconds` more, for a repository the user has `permission` on. */
  async token(c: CallContext, repository: string, permission: Permission, minValiditySeconds: number, scope: ScopeRequest | null = null): Promise<TokenResult> {
    const minMs = minValiditySeconds * 1000;
    for (let round = 0; round < ROUNDS; round++) {
      const live = await this.#refresher.live(c, minMs);
      if (!live.ok) return live;
      const checked = await this.#repos.check(c, live, repository, permission, minMs);
      if (!checked.ok) return checked;
      if (this.#refresher.isCurrent(checked) && !scope) return grantOf(checked, c.provider);
      if (this.#refresher.isCurrent(checked) && scope) {
        // `scope: "repository"` (scoped-tokens.ts): minted from this pair, handed out only while it is current.
        const scoped = await this.#scoped.get(c, checked, repository, scope, minMs);
        // A failure of a pair that is no longer current is not the answer: the current state is.
        if (this.#refresher.isCurrent(checked)) return scoped.ok ? scopedGrant(grantOf(checked, c.provider) as TokenGrant, scoped, repository, scope) : scoped;
      }
      // A refresh started (or finished) while the repository was checked: that token is doomed.
    }
    return CONNECTION_CHANGED;
  }

  /**
   * A report about a token other than the current one changes nothing (compared in constant
   * time). Otherwise GitHub is asked (`GET /user`): alive → returned as it is; refused → refreshed.
   */
  async rejected(c: CallContext, token: string): Promise<TokenResult> {
    for (let round = 0; round < ROUNDS; round++) {
      const current = await this.#refresher.live(c, 0);
      if (!current.ok) return current;
      let answer: Live | Failure = current;
      if (await timingSafeEqualStrings(token, current.accessToken)) {
        const check = await c.provider.getUser(current.accessToken);
        if (!check.ok && check.error.kind === "unauthorized") answer = await this.#refresher.live(c, 0, current.row);
        else if (!check.ok) answer = providerFailure(check.error, c.provider.name);
      }
      if (!answer.ok) return answer;
      if (this.#refresher.isCurrent(answer)) return grantOf(answer, c.provider);
    }
    return CONNECTION_CHANGED;
  }
}

/** The contract's answer for a live token. */
export function grantOf(live: Live, provider: Provider): TokenResult {
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
    committer: committerOf(row, provider),
  };
}

/** The user's git identity: display name (or login) and the provider's no-reply address. */
export function committerOf(row: ConnectionRow, provider: Provider): Committer {
  return provider.committer({ id: row.github_user_id, login: row.github_login, name: row.github_name });
}
