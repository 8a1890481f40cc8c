/**
 * The local demo's server side (`npm start`, then open /demo): it plays the platform's web
 * app, faithfully, so what a newcomer sees is what their own web app must do.
 *
 * - **A signed-in user per browser**: a cookie names one of two demo platform users, `alice`
 *   and `mallory`, so the account-linking attack the two-phase connect stops can be shown.
 * - **The confirmation step**: GitHub → the broker's callback → `/demo/return` with a
 *   `connect_ticket`. This server confirms with the user id of *this browser's session*
 *   (the cookie), never with an id taken from the URL: a link that mallory started and
 *   alice's browser finished is confirmed as alice, and the broker answers `invalid_ticket`.
 *   The broker cannot tell that from an expired or used ticket, so neither can the page: it
 *   says so without accusing anyone (src/dev/words.ts, `not_started_here`).
 * - Its small JSON API (`POST /demo/api/<action>`) calls the same operations as `/v1`.
 *
 * Served by the dev entry only (src/dev/entry.ts), and only while `PUBLIC_BASE_URL` is a
 * loopback address: the API has no authentication beyond the demo cookie.
 */
import * as api from "../api";
import { userActor } from "../actors";
import { capabilityRemote } from "../client";
import { loadConfig } from "../config";
import { failure, type CapabilityGrant, type Failure } from "../contract";
import { providerOf } from "../providers";
import { readJsonBody } from "../validate";
import type { DemoUserActor } from "./demo-actor";
import { DEMO_USERS, demoPage, type DemoUser } from "./demo-page";

/** The demo's two connections: the GitHub App and the GitLab application (wrangler.local.toml). */
const APP_TYPES = ["standard", "gitlab"] as const;
const USER_COOKIE = "demo_user";
/**
 * Set when this browser starts a connect, to the appType: a ticket arriving without it was not
 * started here (or the cookie's 10 minutes are over), and a failure says which provider failed.
 */
const PENDING_COOKIE = "demo_connect_started";
/** Rows per page of the audit table. */
const AUDIT_LIMIT_MAX = 50;

/** Whether the demo answers: only while `PUBLIC_BASE_URL` is a loopback address. */
export function demoEnabled(env: Env): boolean {
  return isLoopback(loadConfig(env).publicBaseUrl);
}

/** `/demo...`, or `null` (so the production routes answer, with a 404) when the demo is off. */
export async function handleDemo(request: Request, env: Env, url: URL): Promise<Response | null> {
  if (!demoEnabled(env)) return null;
  const user = signedIn(request);
  if (request.method === "GET" && url.pathname === "/demo") {
    const as = url.searchParams.get("as");
    if (isDemoUser(as)) return redirect("/demo", { [USER_COOKIE]: `${as}; Path=/; HttpOnly; SameSite=Lax` });
    const config = loadConfig(env);
    const revokeUrl = `${config.webUrl}/settings/applications?return_to=${encodeURIComponent(`${config.publicBaseUrl}/demo`)}`;
    const providers = Object.fromEntries([...config.apps.values()].map((a) => [a.appType, providerOf(config, a).name]));
    return demoPage({ user, revokeUrl, providers });
  }
  if (request.method === "GET" && url.pathname === "/demo/return") return confirmReturn(env, request, user, url);
  const action = /^\/demo\/api\/([a-z-]+)$/.exec(url.pathname)?.[1];
  if (request.method === "POST" && action) {
    const body = await readJsonBody(request);
    const input = body.ok && body.value !== null && typeof body.value === "object" ? (body.value as Record<string, unknown>) : {};
    const result = await demoApi(env, user, action, input);
    const headers: Record<string, string> = { "content-type": "application/json; charset=utf-8", "cache-control": "no-store" };
    if (action === "connect" && result.ok) headers["set-cookie"] = `${PENDING_COOKIE}=${appTypeOf(input) ?? "standard"}; Path=/demo; Max-Age=600; HttpOnly; SameSite=Lax`;
    return new Response(JSON.stringify(result), { headers });
  }
  return null;
}

/**
 * `GET /demo/return`: where the broker's callback sends the browser. The web app's part of
 * the two-phase connect: confirm the ticket *as the user signed in to this browser*.
 */
async function confirmReturn(env: Env, request: Request, user: DemoUser, url: URL): Promise<Response> {
  const pending = cookies(request).get(PENDING_COOKIE);
  const started = pending ? appTypeOf({ appType: pending }) : null;
  const app = started ? `&app=${started}` : "";
  const clear = { [PENDING_COOKIE]: "; Path=/demo; Max-Age=0" };
  const outcome = url.searchParams.get("github_connect");
  if (outcome === "error") {
    const reason = url.searchParams.get("reason") ?? "";
    return redirect(`/demo?connect_result=${encodeURIComponent(/^[a-z_]{1,40}$/.test(reason) ? reason : "invalid_state")}${app}`, clear);
  }
  const ticket = url.searchParams.get("connect_ticket");
  if (outcome !== "confirm" || !ticket) return redirect(`/demo?connect_result=invalid_state${app}`, clear);
  // The user id comes from the session cookie, never from the URL.
  const confirmed = await api.confirmConnect(env, user, { ticket });
  if (confirmed.ok) return redirect(`/demo?connect_result=connected&app=${confirmed.appType}&login=${encodeURIComponent(confirmed.githubLogin)}`, clear);
  const result = confirmed.reason === "invalid_ticket" ? (started ? "ticket_not_valid" : "not_started_here") : confirmed.reason;
  return redirect(`/demo?connect_result=${result}${app}`, clear);
}

type DemoResult = { ok: true } | Failure;

/** The web app's server side of each button. */
async function demoApi(env: Env, user: DemoUser, action: string, body: Record<string, unknown>): Promise<DemoResult> {
  const config = loadConfig(env);
  const appType = appTypeOf(body);
  if (appType === null || !config.apps.has(appType)) return failure("invalid_request", "unknown appType for the demo");
  switch (action) {
    case "state":
      return withUser(user, await api.getConnection(env, user, appType));
    case "connect":
      return api.startConnect(env, user, { appType, returnTo: `${config.publicBaseUrl}/demo/return`, selectAccount: body.selectAccount === true });
    case "token": {
      // A refresh is visible as a new access-token expiry; the demo says so in words.
      const before = await api.getConnection(env, user, appType);
      const grant = api.userTokenResult(await api.getToken(env, user, { appType, repository: body.repository }));
      if (!grant.ok) return grant;
      const after = await api.getConnection(env, user, appType);
      const refreshed = before.ok && after.ok && before.accessTokenExpiresAt !== after.accessTokenExpiresAt;
      const answer = { ...grant, refreshed };
      return answer;
    }
    case "expire": {
      const stub = userActor(env, user) as unknown as DurableObjectStub<DemoUserActor>;
      return (await stub.demoExpireAccessToken({ appType })) as DemoResult;
    }
    case "disconnect":
      return api.disconnect(env, user, appType);
    case "capability": {
      const sessionId = `demo-${crypto.randomUUID().slice(0, 8)}`;
      const grant = await api.issueCapability(env, user, {
        appType,
        repository: body.repository,
        permission: body.permission,
        ...(Array.isArray(body.branches) && body.branches.length ? { branches: body.branches } : {}),
        ...(body.identity !== undefined ? { identity: body.identity } : {}),
        sessionId,
        ttlSeconds: 3600,
      });
      if (!grant.ok) return grant;
      const agent = agentCommands(env, grant, sessionId);
      const answer = { ...grant, sessionId, cloneCommand: cloneCommand(grant.gitRemoteUrl, grant.capability), ...(agent ? { agentCommands: agent } : {}) };
      return answer;
    }
    case "revoke-capability":
      return api.revokeCapabilities(env, user, body.sessionId);
    case "audit":
      return api.getAudit(env, user, { limit: Math.min(Number(body.limit) || 10, AUDIT_LIMIT_MAX), before: body.before });
    default:
      return failure("invalid_request", "unknown demo action");
  }
}

/** The exact command an agent's sandbox would run: the capability is git's HTTP password. */
export function cloneCommand(gitRemoteUrl: string, capability: string): string {
  const dir = new URL(gitRemoteUrl).pathname.split("/").pop()!.replace(/\.git$/, "");
  return `git clone ${capabilityRemote({ gitRemoteUrl, capability })} ${dir}`;
}

/**
 * The agent's own tools with the capability, for a person to paste into a terminal: `gh` and
 * `git` unmodified, pointed at the GitHub-shaped surface (AGENT_HOST behind npm start's TLS
 * front, whose certificate is AGENT_CERT_FILE). `null` when the surface is off or the grant is
 * not a GitHub one.
 */
export function agentCommands(env: Env, grant: CapabilityGrant, sessionId: string): string | null {
  const host = loadConfig(env).agentHost;
  const cert = (env as unknown as Record<string, unknown>).AGENT_CERT_FILE;
  const repo = /\/git\/([^/]+\/[^/]+)\.git$/.exec(new URL(grant.gitRemoteUrl).pathname)?.[1];
  if (!host || typeof cert !== "string" || !cert || !repo) return null;
  const name = repo.split("/")[1]!;
  // A branch the session may push to: the first pattern, its wildcard made this session's name.
  const pattern = (grant.branches[0] ?? "agent/*").replace(/^refs\/heads\//, "");
  const branch = /[*]/.test(pattern) ? pattern.replace(/\*\*?$/, sessionId).replace(/\*/g, "x") : pattern;
  const who = `-c user.name='${grant.committer.name.replace(/'/g, "")}' -c user.email=${grant.committer.email}`;
  return [
    `export GH_HOST=${host} GH_ENTERPRISE_TOKEN=${grant.capability}`,
    `export SSL_CERT_FILE=${cert} GIT_SSL_CAINFO=${cert}`,
    `git clone -c "credential.https://${host}.helper=!gh auth git-credential" https://${host}/${repo}.git ${name}-gh && cd ${name}-gh`,
    `git checkout -b ${branch} && date > ${sessionId}.txt && git add ${sessionId}.txt && git ${who} commit -qm "Try gh" && git push -q origin ${branch}`,
    `gh pr create -R ${repo} --head ${branch} --base main --title "Try gh through the broker" --body "Opened with a session capability"`,
    `gh pr comment ${branch} -R ${repo} --body "Commented through the broker"`,
    `gh pr checks ${branch} -R ${repo}`,
  ].join("\n");
}

/** The demo's appType named in `body` ("standard" when none), or `null` for any other value. */
function appTypeOf(body: Record<string, unknown> | null): string | null {
  const value = body?.appType;
  if (value === undefined) return "standard";
  return (APP_TYPES as readonly unknown[]).includes(value) ? (value as string) : null;
}

function withUser(user: DemoUser, result: DemoResult): DemoResult {
  if (!result.ok) return result;
  const answer = { ...result, user };
  return answer;
}

function signedIn(request: Request): DemoUser {
  const name = cookies(request).get(USER_COOKIE);
  return isDemoUser(name) ? name : "alice";
}

function isDemoUser(name: string | null | undefined): name is DemoUser {
  return (DEMO_USERS as readonly string[]).includes(name ?? "");
}

function cookies(request: Request): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of (request.headers.get("cookie") ?? "").split(";")) {
    const i = part.indexOf("=");
    if (i > 0) out.set(part.slice(0, i).trim(), part.slice(i + 1).trim());
  }
  return out;
}

function redirect(location: string, setCookies: Record<string, string> = {}): Response {
  // The ticket was in the URL that led here: it goes in no Referer.
  const headers = new Headers({ location, "cache-control": "no-store", "referrer-policy": "no-referrer" });
  for (const [name, value] of Object.entries(setCookies)) headers.append("set-cookie", `${name}=${value}`);
  return new Response(null, { status: 303, headers });
}

function isLoopback(origin: string): boolean {
  try {
    return ["127.0.0.1", "localhost", "[::1]"].includes(new URL(origin).hostname);
  } catch {
    return false;
  }
}
