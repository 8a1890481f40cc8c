/**
 * The GitHub emulator's REST for user tokens: `GET /user`, `GET /repos/{owner}/{repo}` (with
 * the token's permissions), and who a request's token speaks for (the caller REST and
 * GraphQL act as). Installation tokens are answered by emulator/github-apps.ts.
 */
import type { GitHubAppsEmulator } from "./github-apps.ts";
import { movedPermanently, type GitHubHost } from "./github-host.ts";
import type { Actor, Caller } from "./github-store.ts";

export class GitHubUserApi {
  readonly #host: GitHubHost;
  readonly #apps: GitHubAppsEmulator;

  constructor(host: GitHubHost, apps: GitHubAppsEmulator) {
    this.#host = host;
    this.#apps = apps;
  }

  /**
   * Who a request's token (`Authorization: token|Bearer`) speaks for: a user (user or scoped
   * token), or an App's bot (installation token); `null` without a live token.
   */
  caller(request: Request): Caller | null {
    const token = /^(?:token|bearer) (\S+)$/i.exec(request.headers.get("authorization") ?? "")?.[1];
    if (token?.startsWith("ghs_")) return this.#apps.caller(token);
    const tokens = this.#host.tokens;
    const rec = tokens.bearer(request);
    const user = rec && this.#host.users.get(rec.userId);
    if (!rec || !user) return null;
    const actor: Actor = { login: user.login, id: user.id, type: "User", name: user.name };
    return { ...actor, permission: (repository) => tokens.permission(rec, repository) };
  }

  /** `GET /user`. */
  async user(request: Request): Promise<Response> {
    const host = this.#host;
    const early = await host.enter("user", request);
    if (early) return early;
    const rec = host.tokens.bearer(request);
    if (!rec) return host.json(401, { message: "Bad credentials" });
    const user = host.users.get(rec.userId)!;
    return host.json(200, { login: user.login, id: user.id, name: user.name, type: "User" });
  }

  /** `GET /repos/{owner}/{repo}` (`fullName` as in the path, still encoded). */
  async repository(request: Request, fullName: string): Promise<Response> {
    const host = this.#host;
    const early = await host.enter("repo", request);
    if (early) return early;
    const asApp = this.#apps.restRepository(request, fullName);
    if (asApp) return asApp;
    const rec = host.tokens.bearer(request);
    if (!rec) return host.json(401, { message: "Bad credentials" });
    const asked = decodeURIComponent(fullName);
    const current = host.moved.get(asked.toLowerCase());
    const perm = host.tokens.permission(rec, current ?? asked);
    if (!perm) return host.json(404, { message: "Not Found" });
    if (current) return movedPermanently(host.json, current);
    const [owner, name] = asked.split("/");
    return host.json(200, {
      full_name: `${owner}/${name}`,
      name,
      owner: { login: owner },
      private: true,
      permissions: { admin: false, maintain: false, push: perm === "push", triage: perm === "push", pull: true },
    });
  }
}
