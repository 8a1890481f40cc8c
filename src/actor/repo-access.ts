/**
 * Repository access: whether the connected GitHub user has `push` / `pull` on a repository,
 * as GitHub reports it for the user token (`GET /repos/{owner}/{repo}` → `permissions`).
 *
 * Answers are cached in memory for {@link REPO_CACHE_MS} per generation and repository, so a
 * busy session does not spend the user's rate limit; a new generation (reconnect) never sees
 * the previous one's answers, and nothing needs clearing by hand. The question itself is
 * single-flight per key and token: requests that need an answer while it is being asked share
 * GitHub's reply (each then handles it, a 401 included, on its own).
 */
import { failure, type Failure, type Permission } from "../contract";
import { providerFailure, ssoFailure } from "../failures";
import { singleFlight } from "../single-flight";
import type { CallContext } from "./context";
import type { Live, Refresher } from "./refresher";

const REPO_CACHE_MS = 60_000;
const REPO_CACHE_MAX = 512;

interface Answer {
  push: boolean;
  pull: boolean;
  until: number;
}

export class RepoAccess {
  readonly #cache = new Map<string, Answer>();
  readonly #asking = new Map<string, ReturnType<CallContext["provider"]["getRepoPermissions"]>>();
  readonly #refresher: Refresher;

  constructor(refresher: Refresher) {
    this.#refresher = refresher;
  }

  /**
   * Checks `permission` on `repository` with `live`'s token. When GitHub refuses a token the
   * broker thought valid (401), it is refreshed once (shared) and the question asked again.
   * Returns the token to use, which may be newer than `live`'s.
   */
  async check(c: CallContext, live: Live, repository: string, permission: Permission, minValidityMs: number): Promise<Live | Failure> {
    const key = `${c.app.appType}\0${live.row.generation}\0${repository.toLowerCase()}`;
    let answer = this.#cache.get(key);
    if (!answer || answer.until <= Date.now()) {
      // Shared only by callers holding the same token: a reply to a token since replaced (a
      // 401) must not send a caller with the current one to refresh it.
      const token = live.accessToken;
      let res = await singleFlight(this.#asking, `${key}\0${live.row.access_token}`, () => c.provider.getRepoPermissions(token, repository));
      if (!res.ok && res.error.kind === "unauthorized") {
        const fresh = await this.#refresher.live(c, minValidityMs, live.row);
        if (!fresh.ok) return fresh;
        if (fresh.row.generation !== live.row.generation) return this.check(c, fresh, repository, permission, minValidityMs);
        live = fresh;
        res = await c.provider.getRepoPermissions(live.accessToken, repository);
      }
      if (!res.ok) {
        // SAML SSO is not cached: the person authorizes the organisation and tries again at once.
        if (res.error.kind === "forbidden" && res.error.ssoUrl) return ssoFailure(res.error.ssoUrl);
        if (res.error.kind !== "not_found" && res.error.kind !== "forbidden") return providerFailure(res.error, c.provider.name);
        answer = { push: false, pull: false, until: Date.now() + REPO_CACHE_MS };
      } else {
        answer = { ...res.value, until: Date.now() + REPO_CACHE_MS };
      }
      if (this.#cache.size >= REPO_CACHE_MAX) this.#cache.delete(this.#cache.keys().next().value!);
      this.#cache.set(key, answer);
    }
    if (!answer[permission]) {
      return failure("no_repo_access", `The ${c.provider.name} user has no ${permission} access to ${repository}, or it does not exist for them.`);
    }
    return live;
  }

  forget(): void {
    this.#cache.clear();
    this.#asking.clear();
  }
}
