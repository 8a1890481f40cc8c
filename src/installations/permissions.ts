/**
 * The `permissions` of an installation-token request: validated against GitHub's repository
 * permission names, and put in one canonical form so that the same scope always hits the same
 * cached token.
 */
import { DEFAULT_INSTALLATION_PERMISSIONS, failure, type InstallationPermissions } from "../contract";
import type { Parsed } from "../validate";

/**
 * GitHub's repository permissions for Apps (REST "Create an installation access token").
 * Organisation and account permissions are left out: a token here is for one repository.
 */
export const REPOSITORY_PERMISSIONS: ReadonlySet<string> = new Set([
  "actions",
  "administration",
  "attestations",
  "checks",
  "codespaces",
  "contents",
  "dependabot_secrets",
  "deployments",
  "discussions",
  "environments",
  "issues",
  "merge_queues",
  "metadata",
  "packages",
  "pages",
  "pull_requests",
  "repository_custom_properties",
  "repository_hooks",
  "repository_projects",
  "secret_scanning_alerts",
  "secrets",
  "security_events",
  "single_file",
  "statuses",
  "vulnerability_alerts",
  "workflows",
]);

/**
 * `permissions` as given (an object of permission name → `"read"` | `"write"`), sorted by
 * name; the contract's default (`contents` and `pull_requests` write) when absent, so a
 * caller never gets more than it asked for, nor more than the default without asking.
 */
export function parsePermissions(value: unknown): Parsed<InstallationPermissions> {
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
      return /^[a-z_]{1,40}$/.test(name) ? failure("invalid_request", `permissions: unknown repository permission "${name}"`) : bad;
    }
    if (level !== "read" && level !== "write") return bad;
    out[name] = level;
  }
  return { ok: true, value: out };
}

/** The cache key of a token: lowercase repository and the canonical permissions. */
export function tokenCacheKey(repository: string, permissions: InstallationPermissions): string {
  const sorted = Object.keys(permissions)
    .sort()
    .map((k) => [k, permissions[k]]);
  return `${repository.toLowerCase()} ${JSON.stringify(Object.fromEntries(sorted))}`;
}
