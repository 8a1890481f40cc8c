/**
 * Test helpers for GitLab Apps: drive the GitLab emulator (emulator/gitlab.ts) and connect a
 * platform user to the `gitlab` App through the real two-phase flow.
 */
import type { GitLabEndpoint, GitLabFaultKind, GitLabHistory, GitLabSettings, GitLabUser, ProjectAccess } from "../../emulator/gitlab";
import { GITLAB_APP, GITLAB_URL, RETURN_ORIGIN } from "./env";
import { callApi, callbackTicket, confirmConnect, flushEvents } from "./helpers";

async function control<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
  const res = await fetch(`${GITLAB_URL}/_emulator/${path}`, {
    method,
    headers: { "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (!res.ok) throw new Error(`gitlab emulator ${method} ${path}: ${res.status} ${await res.text()}`);
  return (await res.json()) as T;
}

/** The GitLab emulator's control API. */
export const gitlab = {
  reset: () => control("POST", "reset"),
  addUser: (user: { id: number; username: string; name?: string; projects?: Record<string, ProjectAccess> }) =>
    control("POST", "users", { name: user.username, projects: {}, ...user } satisfies GitLabUser),
  makePublic: (path: string) => control("POST", "public", { path }),
  settings: (settings: Partial<GitLabSettings>) => control("POST", "settings", settings),
  clock: (offsetSeconds: number) => control("POST", "clock", { offsetSeconds }),
  fault: (fault: { endpoint: GitLabEndpoint; kind: GitLabFaultKind; count?: number }) => control("POST", "faults", fault),
  clearFaults: () => control("DELETE", "faults"),
  stats: () => control<{ counts: Record<GitLabEndpoint, number>; faultsInjected: Record<string, number>; droppedRotations: number }>("GET", "stats"),
  authorize: (p: { clientId: string; userId: number; redirectUri: string; codeChallenge: string | null }) => control<{ code: string }>("POST", "authorize", p),
  tokenState: (token: string) => control<{ state: { alive: boolean; pairId: number; killedBy?: string; killedSeq?: number } | null }>("GET", `token?token=${encodeURIComponent(token)}`).then((r) => r.state),
  /** Arms a hold on the `skip + 1`-th matching request (emulator/gitlab.ts). */
  hold: (options: { match?: GitLabEndpoint[]; skip?: number } = {}) => control<{ id: number }>("POST", "holds", options).then((r) => r.id),
  held: (id: number) => control<{ caught: string | null }>("GET", `holds/${id}`).then((r) => r.caught),
  release: (id: number) => control("POST", `holds/${id}/release`),
  history: (userId: number) => control<GitLabHistory>("GET", `history?userId=${userId}`),
  liveRefreshTokens: (userId: number) => control<{ refreshTokens: string[] }>("GET", `live?clientId=${GITLAB_APP.clientId}&userId=${userId}`).then((r) => r.refreshTokens),
};

/** Starts a connect to the `gitlab` App and has the emulator's user approve it; returns the callback path and the authorize URL. */
export async function authorizeGitLab(userId: string, gitlabUserId: number): Promise<{ callbackPath: string; authorizeUrl: URL }> {
  const started = await callApi("POST", `/users/${encodeURIComponent(userId)}/connect`, { appType: "gitlab", returnTo: `${RETURN_ORIGIN}/settings/gitlab` });
  if (started.status !== 200) throw new Error(`connect answered ${started.status}: ${JSON.stringify(started.body)}`);
  const authorizeUrl = new URL(started.body.authorizeUrl);
  const { code } = await gitlab.authorize({
    clientId: authorizeUrl.searchParams.get("client_id")!,
    userId: gitlabUserId,
    redirectUri: authorizeUrl.searchParams.get("redirect_uri")!,
    codeChallenge: authorizeUrl.searchParams.get("code_challenge"),
  });
  const callback = new URL(authorizeUrl.searchParams.get("redirect_uri")!);
  callback.searchParams.set("code", code);
  callback.searchParams.set("state", authorizeUrl.searchParams.get("state")!);
  return { callbackPath: callback.pathname + callback.search, authorizeUrl };
}

/** Connects `userId` to the `gitlab` App as `user` (connect → consent → callback → confirm). */
export async function connectGitLabUser(
  userId: string,
  user: { id: number; username: string; name?: string; projects?: Record<string, ProjectAccess> },
): Promise<Record<string, any>> {
  await gitlab.addUser(user);
  const { callbackPath } = await authorizeGitLab(userId, user.id);
  const confirmed = await confirmConnect(userId, await callbackTicket(callbackPath));
  if (confirmed.status !== 200) throw new Error(`confirm answered ${confirmed.status}: ${JSON.stringify(confirmed.body)}`);
  await flushEvents(userId);
  return confirmed.body;
}

/** Asks for the user's GitLab token for `repository`. */
export function gitlabToken(userId: string, body: Record<string, unknown>) {
  return callApi("POST", `/users/${encodeURIComponent(userId)}/token`, { appType: "gitlab", ...body });
}
