/**
 * What the GitHub emulator's role modules share: the shapes it is configured with (Apps,
 * users, settings, the git backend) and {@link GitHubHost}, what emulator/github.ts lends
 * its OAuth, user-API, git and browser modules.
 */
import type { GitHubFaults, Endpoint } from "./github-faults.ts";
import type { GitHubTokens } from "./github-tokens.ts";

export interface EmulatorApp {
  clientId: string;
  clientSecret: string;
  /** Used to sign the webhooks the emulator sends. */
  webhookSecret?: string;
  /** Where `github_app_authorization` webhooks for this App are delivered. */
  webhookUrl?: string;
  /** The App's display name on the consent screen (GitHub never shows the client id there). */
  name?: string;
}

export interface EmulatorUser {
  id: number;
  login: string;
  name: string | null;
  /** `owner/name` (any case) → the user's permission on it. */
  repos: Record<string, "push" | "pull">;
}

/**
 * Serves git smart-HTTP for a repository on disk (see emulator/git-backend.ts, Node only).
 * Called after the emulator checked the token and the user's permission.
 */
export type GitBackend = (request: Request, repository: string, pathInfo: string, user: EmulatorUser) => Promise<Response>;

export interface EmulatorSettings {
  /** `expires_in` of user access tokens (GitHub: 28800). */
  accessTokenExpiresIn: number;
  /** `refresh_token_expires_in` (GitHub: about six months). */
  refreshTokenExpiresIn: number;
  /** "Expire user authorization tokens" on the App; when off no refresh token is issued. */
  expiringTokens: boolean;
  /** Whether a refresh also kills the previous access token. */
  refreshKillsAccessToken: boolean;
  /** Upper bound of a `hang`, so a forgotten hang never holds a process forever. */
  hangMs: number;
  /**
   * The client's own timeout (the broker's `GITHUB_TIMEOUT_MS`), when known: a rotation
   * answered later than (about) this was lost by the client, and is recorded as a dropped
   * rotation, the same fact as a `drop_after_rotate` fault.
   */
  clientTimeoutMs: number | null;
}

/**
 * GitHub's answer to a renamed or transferred repository's old name: `301` pointing at the
 * repository by id (`/repositories/{id}`), which a client that does not follow redirects
 * must treat as "not here under this name".
 */
export function movedPermanently(json: GitHubHost["json"], current: string): Response {
  const url = `https://api.github.com/repositories/${repositoryNumber(current)}`;
  return json(301, { message: "Moved Permanently", url, documentation_url: "https://docs.github.com/v3/#http-redirects" }, { location: url });
}

/** A stable number for a repository name (the emulator has no repository ids of its own here). */
function repositoryNumber(fullName: string): number {
  let n = 7;
  for (const c of fullName.toLowerCase()) n = (n * 31 + c.charCodeAt(0)) % 1_000_000_007;
  return n;
}

export const DEFAULT_SETTINGS: EmulatorSettings = {
  accessTokenExpiresIn: 28_800,
  refreshTokenExpiresIn: 15_897_600,
  expiringTokens: true,
  refreshKillsAccessToken: true,
  hangMs: 60_000,
  clientTimeoutMs: null,
};

/** A pair the token endpoint issued, about to be sent (see `GitHubEmulator.onIssued`). */
export interface IssuedPair {
  grant: "refresh" | "exchange";
  clientId: string;
  userId: number;
}

/** What emulator/github.ts lends its role modules. */
export interface GitHubHost {
  readonly apps: ReadonlyMap<string, EmulatorApp>;
  readonly users: ReadonlyMap<number, EmulatorUser>;
  readonly settings: EmulatorSettings;
  readonly tokens: GitHubTokens;
  readonly faults: GitHubFaults;
  /** Requests per counted endpoint. */
  readonly counts: Record<Endpoint, number>;
  /**
   * Renamed or transferred repositories: the old `owner/name` (lower case) → the current one.
   * GitHub's REST API answers the old name with `301 Moved Permanently` to the caller who can see it.
   */
  readonly moved: ReadonlyMap<string, string>;
  readonly onIssued: ((issued: IssuedPair) => void | Promise<void>) | null;
  /** The emulator's clock (ms). */
  now(): number;
  /** The next arrival number. */
  mark(): number;
  /** Counts a request to `endpoint` and applies its injected fault (API shapes); a Response ends the request. */
  enter(endpoint: Endpoint, request?: Request): Promise<Response | null>;
  /** GitHub's response headers: `date` on the emulator's clock, a request id. */
  headers(extra?: Record<string, string>): Headers;
  json(status: number, body: unknown, extra?: Record<string, string>): Response;
}
