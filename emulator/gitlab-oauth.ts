/**
 * The GitLab emulator's OAuth side: codes, tokens (Doorkeeper keeps access and refresh token
 * in one row, a pair here) and the two endpoints, `POST /oauth/token` and `POST /oauth/revoke`,
 * answering as GitLab does (see emulator/gitlab.ts).
 */
import { randomHex, s256 } from "./encoding.ts";
import { Hang } from "./faults.ts";
import type { CodeRecord } from "./github-tokens.ts";
import type { GitLabEndpoint, GitLabFault, GitLabSettings } from "./gitlab.ts";

/** Per user: rotations whose answer was (or may have been) lost, and rotated refresh tokens presented again. */
export interface GitLabHistory {
  lostRotations: number;
  rotatedReuses: number;
}

export interface GitLabTokenRecord {
  clientId: string;
  userId: number;
  pairId: number;
  createdAt: number;
  expiresAt: number;
  alive: boolean;
  killedBy?: "rotation" | "revocation";
  /** The arrival number of the request that killed it (emulator/holds.ts `Arrivals`). */
  killedSeq?: number;
}

/** What emulator/gitlab.ts lends this module. */
export interface GitLabOAuthHost {
  readonly apps: ReadonlyMap<string, { clientId: string; clientSecret: string }>;
  readonly settings: GitLabSettings;
  readonly counts: Record<GitLabEndpoint, number>;
  readonly onIssued: ((issued: { grant: "refresh" | "exchange"; clientId: string; userId: number }) => void | Promise<void>) | null;
  now(): number;
  takeFault(endpoint: GitLabEndpoint): GitLabFault | null;
  /** The answer a fault makes (throws {@link Hang} for a hang). */
  applyFault(fault: GitLabFault): Response;
}

export class GitLabOAuth {
  readonly access = new Map<string, GitLabTokenRecord>();
  readonly refresh = new Map<string, GitLabTokenRecord>();
  /** Rotations whose answer was dropped (`drop_after_rotate`). */
  droppedRotations = 0;
  #codes = new Map<string, CodeRecord>();
  #nextPair = 1;
  #history = new Map<number, GitLabHistory>();
  readonly #host: GitLabOAuthHost;

  constructor(host: GitLabOAuthHost) {
    this.#host = host;
  }

  get nextPair(): number {
    return this.#nextPair;
  }

  set nextPair(value: number) {
    this.#nextPair = value;
  }

  reset(): void {
    this.access.clear();
    this.refresh.clear();
    this.#codes.clear();
    this.droppedRotations = 0;
    this.#history.clear();
  }

  /** A code bound to client, redirect and challenge. */
  authorize(p: { clientId: string; userId: number; redirectUri: string; codeChallenge: string | null }): { code: string } {
    const code = `glc_${randomHex()}`;
    this.#codes.set(code, { ...p, expiresAt: this.#host.now() + 600_000, used: false });
    return { code };
  }

  /** What happened to a user's rotations (the soak's truth check). */
  history(userId: number): GitLabHistory {
    let h = this.#history.get(userId);
    if (!h) this.#history.set(userId, (h = { lostRotations: 0, rotatedReuses: 0 }));
    return h;
  }

  /** The user a request's `Authorization: Bearer` access token belongs to, when it is live. */
  bearer(request: Request): number | null {
    const m = /^Bearer (\S+)$/.exec(request.headers.get("authorization") ?? "");
    return m ? this.liveAccess(m[1]!) : null;
  }

  /** The user of a live access token, or `null`. */
  liveAccess(token: string): number | null {
    const r = this.access.get(token);
    return r && r.alive && r.expiresAt > this.#host.now() ? r.userId : null;
  }

  /** `POST /oauth/token`: an authorization code or a refresh token for a pair. */
  async token(request: Request, seq: number): Promise<Response> {
    const host = this.#host;
    const arrivedAt = Date.now();
    const form = new URLSearchParams(await request.text());
    const grant = form.get("grant_type");
    const endpoint: GitLabEndpoint = grant === "refresh_token" ? "refresh" : "exchange";
    host.counts[endpoint]++;
    const fault = host.takeFault(endpoint);
    if (fault && fault.kind !== "drop_after_rotate") return host.applyFault(fault);
    const app = host.apps.get(form.get("client_id") ?? "");
    if (!app || form.get("client_secret") !== app.clientSecret) {
      return gitlabJson(401, { error: "invalid_client", error_description: "Client authentication failed due to unknown client, no client authentication included, or unsupported authentication method." });
    }
    const invalidGrant = gitlabJson(400, {
      error: "invalid_grant",
      error_description: "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client.",
    });
    let userId: number;
    if (grant === "authorization_code") {
      const code = this.#codes.get(form.get("code") ?? "");
      if (!code || code.used || code.clientId !== app.clientId || code.expiresAt <= host.now() || code.redirectUri !== form.get("redirect_uri")) return invalidGrant;
      code.used = true;
      if (code.codeChallenge !== null && code.codeChallenge !== (await s256(form.get("code_verifier") ?? ""))) return invalidGrant;
      userId = code.userId;
    } else if (grant === "refresh_token") {
      const old = this.refresh.get(form.get("refresh_token") ?? "");
      if (old && !old.alive && old.killedBy === "rotation") this.history(old.userId).rotatedReuses++;
      if (!old || !old.alive || old.clientId !== app.clientId) return invalidGrant;
      // Rotation: the old row (access and refresh token) dies as the new one is issued.
      this.#killPair(old.pairId, "rotation", seq);
      userId = old.userId;
    } else {
      return gitlabJson(400, { error: "unsupported_grant_type", error_description: "The authorization grant type is not supported by the authorization server." });
    }
    const body = this.#issue(app.clientId, userId);
    if (fault?.kind === "drop_after_rotate") {
      this.droppedRotations++;
      if (grant === "refresh_token") this.history(userId).lostRotations++;
      throw new Hang();
    }
    if (host.onIssued) await host.onIssued({ grant: grant === "refresh_token" ? "refresh" : "exchange", clientId: app.clientId, userId });
    const timeout = host.settings.clientTimeoutMs;
    if (grant === "refresh_token" && timeout !== null && Date.now() - arrivedAt >= timeout / 2) this.history(userId).lostRotations++;
    // GitLab's clock is the emulator's (`clock`): the broker must not mix it with its own.
    return gitlabJson(200, body, { date: new Date(host.now()).toUTCString() });
  }

  #issue(clientId: string, userId: number): Record<string, unknown> {
    const pairId = this.#nextPair++;
    const now = this.#host.now();
    const settings = this.#host.settings;
    const record = (): GitLabTokenRecord => ({ clientId, userId, pairId, createdAt: now, expiresAt: now + settings.accessTokenExpiresIn * 1000, alive: true });
    const access = `glpat-oauth-${randomHex()}`;
    const refresh = `glrt-${randomHex()}`;
    this.access.set(access, record());
    this.refresh.set(refresh, { ...record(), expiresAt: Number.MAX_SAFE_INTEGER });
    const body: Record<string, unknown> = { access_token: access, token_type: "Bearer", refresh_token: refresh, scope: "read_user write_repository api", created_at: Math.floor(now / 1000) };
    if (!settings.omitExpiresIn) body.expires_in = settings.accessTokenExpiresIn;
    return body;
  }

  /** `POST /oauth/revoke` (RFC 7009): kills the token's row; 200 even for an unknown token. */
  async revoke(request: Request, seq: number): Promise<Response> {
    const host = this.#host;
    const form = new URLSearchParams(await request.text());
    host.counts.revoke++;
    const fault = host.takeFault("revoke");
    if (fault) return host.applyFault(fault);
    const app = host.apps.get(form.get("client_id") ?? "");
    if (!app || form.get("client_secret") !== app.clientSecret) return gitlabJson(401, { error: "invalid_client", error_description: "Client authentication failed." });
    const token = form.get("token") ?? "";
    const record = this.access.get(token) ?? this.refresh.get(token);
    if (record && record.clientId === app.clientId) this.#killPair(record.pairId, "revocation", seq);
    return gitlabJson(200, {});
  }

  #killPair(pairId: number, cause: "rotation" | "revocation", seq: number): void {
    for (const map of [this.access, this.refresh]) {
      for (const r of map.values()) {
        if (r.pairId === pairId && r.alive) {
          r.alive = false;
          r.killedBy = cause;
          r.killedSeq = seq;
        }
      }
    }
  }
}

/** GitLab's JSON answer (its `date` the real clock unless given). */
export function gitlabJson(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "content-type": "application/json", date: new Date().toUTCString(), ...headers } });
}
