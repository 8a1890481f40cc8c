/**
 * The GitLab emulator's consent screen, for the local demo (`npm start`): `GET /oauth/authorize`
 * shows the application and the scopes it asks for, with a button per demo account ("sign in
 * and authorize as") and Cancel; `POST /oauth/authorize` redirects back to `redirect_uri` the
 * way GitLab does: `?code=&state=`, or `?error=access_denied&error_description=&state=`.
 */
import type { GitLabEmulator } from "./gitlab.ts";
import { escapeHtml, hiddenFields, htmlPage } from "./pages.ts";

/** The application's display name, by client id (the emulator apps carry none). */
export type GitLabAppNames = Record<string, string>;

const PARAMS = ["client_id", "redirect_uri", "response_type", "state", "scope", "code_challenge", "code_challenge_method"] as const;

/** Serves `/oauth/authorize` (GET and POST); `null` for any other request. */
export async function gitlabConsent(gitlab: GitLabEmulator, names: GitLabAppNames, request: Request): Promise<Response | null> {
  const url = new URL(request.url);
  if (url.pathname !== "/oauth/authorize") return null;
  const fields = Object.fromEntries(
    PARAMS.map((k) => [k, request.method === "GET" ? url.searchParams.get(k) : null] as const).filter(([, v]) => v !== null),
  ) as Record<string, string>;
  if (request.method === "GET") return consentPage(gitlab, names, fields);
  if (request.method !== "POST") return null;
  const form = new URLSearchParams(await request.text());
  const clientId = form.get("client_id") ?? "";
  const redirectUri = form.get("redirect_uri") ?? "";
  if (!gitlab.apps.has(clientId) || !URL.canParse(redirectUri)) return htmlPage("Error", "<h1>Unknown application</h1>", 400, {}, "GitLab");
  const back = new URL(redirectUri);
  if (form.get("decision") !== "authorize") {
    back.searchParams.set("error", "access_denied");
    back.searchParams.set("error_description", "The resource owner or authorization server denied the request.");
  } else {
    const { code } = gitlab.authorize({ clientId, userId: Number(form.get("user_id")), redirectUri, codeChallenge: form.get("code_challenge") });
    back.searchParams.set("code", code);
  }
  if (form.get("state")) back.searchParams.set("state", form.get("state")!);
  return new Response(null, { status: 302, headers: { location: back.toString() } });
}

function consentPage(gitlab: GitLabEmulator, names: GitLabAppNames, fields: Record<string, string>): Response {
  const clientId = fields.client_id ?? "";
  if (!gitlab.apps.has(clientId) || fields.response_type !== "code" || !fields.redirect_uri) {
    return htmlPage("Error", `<h1>The client application is not registered, or the request is malformed</h1>`, 400, {}, "GitLab");
  }
  const name = escapeHtml(names[clientId] ?? clientId);
  const scopes = (fields.scope ?? "").split(" ").filter(Boolean).map((s) => `<li><code>${escapeHtml(s)}</code></li>`).join("");
  const accounts = [...gitlab.users.values()]
    .map((u) => `<button class="account" name="user_id" value="${u.id}" data-gitlab-authorize="${escapeHtml(u.username)}">@${escapeHtml(u.username)} <span class="muted">(${escapeHtml(u.name)})</span><span>Authorize →</span></button>`)
    .join("");
  return htmlPage(
    `Authorize ${names[clientId] ?? clientId}`,
    `<h1>Authorize <span id="gitlab-app-name">${name}</span> to use your account?</h1>
<p>An application called <strong>${name}</strong> is requesting access to your GitLab account. It asks for:</p><ul id="gitlab-scopes">${scopes}</ul>
<form method="post" action="/oauth/authorize">${hiddenFields({ ...fields, decision: "authorize" })}<p class="muted">Sign in and authorize as:</p>${accounts}</form>
<form method="post" action="/oauth/authorize">${hiddenFields({ ...fields, decision: "deny" })}<p><button id="gitlab-deny">Deny</button></p></form>`,
    200,
    {},
    "GitLab",
  );
}
