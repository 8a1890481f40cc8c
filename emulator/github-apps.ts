/**
 * The App-installation side of the GitHub emulator (emulator/github-routes.ts routes to it):
 * App JWTs, installations and their tokens, the way GitHub behaves where the broker's
 * correctness depends on it.
 *
 * - App JWTs are verified as GitHub does (emulator/github-app-jwt.ts); `rotateKey` makes the
 *   configured private key wrong, as deleting it on GitHub would.
 * - `GET /repos/{owner}/{repo}/installation` answers the installation (with `suspended_at`)
 *   or 404. `POST /app/installations/{id}/access_tokens` mints a `ghs_` token longer than 40
 *   characters, expiring in one hour, scoped to the repositories and permissions asked for
 *   (422 beyond the installation's), 403 while suspended, 404 once uninstalled. Minting does
 *   not invalidate older tokens.
 * - The REST (`GET /repos/{owner}/{repo}`) and git endpoints refuse an installation token
 *   outside its repositories (404, as GitHub hides what a token cannot see), a push without
 *   `contents: write` (403), and any token of a suspended or removed installation (401).
 * - Suspension, uninstallation and repository removal send GitHub's signed webhooks to the
 *   App's `webhookUrl` when it has one, and always return the signed delivery, so a test
 *   can deliver it itself.
 *
 * Web-standard APIs only, like the rest of the emulator.
 */
import { sign } from "@octokit/webhooks-methods";
import { base64url } from "./encoding.ts";
import { AppKeys, type EmulatorAppIdentity } from "./github-app-jwt.ts";
import { gitRefusal, isPush, pathInfo } from "./github-git.ts";
import { movedPermanently, type EmulatorApp, type EmulatorUser, type GitBackend } from "./github-host.ts";
import type { Caller } from "./github-store.ts";
import { postWebhook, type SignedDelivery } from "./webhooks.ts";

export type { EmulatorAppIdentity } from "./github-app-jwt.ts";

export type Level = "read" | "write";

export interface EmulatorInstallation {
  id: number;
  clientId: string;
  /** The account (user or organisation) it is installed on. */
  account: string;
  /** `owner/name`s it includes (any case). */
  repositories: string[];
  /** What the App holds on them. */
  permissions: Record<string, Level>;
  suspended?: boolean;
}

/** Endpoints counted and faultable like the emulator's others. */
export type AppEndpoint = "installation" | "installation_token";

/** What emulator/github.ts lends this module. */
export interface AppsHost {
  now(): number;
  apps: ReadonlyMap<string, EmulatorApp>;
  /** Renamed or transferred repositories (GitHubHost.moved). */
  moved: ReadonlyMap<string, string>;
  /** Counts the request and applies an injected fault; a Response ends the request. */
  enter(endpoint: AppEndpoint): Promise<Response | null>;
  json(status: number, body: unknown, extra?: Record<string, string>): Response;
  webhookFetch(request: Request): Promise<Response>;
}

/** A signed webhook as GitHub would POST it. */
export interface WebhookDelivery extends SignedDelivery {
  /** The broker's answer, when the emulator delivered it (the App has a `webhookUrl`). */
  status?: number;
}

interface TokenRecord {
  installationId: number;
  repositories: Set<string>;
  permissions: Record<string, Level>;
  expiresAt: number;
}

export class GitHubAppsEmulator {
  /** Life of installation tokens in seconds (GitHub: 3600). */
  installationTokenExpiresIn = 3600;
  /** JWTs refused (bad signature, claims, unknown App). */
  jwtRejections = 0;
  /** Claims of the last JWT accepted, for tests of the broker's claims. */
  lastJwt: { iss: unknown; iat: number; exp: number; verifiedAt: number } | null = null;

  readonly #host: AppsHost;
  readonly #keys = new AppKeys();
  readonly #installations = new Map<number, EmulatorInstallation>();
  readonly #tokens = new Map<string, TokenRecord>();

  constructor(host: AppsHost) {
    this.#host = host;
  }

  /** Makes an App able to use installation tokens (kept across {@link reset}). */
  registerApp(identity: EmulatorAppIdentity): void {
    this.#keys.register(identity);
  }

  /** Minted tokens, for `npm start` to keep across restarts (the broker caches them up to an hour). */
  snapshotTokens(): [string, { installationId: number; repositories: string[]; permissions: Record<string, Level>; expiresAt: number }][] {
    return [...this.#tokens].map(([t, r]) => [t, { ...r, repositories: [...r.repositories] }]);
  }

  /** Puts back what {@link snapshotTokens} saved. */
  restoreTokens(saved: ReturnType<GitHubAppsEmulator["snapshotTokens"]>): void {
    for (const [t, r] of saved) this.#tokens.set(t, { ...r, repositories: new Set(r.repositories) });
  }

  /** Forgets installations, tokens and counters; puts back every App's registered key. */
  reset(): void {
    this.#installations.clear();
    this.#tokens.clear();
    this.installationTokenExpiresIn = 3600;
    this.jwtRejections = 0;
    this.lastJwt = null;
    this.#keys.reset();
  }

  /** GitHub now holds a new key for the App: the broker's private key no longer signs valid JWTs. */
  rotateKey(clientId: string): void {
    this.#keys.rotate(clientId);
  }

  addInstallation(installation: EmulatorInstallation): void {
    this.#installations.set(installation.id, {
      ...installation,
      repositories: installation.repositories.map((r) => r.toLowerCase()),
      suspended: installation.suspended ?? false,
    });
  }

  /** Suspends (or lifts the suspension of) an installation and sends the `installation` webhook. */
  async setSuspended(id: number, suspended: boolean): Promise<WebhookDelivery> {
    const inst = this.#installation(id);
    inst.suspended = suspended;
    return this.#notify(inst, "installation", { action: suspended ? "suspend" : "unsuspend" });
  }

  /** Uninstalls the App from the account; its tokens die. */
  async uninstall(id: number): Promise<WebhookDelivery> {
    const inst = this.#installation(id);
    this.#installations.delete(id);
    return this.#notify(inst, "installation", { action: "deleted" });
  }

  /** Takes repositories out of the installation; its tokens lose them. */
  async removeRepositories(id: number, repositories: string[]): Promise<WebhookDelivery> {
    const inst = this.#installation(id);
    const removed = repositories.map((r) => r.toLowerCase());
    inst.repositories = inst.repositories.filter((r) => !removed.includes(r));
    return this.#notify(inst, "installation_repositories", {
      action: "removed",
      repository_selection: "selected",
      repositories_added: [],
      repositories_removed: removed.map((full_name, i) => ({ id: 9000 + i, name: full_name.split("/")[1], full_name, private: true })),
    });
  }

  /** The truth about an installation token: usable now, and for what. */
  tokenState(token: string): { alive: boolean; installationId: number; repositories: string[]; permissions: Record<string, Level> } | null {
    const rec = this.#tokens.get(token);
    if (!rec) return null;
    return { alive: this.#alive(rec), installationId: rec.installationId, repositories: [...rec.repositories], permissions: rec.permissions };
  }

  stats(): { jwtRejections: number; lastJwt: GitHubAppsEmulator["lastJwt"]; installationTokens: number } {
    return { jwtRejections: this.jwtRejections, lastJwt: this.lastJwt, installationTokens: this.#tokens.size };
  }

  // ---- GitHub routes ----

  /**
   * `GET /repos/{owner}/{repo}` with an installation token; `null` when the bearer is not
   * one (the user-token path answers then).
   */
  restRepository(request: Request, fullName: string): Response | null {
    const token = /^(?:token|bearer) (ghs_\S+)$/i.exec(request.headers.get("authorization") ?? "")?.[1];
    if (!token) return null;
    const rec = this.#tokens.get(token);
    if (!rec || !this.#alive(rec)) return this.#host.json(401, { message: "Bad credentials" });
    const name = decodeURIComponent(fullName);
    if (!this.#covers(rec, name)) return this.#host.json(404, { message: "Not Found" });
    const write = rec.permissions.contents === "write";
    const [owner, repo] = name.split("/");
    return this.#host.json(200, {
      full_name: `${owner}/${repo}`,
      name: repo,
      owner: { login: owner },
      private: true,
      permissions: { admin: false, maintain: false, push: write, triage: write, pull: true },
    });
  }

  /**
   * Who an installation token speaks for (the App's bot) and what it may do on a repository:
   * `push` with `contents: write`, else `pull`, nothing outside its repositories. `null` when
   * the token is not a live installation token.
   */
  caller(token: string): Caller | null {
    const rec = this.#tokens.get(token);
    if (!rec || !this.#alive(rec)) return null;
    const identity = this.#keys.identity(this.#installations.get(rec.installationId)!.clientId)!;
    return {
      login: `${identity.slug}[bot]`,
      id: identity.botUserId,
      type: "Bot",
      name: null,
      permission: (repository) => (this.#covers(rec, repository) ? (rec.permissions.contents === "write" ? "push" : "pull") : undefined),
    };
  }

  /** git smart-HTTP with an installation token (`x-access-token:<ghs_...>`). */
  git(request: Request, repository: string, url: URL, token: string, backend: GitBackend): Promise<Response> | Response {
    const rec = this.#tokens.get(token);
    if (!rec || !this.#alive(rec)) return gitRefusal.unauthorized();
    if (!this.#covers(rec, repository)) return gitRefusal.notFound();
    const inst = this.#installations.get(rec.installationId)!;
    const identity = this.#keys.identity(inst.clientId)!;
    const bot: EmulatorUser = { id: identity.botUserId, login: `${identity.slug}[bot]`, name: null, repos: {} };
    if (isPush(url) && rec.permissions.contents !== "write") return gitRefusal.denied(repository, bot.login);
    return backend(request, repository, pathInfo(repository, url), bot);
  }

  // ---- internals ----

  /** `GET /repos/{owner}/{repo}/installation` with an App JWT (`fullName` still encoded). */
  async lookup(request: Request, fullName: string): Promise<Response> {
    const early = await this.#host.enter("installation");
    if (early) return early;
    const app = await this.#verifyJwt(request);
    if (app instanceof Response) return app;
    const asked = decodeURIComponent(fullName).toLowerCase();
    const current = this.#host.moved.get(asked);
    const name = (current ?? asked).toLowerCase();
    const [owner] = name.split("/");
    const inst = [...this.#installations.values()].find(
      (i) => i.clientId === app.clientId && i.account.toLowerCase() === owner && i.repositories.includes(name),
    );
    if (!inst) return this.#host.json(404, { message: "Not Found", documentation_url: "https://docs.github.com/rest/apps/apps" });
    if (current) return movedPermanently(this.#host.json, current);
    return this.#host.json(200, this.#installationBody(inst));
  }

  /** `POST /app/installations/{id}/access_tokens` with an App JWT. */
  async mint(request: Request, id: number): Promise<Response> {
    const early = await this.#host.enter("installation_token");
    if (early) return early;
    const app = await this.#verifyJwt(request);
    if (app instanceof Response) return app;
    const inst = this.#installations.get(id);
    if (!inst || inst.clientId !== app.clientId) return this.#host.json(404, { message: "Not Found" });
    if (inst.suspended) return this.#host.json(403, { message: "This installation has been suspended" });
    let body: { repositories?: unknown; permissions?: unknown };
    try {
      body = (await request.json()) as typeof body;
    } catch {
      body = {};
    }
    const owner = inst.account.toLowerCase();
    const asked = Array.isArray(body.repositories) ? body.repositories.map((n) => `${owner}/${String(n).toLowerCase()}`) : inst.repositories;
    if (asked.some((r) => !inst.repositories.includes(r))) {
      return this.#host.json(422, { message: "There is at least one repository that does not exist or is not accessible to the parent installation." });
    }
    const permissions = (body.permissions && typeof body.permissions === "object" ? body.permissions : inst.permissions) as Record<string, Level>;
    for (const [name, level] of Object.entries(permissions)) {
      const held = inst.permissions[name];
      if (!held || (level === "write" && held !== "write") || (level !== "read" && level !== "write")) {
        return this.#host.json(422, { message: "The permissions requested are not granted to this installation." });
      }
    }
    // GitHub's newer tokens are longer than 40 characters: so are these.
    const token = `ghs_${base64url(crypto.getRandomValues(new Uint8Array(48)))}`;
    const expiresAt = this.#host.now() + this.installationTokenExpiresIn * 1000;
    this.#tokens.set(token, { installationId: id, repositories: new Set(asked), permissions: { ...permissions }, expiresAt });
    return this.#host.json(201, {
      token,
      expires_at: new Date(expiresAt).toISOString().replace(/\.\d{3}Z$/, "Z"),
      permissions,
      repository_selection: "selected",
      repositories: asked.map((full_name) => ({ name: full_name.split("/")[1], full_name })),
    });
  }

  /** Verifies the App JWT; the App it is for, or the 401 GitHub would send. */
  async #verifyJwt(request: Request): Promise<EmulatorAppIdentity | Response> {
    const check = await this.#keys.verify(request, () => Math.floor(this.#host.now() / 1000));
    if (!check.ok) {
      this.jwtRejections++;
      return this.#host.json(401, { message: check.message, documentation_url: "https://docs.github.com/rest" });
    }
    this.lastJwt = { iss: check.iss, iat: check.iat, exp: check.exp, verifiedAt: check.verifiedAt };
    return check.identity;
  }

  #installation(id: number): EmulatorInstallation {
    const inst = this.#installations.get(id);
    if (!inst) throw new Error(`no installation ${id}`);
    return inst;
  }

  #installationBody(inst: EmulatorInstallation): Record<string, unknown> {
    const identity = this.#keys.identity(inst.clientId)!;
    return {
      id: inst.id,
      account: { login: inst.account, id: 100_000 + inst.id, type: "Organization" },
      app_id: identity.appId,
      app_slug: identity.slug,
      target_type: "Organization",
      permissions: inst.permissions,
      repository_selection: "selected",
      suspended_at: inst.suspended ? new Date(this.#host.now()).toISOString() : null,
    };
  }

  #alive(rec: TokenRecord): boolean {
    const inst = this.#installations.get(rec.installationId);
    return !!inst && !inst.suspended && rec.expiresAt > this.#host.now();
  }

  /** The token was minted for `repository`, and the installation still includes it. */
  #covers(rec: TokenRecord, repository: string): boolean {
    const name = repository.toLowerCase();
    return rec.repositories.has(name) && !!this.#installations.get(rec.installationId)?.repositories.includes(name);
  }

  async #notify(inst: EmulatorInstallation, event: string, fields: Record<string, unknown>): Promise<WebhookDelivery> {
    const app = this.#host.apps.get(inst.clientId);
    if (!app?.webhookSecret) throw new Error("app has no webhook secret");
    const body = JSON.stringify({ ...fields, installation: this.#installationBody(inst), sender: { login: "octo-admin", id: 1, type: "User" } });
    const delivery: WebhookDelivery = { event, deliveryId: crypto.randomUUID(), signature: await sign(app.webhookSecret, body), body };
    if (app.webhookUrl) {
      const res = await postWebhook((req) => this.#host.webhookFetch(req), app.webhookUrl, delivery);
      delivery.status = res.status;
      await res.body?.cancel();
    }
    return delivery;
  }
}
