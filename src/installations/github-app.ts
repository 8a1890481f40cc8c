/**
 * The two GitHub calls made as the App (with the App JWT): which installation serves a
 * repository, and a token of that installation scoped to one repository.
 *
 * Like src/github.ts, nothing here logs and no error carries a token or the key: GitHub's
 * own text goes into `detail`, for the structured log only.
 */
import type { AppConfig, BrokerConfig } from "../config";
import type { InstallationPermissions } from "../contract";
import { githubFailure, movedRepository, type GitHubError } from "../providers/github";
import { boundedFetch, readJson, serverTime, unavailable } from "../providers/http";
import { appJwt } from "./app-jwt";

/** `GET /repos/{owner}/{repo}/installation`, reduced to what the broker acts on. */
export interface InstallationLookup {
  installationId: string;
  /** GitHub reports `suspended_at`: the installation exists but issues no tokens. */
  suspended: boolean;
}

/** A token GitHub minted, with its expiry measured as remaining life (clock-independent). */
export interface MintedToken {
  token: string;
  /** Milliseconds of life left when GitHub answered, on GitHub's clock. */
  remainingMs: number;
  permissions: InstallationPermissions;
}

/**
 * Why an App call failed: {@link GitHubError} (a 401 is `app_misconfigured` here: GitHub
 * refused the JWT), plus `unprocessable` (422: a repository outside the installation, or
 * permissions the installation does not grant; `permissions` tells which).
 */
export type AppCallError = GitHubError | { kind: "unprocessable"; permissions: boolean; detail: string };

export type AppCallResult<T> = { ok: true; value: T } | { ok: false; error: AppCallError };

/** GitHub calls authenticated as one App. */
export class GitHubAppClient {
  constructor(
    private readonly config: BrokerConfig,
    private readonly app: AppConfig,
  ) {}

  /** Which installation of the App serves `owner/name`; `not_found` when none does. */
  async findInstallation(repository: string): Promise<AppCallResult<InstallationLookup>> {
    const [owner, name] = repository.split("/") as [string, string];
    const res = await this.#call("GET", `/repos/${encodeURIComponent(owner)}/${encodeURIComponent(name)}/installation`);
    if (!res.ok) return res;
    const body = res.value.body as { id?: unknown; suspended_at?: unknown };
    if (typeof body.id !== "number" || !Number.isSafeInteger(body.id) || body.id <= 0) {
      return { ok: false, error: { kind: "unavailable", retryAfterSeconds: 5, detail: "GET installation: unexpected body" } };
    }
    return { ok: true, value: { installationId: String(body.id), suspended: body.suspended_at != null } };
  }

  /** `POST /app/installations/{id}/access_tokens`, scoped to one repository (by name) and `permissions`. */
  async mintToken(installationId: string, repositoryName: string, permissions: InstallationPermissions): Promise<AppCallResult<MintedToken>> {
    const res = await this.#call("POST", `/app/installations/${installationId}/access_tokens`, {
      repositories: [repositoryName],
      permissions,
    });
    if (!res.ok) return res;
    const body = res.value.body as { token?: unknown; expires_at?: unknown; permissions?: unknown };
    const expiresAt = typeof body.expires_at === "string" ? Date.parse(body.expires_at) : NaN;
    if (typeof body.token !== "string" || !body.token || !Number.isFinite(expiresAt)) {
      return { ok: false, error: { kind: "unavailable", retryAfterSeconds: 5, detail: "POST access_tokens: unexpected body" } };
    }
    const granted = body.permissions && typeof body.permissions === "object" ? (body.permissions as InstallationPermissions) : permissions;
    return { ok: true, value: { token: body.token, remainingMs: expiresAt - res.value.serverNow, permissions: granted } };
  }

  async #call(method: string, path: string, json?: unknown): Promise<AppCallResult<{ body: unknown; serverNow: number }>> {
    // A bad key is the operator's problem: ConfigError propagates to the caller's handler.
    const jwt = await appJwt(this.app);
    const label = `${method} ${path.replace(/\/installations\/\d+\//, "/installations/{id}/")}`;
    const sent = await boundedFetch(
      `${this.config.apiUrl}${path}`,
      {
        method,
        headers: {
          accept: "application/vnd.github+json",
          authorization: `Bearer ${jwt}`,
          "x-github-api-version": "2022-11-28",
          ...(json === undefined ? {} : { "content-type": "application/json" }),
        },
        body: json === undefined ? undefined : JSON.stringify(json),
      },
      this.config.githubTimeoutMs,
    );
    if (!sent.ok) return unavailable(`${label}: ${sent.error.detail}`);
    const response = sent.value;
    const status = response.status;
    if (status === 401 || status === 404 || status === 422) {
      const message = String(((await readJson(response)) as { message?: unknown } | null)?.message ?? "").slice(0, 200);
      const detail = `${label}: ${status} ${message}`;
      if (status === 401) return { ok: false, error: { kind: "app_misconfigured", detail } };
      if (status === 404) return { ok: false, error: { kind: "not_found", detail } };
      return { ok: false, error: { kind: "unprocessable", permissions: /permission/i.test(message), detail } };
    }
    const moved = await movedRepository(response, label);
    if (moved) return moved;
    const fail = await githubFailure(response, label);
    if (fail) {
      // A 403 that is not a rate limit: the installation is suspended (or blocked by a policy).
      if (status === 403 && fail.error.kind === "unavailable") return { ok: false, error: { kind: "forbidden", detail: `${label}: 403` } };
      return fail;
    }
    const body = await readJson(response);
    if (!body) return unavailable(`${label}: body is not JSON`);
    return { ok: true, value: { body, serverNow: serverTime(response) } };
  }
}
