/**
 * The installation actor: one Durable Object per GitHub App installation, which mints that
 * installation's tokens and caches them per (repository, permissions).
 *
 * ## Addressed by the account, not the installation id
 *
 * An App is installed at most once per account (user or organisation), so `(appType,
 * owner)` names exactly one installation, and it is known from the request alone. That is
 * where the repository → installation lookup (`GET /repos/{owner}/{repo}/installation`, 10
 * minutes) lives, in the same object as the tokens, so that:
 *
 * - a cached request is one Durable Object round trip, no more (the bench holds it to ≥ 0.9
 *   of a bare one);
 * - concurrent cold callers share one lookup as well as one mint (a lookup cache in the
 *   stateless Worker would be per isolate, and a promise shared across requests there dies
 *   with the request that created it);
 * - the installation webhooks, which carry the account, drop exactly this object's lookups
 *   and tokens, with no copy left in any isolate to go stale;
 * - nothing here is on the user-token path: only installation-token callers reach it.
 *
 * A reinstallation is a new installation id under the same account: lookups carry the id,
 * and a token is served only for the id the current lookup names.
 *
 * ## One mint for any number of callers
 *
 * As in the user actor: the decision "needs a mint" and the join-or-start of the shared
 * promise happen with no `await` between them; the promise leaves the map in `finally`;
 * storage is re-read after every `await`. An `#epoch`, bumped by every invalidation (a
 * webhook), marks answers that began before it: they are not stored, and the caller starts
 * over. Nothing is handed out that GitHub did not just mint or that is not stored as minted.
 *
 * Everything stored is a cache: a value that does not decrypt (a key removed from
 * `TOKEN_ENCRYPTION_KEYS`) is simply minted again, and an alarm purges what has expired
 * (tokens live an hour), so old keys stop mattering within the hour.
 */
import { DurableObject } from "cloudflare:workers";
import { catchingConfigErrors, loadConfig, type AppConfig, type BrokerConfig } from "../config";
import {
  failure,
  rfc3339,
  type Failure,
  type InstallationPermissions,
  type InstallationTokenGrant,
  type InstallationTokenResult,
} from "../contract";
import { ConfigError, loadKeyring, open, seal, type Keyring, type SealContext } from "../crypto";
import { jsonText, type JsonText } from "../json-text";
import { logEvent } from "../log";
import { recordMetric } from "../metrics";
import { INSTALLATION_ACTOR_MIGRATIONS, migrate } from "../schema";
import { UNKNOWN_APP_TYPE } from "../failures";
import { appFailure, notInstalled } from "./failures";
import { GitHubAppClient } from "./github-app";
import { singleFlight } from "../single-flight";
import { tokenCacheKey } from "./permissions";
import { deliveryOutcome, recordDelivery } from "./deliveries";

/** How long a repository → installation answer is reused. */
export const LOOKUP_TTL_MS = 10 * 60_000;
/** How long "not installed" (or suspended) is reused: short, so a fresh installation works at once. */
export const NEGATIVE_LOOKUP_TTL_MS = 30_000;
/** Alarm slack after the earliest expiry. */
const PURGE_SLACK_MS = 60_000;

/** What the Worker asks for; validated there. */
export interface InstallationTokenInput {
  appType: string;
  /** Validated `owner/name`, as the caller wrote it. */
  repository: string;
  /** Canonical (sorted) permissions. */
  permissions: InstallationPermissions;
  minValiditySeconds: number;
}

/** An installation webhook, reduced to what it makes stale. */
export interface InstallationInvalidation {
  appType: string;
  installationId: string;
  /** Lowercase `owner/name`s; absent: everything of the installation. */
  repositories?: string[];
  /** `X-GitHub-Delivery`, when GitHub sent one: a redelivery is answered from the record. */
  deliveryId?: string;
}

type LookupRow = {
  repository: string;
  installation_id: string | null;
  suspended: number;
  looked_up_at: number;
  expires_at: number;
};

type TokenRow = {
  cache_key: string;
  repository: string;
  installation_id: string;
  permissions: string;
  token: string;
  expires_at: number;
};

interface Context {
  app: AppConfig & { slug: string; botUserId: string };
  config: BrokerConfig;
  keyring: Keyring;
  github: GitHubAppClient;
}

/** `until`: when the lookup stops being reused. */
type Lookup = { ok: true; installationId: string; until: number } | Failure;
/** A mint's outcome; `retry`: an invalidation arrived meanwhile, nothing was stored. */
type Minted = { ok: true; row: TokenRow; token: string } | Failure | "retry";

export class InstallationActor extends DurableObject<Env> {
  readonly #lookups = new Map<string, Promise<Lookup>>();
  readonly #mints = new Map<string, Promise<Minted>>();
  /** Decrypted tokens by cache key, keyed by their sealed form (memory only). */
  readonly #opened = new Map<string, { sealed: string; token: string }>();
  /**
   * The hot path: the last grant per (appType, cache key), answered with no storage read and
   * no await while its epoch is current, its lookup fresh and its token long-lived enough.
   */
  readonly #hot = new Map<string, { epoch: number; lookupUntil: number; expiresAt: number; grant: InstallationTokenGrant }>();
  #epoch = 0;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    migrate(ctx.storage, INSTALLATION_ACTOR_MIGRATIONS);
  }

  /** An installation token for one repository (`POST /v1/installations/token`). */
  async token(input: InstallationTokenInput): Promise<InstallationTokenResult> {
    const started = Date.now();
    const hotKey = `${input.appType} ${tokenCacheKey(input.repository, input.permissions)}`;
    const hot = this.#hot.get(hotKey);
    if (hot && hot.epoch === this.#epoch && started < hot.lookupUntil && hot.expiresAt - started >= input.minValiditySeconds * 1000) {
      recordMetric(this.env, { operation: "installation_token", outcome: "ok", appType: input.appType, durationMs: 0, githubCalls: 0 });
      return { ...hot.grant, repository: input.repository, expiresInSeconds: Math.floor((hot.expiresAt - started) / 1000) };
    }
    const seen = { installationId: undefined as string | undefined, githubCalls: 0 };
    const result: InstallationTokenResult = await catchingConfigErrors(() => this.#token(input, seen, hotKey));
    const outcome = result.ok ? "ok" : result.reason;
    const durationMs = Date.now() - started;
    recordMetric(this.env, { operation: "installation_token", outcome, appType: input.appType, durationMs, githubCalls: seen.githubCalls });
    // Hand-outs are counted by the metric; failures are also logged, for the operator.
    if (!result.ok) logEvent({ event: "installation_token", appType: input.appType, installationId: seen.installationId, outcome, durationMs });
    return result;
  }

  /**
   * {@link token} for the internal API: a grant comes back as its JSON text, which crosses
   * the RPC boundary far cheaper than the object and is the HTTP answer as it is
   * (src/json-text.ts); a failure stays a value.
   */
  async tokenText(input: InstallationTokenInput): Promise<JsonText<InstallationTokenGrant> | Failure> {
    const result = await this.token(input);
    return result.ok ? jsonText(result) : result;
  }

  /**
   * Drops the lookups and tokens an installation webhook made stale; returns how many. A
   * redelivery (the same `deliveryId`) changes nothing and returns what the first answered.
   */
  async invalidate(input: InstallationInvalidation): Promise<{ lookups: number; tokens: number }> {
    const sql = this.ctx.storage.sql;
    const seen = input.deliveryId ? deliveryOutcome(sql, input.deliveryId) : null;
    if (seen) return seen;
    this.#epoch++;
    let lookups = 0;
    let tokens = 0;
    this.ctx.storage.transactionSync(() => {
      if (input.repositories) {
        for (const repository of input.repositories) {
          lookups += sql.exec("DELETE FROM lookups WHERE repository = ?", repository).rowsWritten;
          tokens += sql.exec("DELETE FROM tokens WHERE repository = ?", repository).rowsWritten;
        }
      } else {
        // Every lookup of this account (the negative ones too: an unsuspended installation
        // must work at once), and every token of the installation.
        lookups += sql.exec("DELETE FROM lookups").rowsWritten;
        tokens += sql.exec("DELETE FROM tokens").rowsWritten;
      }
      // In the same step as the work: a delivery is either handled and recorded, or neither.
      if (input.deliveryId) recordDelivery(sql, input.deliveryId, { lookups, tokens });
    });
    this.#opened.clear();
    this.#hot.clear();
    logEvent({ event: "installation_invalidated", appType: input.appType, installationId: input.installationId, lookups, tokens });
    return { lookups, tokens };
  }

  /** Purges expired tokens and lookups; comes back while anything is left. */
  override async alarm(): Promise<void> {
    const now = Date.now();
    const sql = this.ctx.storage.sql;
    sql.exec("DELETE FROM tokens WHERE expires_at <= ?", now);
    sql.exec("DELETE FROM lookups WHERE expires_at <= ?", now);
    for (const key of this.#opened.keys()) {
      if (!sql.exec("SELECT 1 FROM tokens WHERE cache_key = ?", key).toArray().length) this.#opened.delete(key);
    }
    const next = this.#earliestExpiry();
    this.#alarmAt = next === null ? null : next + PURGE_SLACK_MS;
    if (this.#alarmAt !== null) await this.ctx.storage.setAlarm(this.#alarmAt);
  }

  // ------------------------------------------------------------------ internals

  async #token(
    input: InstallationTokenInput,
    seen: { installationId?: string; githubCalls: number },
    hotKey: string,
  ): Promise<InstallationTokenResult> {
    const c = await this.#context(input.appType);
    if (!c.ok) return c;
    const repo = input.repository.toLowerCase();
    const key = tokenCacheKey(repo, input.permissions);
    for (let attempt = 0; attempt < 3; attempt++) {
      const lookup = await this.#lookup(c.value, repo, seen);
      if (!lookup.ok) return lookup;
      seen.installationId = lookup.installationId;
      const cached = await this.#cached(c.value, key, lookup.installationId, input.minValiditySeconds * 1000);
      if (cached) return this.#grant(c.value, input.repository, cached.row, cached.token, hotKey, lookup.until);
      const minted = await singleFlight(this.#mints, `${this.#epoch} ${lookup.installationId} ${key}`, () => {
        seen.githubCalls++;
        return this.#mint(c.value, key, repo, lookup.installationId, input.permissions);
      });
      if (minted === "retry") continue;
      return minted.ok ? this.#grant(c.value, input.repository, minted.row, minted.token, hotKey, lookup.until) : minted;
    }
    return failure("github_unavailable", "The installation kept changing while its token was minted; try again.", 1);
  }

  async #context(appType: string): Promise<{ ok: true; value: Context } | Failure> {
    const config = loadConfig(this.env);
    const app = config.apps.get(appType);
    if (!app) return UNKNOWN_APP_TYPE;
    if (!app.slug || !app.botUserId) {
      throw new ConfigError(`GITHUB_APPS: ${appType} needs slug and botUserId for installation tokens`);
    }
    if (!app.privateKey) throw new ConfigError(`GITHUB_APP_PRIVATE_KEY_${appType.toUpperCase()} is not set: installation tokens are off for this App`);
    const keyring = await loadKeyring(this.env.TOKEN_ENCRYPTION_KEYS);
    const withBot = app as Context["app"];
    return { ok: true, value: { app: withBot, config, keyring, github: new GitHubAppClient(config, app) } };
  }

  /** The installation serving `repo`: stored if fresh, else one GitHub lookup for every caller. */
  async #lookup(c: Context, repo: string, seen: { githubCalls: number }): Promise<Lookup> {
    const row = this.#lookupRow(repo);
    if (row) return lookupResult(row);
    return singleFlight(this.#lookups, `${this.#epoch} ${repo}`, async () => {
      seen.githubCalls++;
      const epoch = this.#epoch;
      const res = await c.github.findInstallation(repo);
      const now = Date.now();
      if (!res.ok) {
        if (res.error.kind !== "not_found") return appFailure(c.app, res.error);
        if (epoch === this.#epoch) this.#storeLookup({ repository: repo, installation_id: null, suspended: 0, looked_up_at: now, expires_at: now + NEGATIVE_LOOKUP_TTL_MS });
        return notInstalled();
      }
      const { installationId, suspended } = res.value;
      const fresh: LookupRow = {
        repository: repo,
        installation_id: installationId,
        suspended: suspended ? 1 : 0,
        looked_up_at: now,
        expires_at: now + (suspended ? NEGATIVE_LOOKUP_TTL_MS : LOOKUP_TTL_MS),
      };
      // An answer that began before a webhook is used once, never stored.
      if (epoch === this.#epoch) this.#storeLookup(fresh);
      return lookupResult(fresh);
    });
  }

  #lookupRow(repo: string): LookupRow | null {
    const rows = this.ctx.storage.sql.exec<LookupRow>("SELECT * FROM lookups WHERE repository = ? AND expires_at > ?", repo, Date.now()).toArray();
    return rows[0] ?? null;
  }

  #storeLookup(row: LookupRow): void {
    this.ctx.storage.sql.exec(
      "INSERT OR REPLACE INTO lookups (repository, installation_id, suspended, looked_up_at, expires_at) VALUES (?, ?, ?, ?, ?)",
      row.repository,
      row.installation_id,
      row.suspended,
      row.looked_up_at,
      row.expires_at,
    );
    this.#scheduleAlarm(row.expires_at);
  }

  /** The stored token for `key` of `installationId`, if it has `minValidityMs` left and decrypts. */
  async #cached(c: Context, key: string, installationId: string, minValidityMs: number): Promise<{ row: TokenRow; token: string } | null> {
    const row = this.#tokenRow(key, installationId);
    if (!row || row.expires_at - Date.now() < minValidityMs) return null;
    const memo = this.#opened.get(key);
    if (memo?.sealed === row.token) return { row, token: memo.token };
    const token = await open(c.keyring, row.token, sealContext(c, installationId, key));
    // Re-read after the await: a webhook or a mint may have replaced it.
    const now = this.#tokenRow(key, installationId);
    if (token === null || now?.token !== row.token) return null;
    this.#opened.set(key, { sealed: row.token, token });
    return { row, token };
  }

  #tokenRow(key: string, installationId: string): TokenRow | null {
    const rows = this.ctx.storage.sql
      .exec<TokenRow>("SELECT * FROM tokens WHERE cache_key = ? AND installation_id = ?", key, installationId)
      .toArray();
    return rows[0] ?? null;
  }

  /** One `POST /app/installations/{id}/access_tokens`; stored before anyone sees the token. */
  async #mint(c: Context, key: string, repo: string, installationId: string, permissions: InstallationPermissions): Promise<Minted> {
    const epoch = this.#epoch;
    const res = await c.github.mintToken(installationId, repo.split("/")[1]!, permissions);
    const receivedAt = Date.now();
    if (!res.ok) {
      const e = res.error;
      if (epoch !== this.#epoch) return "retry";
      if (e.kind === "not_found" || e.kind === "forbidden" || (e.kind === "unprocessable" && !e.permissions)) {
        // Uninstalled, suspended, or the repository left the installation: what we knew is stale.
        this.ctx.storage.transactionSync(() => {
          this.ctx.storage.sql.exec("DELETE FROM lookups WHERE installation_id = ?", installationId);
          this.ctx.storage.sql.exec("DELETE FROM tokens WHERE installation_id = ?", installationId);
        });
        this.#epoch++;
        this.#opened.clear();
        logEvent({ event: "installation_mint", appType: c.app.appType, installationId, outcome: "not_installed", detail: e.detail });
        return notInstalled();
      }
      return appFailure(c.app, e);
    }
    const { token, remainingMs } = res.value;
    const row: TokenRow = {
      cache_key: key,
      repository: repo,
      installation_id: installationId,
      permissions: JSON.stringify(res.value.permissions),
      token: await seal(c.keyring, token, sealContext(c, installationId, key)),
      // One clock: the broker's receipt time plus the life GitHub gave it (on GitHub's clock).
      expires_at: receivedAt + Math.max(0, remainingMs),
    };
    if (epoch !== this.#epoch) return "retry";
    this.ctx.storage.sql.exec(
      "INSERT OR REPLACE INTO tokens (cache_key, repository, installation_id, permissions, token, expires_at, minted_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
      row.cache_key,
      row.repository,
      row.installation_id,
      row.permissions,
      row.token,
      row.expires_at,
      receivedAt,
    );
    this.#opened.set(key, { sealed: row.token, token });
    this.#scheduleAlarm(row.expires_at);
    return { ok: true, row, token };
  }

  #grant(c: Context, repository: string, row: TokenRow, token: string, hotKey: string, lookupUntil: number): InstallationTokenGrant {
    const { slug, botUserId } = c.app;
    const grant: InstallationTokenGrant = {
      ok: true,
      identity: "app",
      token,
      expiresAt: rfc3339(row.expires_at),
      expiresInSeconds: Math.max(0, Math.floor((row.expires_at - Date.now()) / 1000)),
      installationId: row.installation_id,
      repository,
      permissions: JSON.parse(row.permissions) as InstallationPermissions,
      committer: { name: `${slug}[bot]`, email: `${botUserId}+${slug}[bot]@users.noreply.github.com` },
    };
    this.#hot.set(hotKey, { epoch: this.#epoch, lookupUntil, expiresAt: row.expires_at, grant });
    return grant;
  }

  #earliestExpiry(): number | null {
    const row = this.ctx.storage.sql
      .exec<{ at: number | null }>("SELECT MIN(at) AS at FROM (SELECT MIN(expires_at) AS at FROM tokens UNION ALL SELECT MIN(expires_at) FROM lookups)")
      .one();
    return row.at ?? null;
  }

  /** When the alarm is due, as far as this instance knows (memory only). */
  #alarmAt: number | null = null;

  /** Makes sure an alarm comes no later than `expiresAt` + slack (the output gate makes it durable). */
  #scheduleAlarm(expiresAt: number): void {
    const at = expiresAt + PURGE_SLACK_MS;
    if (this.#alarmAt !== null && this.#alarmAt > Date.now() && this.#alarmAt <= at) return;
    this.#alarmAt = at;
    this.ctx.storage.setAlarm(at).catch(() => {
      this.#alarmAt = null;
    });
  }
}

function lookupResult(row: LookupRow): Lookup {
  return row.installation_id === null || row.suspended
    ? notInstalled()
    : { ok: true, installationId: row.installation_id, until: row.expires_at };
}

function sealContext(c: Context, installationId: string, key: string): SealContext {
  return { userId: `installation:${installationId}`, appType: c.app.appType, field: `token ${key}` };
}
