/**
 * The GitHub emulator's OAuth endpoints over its token store (emulator/github-tokens.ts):
 *
 * - `POST /login/oauth/access_token`: codes are single use and expire after 10 minutes, PKCE
 *   (S256) is checked; a refresh returns a new access + refresh pair and kills the old
 *   refresh token, and the old access token with it. Errors come as `{error,
 *   error_description, error_uri}` with HTTP 200, as GitHub sends them.
 * - `DELETE /applications/{client_id}/grant`, `DELETE /applications/{client_id}/token`, and
 *   `POST /applications/{client_id}/token/scoped`, with the App's Basic credentials.
 */
import { Hang } from "./faults.ts";
import { randomToken, s256 } from "./encoding.ts";
import type { Endpoint } from "./github-faults.ts";
import type { EmulatorApp, GitHubHost } from "./github-host.ts";

/** GitHub's OAuth error: HTTP 200 with the error in the body. */
export function oauthError(json: GitHubHost["json"], error: string, description: string): Response {
  return json(200, { error, error_description: description, error_uri: `https://docs.github.com/apps#${error}` });
}

/** A form (or JSON) body's parameters; GitHub also accepts them in the query string. */
export async function readParams(request: Request): Promise<URLSearchParams> {
  const type = request.headers.get("content-type") ?? "";
  const text = await request.text();
  if (type.includes("application/json")) {
    const obj = JSON.parse(text || "{}") as Record<string, unknown>;
    return new URLSearchParams(Object.entries(obj).map(([k, v]) => [k, String(v)]));
  }
  const params = new URLSearchParams(text);
  for (const [k, v] of new URL(request.url).searchParams) if (!params.has(k)) params.set(k, v);
  return params;
}

/** Which endpoint a token request is, for holds and counts. */
export async function tokenEndpointOf(request: Request): Promise<Endpoint> {
  const params = await readParams(request.clone());
  return params.get("grant_type") === "refresh_token" ? "refresh" : "exchange";
}

export class GitHubOAuth {
  readonly #host: GitHubHost;

  constructor(host: GitHubHost) {
    this.#host = host;
  }

  /** `POST /login/oauth/access_token`: `seq` and `arrivedAt` are the request's arrival. */
  async token(request: Request, seq: number, arrivedAt: number): Promise<Response> {
    const host = this.#host;
    const tokens = host.tokens;
    const params = await readParams(request);
    const isRefresh = params.get("grant_type") === "refresh_token";
    const endpoint: Endpoint = isRefresh ? "refresh" : "exchange";
    host.counts[endpoint]++;
    const fault = host.faults.take(endpoint);
    const early = await host.faults.apply(fault, true);
    if (early) return early;

    const app = host.apps.get(params.get("client_id") ?? "");
    if (!app || params.get("client_secret") !== app.clientSecret) {
      return this.#error("incorrect_client_credentials", "The client_id and/or client_secret passed are incorrect.");
    }
    const result = isRefresh ? this.#refresh(app, params, seq) : await this.#exchange(app, params);
    if (fault?.kind === "drop_after_rotate") {
      const rec = tokens.refresh.get(params.get("refresh_token") ?? "");
      if (isRefresh && rec) tokens.record(app.clientId, rec.userId, "droppedRotations");
      throw new Hang();
    }
    if (host.onIssued && result.status === 200) {
      const userId = isRefresh ? tokens.refresh.get(params.get("refresh_token") ?? "")?.userId : tokens.codes.get(params.get("code") ?? "")?.userId;
      const issued = ((await result.clone().json()) as { access_token?: string }).access_token !== undefined;
      if (issued && userId !== undefined) await host.onIssued({ grant: endpoint, clientId: app.clientId, userId });
    }
    const timeout = host.settings.clientTimeoutMs;
    // Half the timeout: the request may have waited about as long again on its way here.
    if (isRefresh && timeout !== null && Date.now() - arrivedAt >= timeout * 0.5 && result.status === 200) {
      // The client gave up (its timeout) before GitHub answered: the rotation happened and
      // its answer is lost, exactly like a dropped response.
      const rec = tokens.refresh.get(params.get("refresh_token") ?? "");
      if (rec) tokens.record(app.clientId, rec.userId, "droppedRotations");
    }
    return result;
  }

  async #exchange(app: EmulatorApp, params: URLSearchParams): Promise<Response> {
    const code = this.#host.tokens.codes.get(params.get("code") ?? "");
    if (!code || code.used || code.clientId !== app.clientId || code.expiresAt <= this.#host.now()) {
      return this.#error("bad_verification_code", "The code passed is incorrect or expired.");
    }
    code.used = true; // single use, even when the rest of the exchange fails
    const redirectUri = params.get("redirect_uri");
    if (redirectUri !== null && redirectUri !== code.redirectUri) {
      return this.#error("redirect_uri_mismatch", "The redirect_uri MUST match the registered callback URL for this application.");
    }
    if (code.codeChallenge !== null) {
      const verifier = params.get("code_verifier") ?? "";
      if ((await s256(verifier)) !== code.codeChallenge) {
        return this.#error("bad_verification_code", "The code_verifier does not match the code_challenge.");
      }
    }
    return this.#issue(app.clientId, code.userId);
  }

  #refresh(app: EmulatorApp, params: URLSearchParams, seq: number): Response {
    const tokens = this.#host.tokens;
    const rec = tokens.refresh.get(params.get("refresh_token") ?? "");
    // A client presenting a refresh token that was already spent: the race this broker exists
    // to prevent (legitimate only right after a rotation whose answer was lost).
    if (rec?.rotated) tokens.record(rec.clientId, rec.userId, "spentTokenReuses");
    if (!rec || !rec.alive || rec.clientId !== app.clientId || rec.expiresAt <= this.#host.now()) {
      return this.#error("bad_refresh_token", "The refresh token passed is incorrect or expired.");
    }
    rec.alive = false; // single use: the old refresh token is dead from now on
    rec.rotated = true;
    rec.killedBy = { cause: "rotation", seq };
    if (this.#host.settings.refreshKillsAccessToken) {
      for (const access of tokens.access.values()) {
        if (access.pairId !== rec.pairId || !access.alive) continue;
        access.alive = false;
        access.killedBy = { cause: "rotation", seq };
      }
    }
    return this.#issue(app.clientId, rec.userId);
  }

  #issue(clientId: string, userId: number): Response {
    const settings = this.#host.settings;
    const pair = this.#host.tokens.issuePair(clientId, userId);
    const body: Record<string, unknown> = { access_token: pair.accessToken, expires_in: settings.accessTokenExpiresIn, scope: "", token_type: "bearer" };
    if (pair.refreshToken) {
      body.refresh_token = pair.refreshToken;
      body.refresh_token_expires_in = settings.refreshTokenExpiresIn;
    }
    return this.#host.json(200, body);
  }

  #error(error: string, description: string): Response {
    return oauthError((status, body) => this.#host.json(status, body), error, description);
  }

  /** `DELETE /applications/{client_id}/grant`: revokes the grant of the token's user. */
  async deleteGrant(request: Request, clientId: string, revoke: (clientId: string, userId: number) => void): Promise<Response> {
    const host = this.#host;
    const early = await host.enter("revoke_grant", request);
    if (early) return early;
    if (!this.#basicApp(request, clientId)) return host.json(401, { message: "Bad credentials" });
    let token = "";
    try {
      token = String(((await request.json()) as { access_token?: unknown }).access_token ?? "");
    } catch {
      return host.json(422, { message: "Invalid request." });
    }
    const rec = host.tokens.access.get(token);
    if (!rec || rec.clientId !== clientId) return host.json(404, { message: "Not Found" });
    if (!rec.alive || rec.expiresAt <= host.now()) return host.json(422, { message: "Invalid token." });
    revoke(clientId, rec.userId);
    return new Response(null, { status: 204, headers: host.headers() });
  }

  /** `POST /applications/{client_id}/token/scoped`: a user token limited to repositories and permissions. */
  async scopedToken(request: Request, clientId: string): Promise<Response> {
    const host = this.#host;
    const early = await host.enter("scoped", request);
    if (early) return early;
    if (!this.#basicApp(request, clientId)) return host.json(401, { message: "Bad credentials" });
    const body = (await request.json().catch(() => null)) as { access_token?: unknown; target?: unknown; repositories?: unknown; permissions?: unknown } | null;
    const parent = host.tokens.access.get(String(body?.access_token ?? ""));
    // GitHub: "Invalid tokens will return 404 NOT FOUND".
    if (!parent || parent.clientId !== clientId || !parent.alive || parent.expiresAt <= host.now()) return host.json(404, { message: "Not Found" });
    const repos = body?.repositories;
    if (typeof body?.target !== "string" || !Array.isArray(repos) || repos.length === 0 || !repos.every((r) => typeof r === "string")) {
      return host.json(422, { message: "Validation Failed: target and repositories are required here" });
    }
    const permissions = body.permissions && typeof body.permissions === "object" ? (body.permissions as Record<string, string>) : null;
    // As GitHub: a permission no App can hold at that level fails validation (metadata is read-only).
    if (permissions && Object.entries(permissions).some(([name, level]) => (name === "metadata" && level !== "read") || !/^[a-z_]+$/.test(name))) {
      return host.json(422, { message: "Validation Failed", errors: [{ resource: "ScopedToken", field: "permissions", code: "invalid", message: "metadata can only be read" }] });
    }
    const token = randomToken("ghu_");
    host.tokens.access.set(token, { ...parent, scope: { repositories: (repos as string[]).map((r) => `${body.target}/${r}`.toLowerCase()), permissions } });
    const user = host.users.get(parent.userId)!;
    return host.json(200, {
      id: host.tokens.nextPair,
      token,
      token_last_eight: token.slice(-8),
      expires_at: new Date(parent.expiresAt).toISOString().replace(".000Z", "Z"),
      scopes: [],
      app: { client_id: clientId, name: "emulated app", url: "https://example.com" },
      user: { login: user.login, id: user.id },
      permissions: permissions ?? undefined,
    });
  }

  /** `DELETE /applications/{client_id}/token`: revokes one token (not the grant). */
  async deleteToken(request: Request, clientId: string): Promise<Response> {
    const host = this.#host;
    const early = await host.enter("revoke_token", request);
    if (early) return early;
    if (!this.#basicApp(request, clientId)) return host.json(401, { message: "Bad credentials" });
    const body = (await request.json().catch(() => null)) as { access_token?: unknown } | null;
    const rec = host.tokens.access.get(String(body?.access_token ?? ""));
    if (!rec || rec.clientId !== clientId) return host.json(404, { message: "Not Found" });
    if (rec.alive) rec.killedBy = { cause: "revocation", seq: host.mark() };
    rec.alive = false;
    return new Response(null, { status: 204, headers: host.headers() });
  }

  /** Basic client id:secret of a known App, or `null`. */
  #basicApp(request: Request, clientId: string): EmulatorApp | null {
    const app = this.#host.apps.get(clientId);
    const auth = request.headers.get("authorization") ?? "";
    return app && auth.toLowerCase() === `basic ${btoa(`${app.clientId}:${app.clientSecret}`)}`.toLowerCase() ? app : null;
  }
}
