/**
 * The internal API's field parsers: one per field of a request's path, query or body. Each
 * returns the clean value (the contract's default when the field is absent) or a
 * {@link Failure} with reason `invalid_request` and a message that names the field, never
 * echoing a secret. The requests they make up are parsed in ./requests.ts; the rules shared
 * with the proxies (names, GitHub repositories, bodies) are in ../validate.ts, and each
 * provider's repository paths in ../providers/index.ts.
 */
import type { ScopeRequest } from "../actor/scoped-tokens";
import type { AppConfig, BrokerConfig } from "../config";
import { DEFAULT_INSTALLATION_PERMISSIONS, failure, type CapabilityIdentity, type Failure, type InstallationPermissions, type Permission } from "../contract";
import { INVALID_TICKET } from "../failures";
import { REPOSITORY_PERMISSIONS } from "../installations/permissions";
import { checkReturnTo } from "../oauth";
import type { Provider } from "../providers/provider";
import { DEFAULT_MIN_VALIDITY_SECONDS, isName, NAME_RULE, type Parsed } from "../validate";

// ---- who and which App ----

export function parseUserId(value: unknown): Parsed<string> {
  return isName(value) ? { ok: true, value } : failure("invalid_request", `userId must be ${NAME_RULE}`);
}

export function parseAppType(config: BrokerConfig, value: unknown): Parsed<AppConfig> {
  const app = typeof value === "string" ? config.apps.get(value) : undefined;
  return app ? { ok: true, value: app } : failure("invalid_request", `appType must be one of: ${[...config.apps.keys()].join(", ")}`);
}

// ---- user and installation tokens ----

export function parsePermission(value: unknown): Parsed<Permission> {
  if (value === undefined) return { ok: true, value: "push" };
  return value === "push" || value === "pull" ? { ok: true, value } : failure("invalid_request", 'permission must be "push" or "pull"');
}

export function parseMinValidity(value: unknown): Parsed<number> {
  if (value === undefined) return { ok: true, value: DEFAULT_MIN_VALIDITY_SECONDS };
  return typeof value === "number" && Number.isInteger(value) && value >= 0 && value <= 3600
    ? { ok: true, value }
    : failure("invalid_request", "minValiditySeconds must be an integer from 0 to 3600");
}

const PERMISSION_NAME = /^[a-z][a-z_]{0,63}$/;
const UNSCOPED: Parsed<null> = { ok: true, value: null };

/**
 * `scope` and `permissions` of a user-token request: `undefined` → an ordinary user token;
 * `"repository"` → scoped (actor/scoped-tokens.ts), with `permissions` an object of GitHub's
 * repository permission names (`contents`, `pull_requests`, ...; the list installation tokens
 * use) to `read` or `write`, at most 30, sorted by name.
 */
export function parseTokenScope(scope: unknown, permissions: unknown): Parsed<ScopeRequest | null> {
  if (scope === undefined) {
    return permissions === undefined ? UNSCOPED : failure("invalid_request", 'permissions needs scope: "repository"');
  }
  if (scope !== "repository") return failure("invalid_request", 'scope must be "repository" (or absent)');
  if (permissions === undefined) return { ok: true, value: { permissions: null } };
  const bad = failure("invalid_request", 'permissions must be an object of 1-30 GitHub permission names to "read" or "write"');
  if (!permissions || typeof permissions !== "object" || Array.isArray(permissions)) return bad;
  const entries = Object.entries(permissions as Record<string, unknown>);
  if (entries.length === 0 || entries.length > 30) return bad;
  if (!entries.every(([k, v]) => PERMISSION_NAME.test(k) && (v === "read" || v === "write"))) return bad;
  // A misspelled name is the caller's mistake: said at once, never left for GitHub to refuse
  // (which an agent would take for a lack of access and fall back to the App on).
  const unknown = entries.find(([k]) => !REPOSITORY_PERMISSIONS.has(k));
  if (unknown) return unknownPermission(unknown[0]);
  return { ok: true, value: { permissions: Object.fromEntries(entries.sort(([a], [b]) => (a < b ? -1 : 1))) as Record<string, string> } };
}

const NO_FALLBACK: Parsed<undefined> = { ok: true, value: undefined };

/** `fallback` (installations/fallback.ts): absent, or `"app"`. */
export function parseFallback(value: unknown): Parsed<"app" | undefined> {
  if (value === undefined) return NO_FALLBACK;
  return value === "app" ? { ok: true, value: "app" } : failure("invalid_request", 'fallback must be "app"');
}

/**
 * An installation token's `permissions`, as given (an object of permission name → `"read"` |
 * `"write"`), sorted by name; the contract's default (`contents` and `pull_requests` write)
 * when absent, so a caller never gets more than it asked for, nor more than the default
 * without asking.
 */
export function parseInstallationPermissions(value: unknown): Parsed<InstallationPermissions> {
  if (value === undefined) return { ok: true, value: { ...DEFAULT_INSTALLATION_PERMISSIONS } };
  const bad = failure(
    "invalid_request",
    'permissions must be an object of GitHub repository permission names to "read" or "write", e.g. {"contents": "write"}',
  );
  if (!value || typeof value !== "object" || Array.isArray(value)) return bad;
  const entries = Object.entries(value as Record<string, unknown>);
  if (entries.length === 0 || entries.length > REPOSITORY_PERMISSIONS.size) return bad;
  const out: InstallationPermissions = {};
  for (const [name, level] of entries.sort(([a], [b]) => (a < b ? -1 : 1))) {
    if (!REPOSITORY_PERMISSIONS.has(name)) {
      // Echoed only when it looks like a permission name: a caller's input is not ours to repeat.
      return /^[a-z_]{1,40}$/.test(name) ? unknownPermission(name) : bad;
    }
    if (level !== "read" && level !== "write") return bad;
    out[name] = level;
  }
  return { ok: true, value: out };
}

/** A well-formed permission name GitHub does not have (the caller has checked its shape). */
function unknownPermission(name: string): Failure {
  return failure("invalid_request", `permissions: unknown repository permission "${name}"`);
}

/** `POST .../token/rejected`'s `token`: the access token the provider refused. */
export function parseRejectedToken(value: unknown): Parsed<string> {
  return typeof value === "string" && value.length > 0 && value.length <= 512
    ? { ok: true, value }
    : failure("invalid_request", "token must be the access token the provider (GitHub or GitLab) refused");
}

// ---- capabilities ----

/** A capability's `sessionId`: the platform's name for an agent session, the user id's characters. */
export function parseSessionId(value: unknown): Parsed<string> {
  return isName(value) ? { ok: true, value } : failure("invalid_request", `sessionId must be ${NAME_RULE}`);
}

/**
 * A capability's `containerId` (absent: unbound): what `ctx.containerId` names in a container's
 * outbound handler, of the user id's characters (a Durable Object id is 64 hex digits).
 */
export function parseContainerId(value: unknown): Parsed<string | null> {
  if (value === undefined || value === null) return { ok: true, value: null };
  return isName(value) ? { ok: true, value } : failure("invalid_request", `containerId must be ${NAME_RULE}`);
}

/** A capability's `ttlSeconds`: 1-28800, default 3600. */
export function parseTtlSeconds(value: unknown): Parsed<number> {
  if (value === undefined || value === null) return { ok: true, value: 3600 };
  return typeof value === "number" && Number.isInteger(value) && value >= 1 && value <= 28_800
    ? { ok: true, value }
    : failure("invalid_request", "ttlSeconds must be an integer from 1 to 28800");
}

const IDENTITIES: readonly CapabilityIdentity[] = ["user", "app", "user_or_app"];

/** `identity`: absent (`user`), or one of {@link CapabilityIdentity}; the App's identity only for a GitHub App. */
export function parseCapabilityIdentity(value: unknown, app: AppConfig, provider: Provider): Parsed<CapabilityIdentity> {
  if (value === undefined) return { ok: true, value: "user" };
  if (typeof value !== "string" || !(IDENTITIES as readonly string[]).includes(value)) return failure("invalid_request", 'identity must be "user", "app" or "user_or_app"');
  if (value !== "user" && !provider.installations) return failure("invalid_request", `identity "${value}" needs a GitHub App's installation; ${app.appType} is not one`);
  return { ok: true, value: value as CapabilityIdentity };
}

// ---- connect ----

/** `returnTo`: an absolute URL on an allowed origin (oauth.ts `checkReturnTo`), normalised. */
export function parseReturnTo(config: BrokerConfig, value: unknown): Parsed<string> {
  const returnTo = checkReturnTo(config, value);
  return returnTo ? { ok: true, value: returnTo } : failure("invalid_request", "returnTo must be an absolute URL on an origin in ALLOWED_RETURN_ORIGINS");
}

export function parseSelectAccount(value: unknown): Parsed<boolean> {
  if (value === undefined || value === null) return { ok: true, value: false };
  return typeof value === "boolean" ? { ok: true, value } : failure("invalid_request", "selectAccount must be true or false");
}

/**
 * `connect/confirm`'s `ticket`: any string, whose MAC the operation checks. Anything else is
 * {@link INVALID_TICKET}, as a forged ticket is: a caller learns nothing from the difference.
 */
export function parseTicket(value: unknown): Parsed<string> {
  return typeof value === "string" ? { ok: true, value } : INVALID_TICKET;
}

// ---- audit ----

/** `limit` of an audit page, from the query string or RPC: 1-500, default 50. */
export function parseAuditLimit(value: unknown): Parsed<number> {
  const n = value === undefined || value === null || value === "" ? 50 : Number(value);
  return Number.isInteger(n) && n >= 1 && n <= 500 ? { ok: true, value: n } : failure("invalid_request", "limit must be an integer from 1 to 500");
}

/** `before` of an audit page: a previous page's `nextBefore`, or absent (`null`: the newest). */
export function parseAuditBefore(value: unknown): Parsed<number | null> {
  const b = value === undefined || value === null || value === "" ? null : Number(value);
  return b === null || (Number.isSafeInteger(b) && b >= 1) ? { ok: true, value: b } : failure("invalid_request", "before must be the nextBefore of a previous page");
}
