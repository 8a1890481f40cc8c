/**
 * Which provider serves an App, and the repository paths each accepts: the only places that
 * branch on `app.provider` (everything else asks the {@link Provider}; `scripts/check-seams.mjs`
 * fails CI on a branch anywhere else).
 */
import type { AppConfig, BrokerConfig } from "../config";
import { failure } from "../contract";
import { repositoryOf, type Parsed } from "../validate";
import { GitHubClient } from "./github";
import { GitLabClient } from "./gitlab";
import type { Provider } from "./provider";

export type { Provider, ProviderKind, ProviderError, ProviderResult, ProviderUser, ScopedTokenMinter, TokenSet } from "./provider";

/**
 * A client of `app`'s provider. It counts its requests (a metric's `githubCalls`): an actor
 * call keeps one per App (actor/context.ts); elsewhere one may be made just to ask it a
 * question (its name, its URLs, its features), which costs no request.
 */
export function providerOf(config: BrokerConfig, app: AppConfig): Provider {
  return app.provider === "gitlab" ? new GitLabClient(config, app) : new GitHubClient(config);
}

/**
 * GitLab project paths: a namespace of 1-20 nested groups and the project, each segment
 * 1-255 of `[A-Za-z0-9_.-]` starting with an alphanumeric or `_`, not ending in `.git` or
 * `.atom` (GitLab's own path rules, tightened: no segment is `.`/`..`, no percent-encoding).
 */
const GITLAB_SEGMENT = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,254}$/;

/** `group/.../project` when it follows GitLab's path rules (at least two segments), else `null`. */
export function gitlabPathOf(path: string): string | null {
  if (path.length > 1024) return null;
  const parts = path.split("/");
  if (parts.length < 2 || parts.length > 21) return null;
  for (const part of parts) {
    if (!GITLAB_SEGMENT.test(part) || part.endsWith(".git") || part.endsWith(".atom") || part.endsWith(".")) return null;
  }
  return path;
}

/**
 * A repository for `app`: GitHub's `owner/name`, bare or as a clone URL on the configured
 * host, or for a GitLab App a project path with nested groups, bare or as a clone URL on the
 * App's instance. (The request parsers, http/requests.ts, call it: the paths are the provider's.)
 */
export function parseRepositoryFor(config: BrokerConfig, app: AppConfig, value: unknown): Parsed<string> {
  if (app.provider !== "gitlab") return parseGitHubRepository(config, value);
  const bad = failure("invalid_request", "repository must be group/.../project or https://<gitlab host>/group/.../project(.git)");
  if (typeof value !== "string" || value.length > 1100) return bad;
  let path = value;
  if (value.includes("://")) {
    const prefix = `${app.baseUrl}/`;
    if (!value.startsWith(prefix) || /[%?#@\\]/.test(value.slice(prefix.length))) return bad;
    path = value.slice(prefix.length).replace(/\.git$/, "");
  }
  const repository = gitlabPathOf(path);
  return repository ? { ok: true, value: repository } : bad;
}

/**
 * `owner/name`, or a clone URL of it on the configured GitHub host
 * (`https://github.com/owner/name` with an optional `.git`). Returns `owner/name`.
 */
function parseGitHubRepository(config: BrokerConfig, value: unknown): Parsed<string> {
  const bad = failure("invalid_request", "repository must be owner/name or https://<github host>/owner/name(.git)");
  if (typeof value !== "string" || value.length > 300) return bad;
  let path = value;
  if (value.includes("://")) {
    let url: URL;
    try {
      url = new URL(value);
    } catch {
      return bad;
    }
    const host = new URL(config.webUrl);
    // The raw string must be exactly a clone URL: no userinfo, port tricks, query, fragment,
    // percent-encoding or dot segments that URL parsing would quietly normalise away.
    const expectedPrefix = `${host.origin}/`;
    if (url.origin !== host.origin || url.username || url.password || url.search || url.hash) return bad;
    if (!value.startsWith(expectedPrefix) || value.includes("%")) return bad;
    path = value.slice(expectedPrefix.length).replace(/\.git$/, "");
  }
  const parts = path.split("/");
  if (parts.length !== 2) return bad;
  const repository = repositoryOf(parts[0]!, parts[1]!);
  return repository ? { ok: true, value: repository } : bad;
}
