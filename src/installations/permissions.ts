/**
 * GitHub's repository permission names, which the request parsers (http/fields.ts) check a
 * request's `permissions` against, and the one canonical form of a scope, so that the same
 * scope always hits the same cached token.
 */
import type { InstallationPermissions } from "../contract";

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

/** The cache key of a token: lowercase repository and the canonical permissions. */
export function tokenCacheKey(repository: string, permissions: InstallationPermissions): string {
  const sorted = Object.keys(permissions)
    .sort()
    .map((k) => [k, permissions[k]]);
  return `${repository.toLowerCase()} ${JSON.stringify(Object.fromEntries(sorted))}`;
}
