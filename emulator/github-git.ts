/**
 * git smart-HTTP as github.com serves it (`/{owner}/{repo}.git/...`, `x-access-token` Basic
 * auth): the token and the permission are checked here, the repository is served by the
 * backend (emulator/git-backend.ts); installation tokens go to emulator/github-apps.ts.
 */
import type { GitHubAppsEmulator } from "./github-apps.ts";
import type { GitBackend, GitHubHost } from "./github-host.ts";

/** The token of a git request's Basic auth (`user:token`), or `""`. */
export function basicToken(request: Request): string {
  const auth = /^Basic (.+)$/i.exec(request.headers.get("authorization") ?? "");
  try {
    return auth ? atob(auth[1]!).split(":").slice(1).join(":") : "";
  } catch {
    return "";
  }
}

/** Whether a git request pushes. */
export function isPush(url: URL): boolean {
  return url.pathname.endsWith("/git-receive-pack") || url.searchParams.get("service") === "git-receive-pack";
}

/** The backend's path for a request to `repository`: `/{repository}.git/...`. */
export function pathInfo(repository: string, url: URL): string {
  return `/${repository}.git${url.pathname.slice(url.pathname.indexOf(".git/") + 4)}`;
}

/** GitHub's git answers to a refused request. */
export const gitRefusal = {
  unauthorized: () => new Response("Invalid username or token.\n", { status: 401, headers: { "www-authenticate": 'Basic realm="GitHub"' } }),
  notFound: () => new Response("Repository not found.\n", { status: 404 }),
  denied: (repository: string, login: string) => new Response(`Permission to ${repository}.git denied to ${login}.\n`, { status: 403 }),
};

/** Serves one git request to `repository` (`owner/name`) through `backend`. */
export async function serveGit(host: GitHubHost, apps: GitHubAppsEmulator, backend: GitBackend, request: Request, repository: string, url: URL): Promise<Response> {
  const early = await host.enter("git", request);
  if (early) return early;
  const token = basicToken(request);
  if (token.startsWith("ghs_")) return apps.git(request, repository, url, token, backend);
  const rec = token ? host.tokens.access.get(token) : undefined;
  if (!rec || !rec.alive || rec.expiresAt <= host.now()) return gitRefusal.unauthorized();
  const user = host.users.get(rec.userId)!;
  const perm = host.tokens.permission(rec, repository);
  if (!perm) return gitRefusal.notFound();
  if (isPush(url) && perm !== "push") return gitRefusal.denied(repository, user.login);
  return backend(request, repository, pathInfo(repository, url), user);
}
