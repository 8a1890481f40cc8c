/**
 * The local demo (`npm start`, then open /demo): a page that plays the web app's part for
 * one demo user, so a newcomer can click through connect → token → refresh → revoke.
 *
 * Served only when `DEMO_MODE` is `"true"` (the development config); in production every
 * `/demo` path is a plain 404. Its small JSON API calls the same operations as `/v1`,
 * for the fixed user {@link DEMO_USER}, with no bearer token: that is why it must never be
 * enabled on a deployed broker.
 */
import * as api from "./api";
import { loadConfig } from "./config";
import { failure } from "./contract";

export const DEMO_USER = "demo-user";
const APP_TYPE = "standard";

export function isDemoEnabled(env: Env): boolean {
  return env.DEMO_MODE === "true";
}

/** `/demo/api/*`: the web app's side of the demo. */
export async function demoApi(env: Env, action: string, body: Record<string, unknown>): Promise<object> {
  const config = loadConfig(env);
  switch (action) {
    case "state":
      return api.getConnection(env, DEMO_USER, APP_TYPE);
    case "connect":
      return api.startConnect(env, DEMO_USER, { appType: APP_TYPE, returnTo: `${config.publicBaseUrl}/demo` });
    case "token":
      return api.getToken(env, DEMO_USER, { appType: APP_TYPE, repository: body.repository, minValiditySeconds: body.minValiditySeconds });
    case "expire":
      // Moving to a dev-only actor subclass (the production class has no demo hooks).
      return failure("invalid_request", "not available in this build");
    case "disconnect":
      return api.disconnect(env, DEMO_USER, APP_TYPE);
    default:
      return failure("invalid_request", "unknown demo action");
  }
}

export function demoPage(env: Env): Response {
  const config = loadConfig(env);
  const revokeUrl = `${config.webUrl}/settings/applications?return_to=${encodeURIComponent(`${config.publicBaseUrl}/demo`)}`;
  return new Response(PAGE.replace("__REVOKE_URL__", escapeHtml(revokeUrl)), {
    headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" },
  });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Token broker demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: system-ui, sans-serif; max-width: 44rem; margin: 2rem auto; padding: 0 1rem; color: #1f2328; }
  .card { border: 1px solid #d0d7de; border-radius: 8px; padding: 1rem 1.25rem; margin: 1rem 0; }
  .muted { color: #656d76; font-size: .9rem; }
  .ok { color: #1a7f37; } .bad { color: #cf222e; }
  button, .button { font: inherit; padding: .4rem .9rem; border-radius: 6px; border: 1px solid #d0d7de; background: #f6f8fa; cursor: pointer; text-decoration: none; color: inherit; display: inline-block; }
  button.primary { background: #1f883d; color: #fff; border-color: #1f883d; }
  input { font: inherit; padding: .35rem; width: 16rem; }
  code { background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; }
  #flash:empty, [hidden] { display: none !important; }
</style></head>
<body>
<h1>GitHub token broker: local demo</h1>
<p class="muted">You are the web app for platform user <code>${DEMO_USER}</code>. GitHub is the local emulator.</p>
<p id="flash" class="card"></p>

<div class="card" id="connection">
  <h2>GitHub connection</h2>
  <p id="status">Loading…</p>
  <p id="details" class="muted"></p>
  <p>
    <button class="primary" id="connect" hidden>Connect GitHub</button>
    <button class="primary" id="reconnect" hidden>Reconnect</button>
    <button id="disconnect" hidden>Disconnect</button>
    <a class="button" id="revoke" href="__REVOKE_URL__" hidden>Revoke on GitHub…</a>
  </p>
</div>

<div class="card">
  <h2>What an agent session gets</h2>
  <p><label>Repository <input id="repository" value="octo-org/hello-world"></label>
     <button id="get-token">Get a token</button></p>
  <p id="token-result" class="muted">No token requested yet.</p>
  <p><button id="expire">Expire the access token now</button> <span class="muted">then get a token again to watch it refresh</span></p>
</div>

<script>
const $ = (id) => document.getElementById(id);
const reasons = {
  user_revoked: "you revoked the App on GitHub",
  refresh_token_rejected: "GitHub no longer accepts the stored refresh token",
  refresh_token_expired: "the refresh token expired",
  undecryptable: "the stored tokens could not be decrypted",
  no_refresh_token: "GitHub issued no refresh token",
};
const when = (iso) => iso ? new Date(iso).toLocaleString() : "?";
async function call(action, body) {
  const res = await fetch("/demo/api/" + action, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body || {}) });
  return res.json();
}
async function refresh() {
  const c = await call("state");
  for (const id of ["connect", "reconnect", "disconnect", "revoke"]) $(id).hidden = true;
  $("details").textContent = "";
  $("connection").dataset.status = c.status;
  if (c.status === "connected") {
    $("status").innerHTML = '<span class="ok">Connected</span> as <strong id="login"></strong>';
    $("login").textContent = "@" + c.githubLogin;
    $("details").textContent = "Token valid until " + when(c.accessTokenExpiresAt) + ", refresh token until " + when(c.refreshTokenExpiresAt) + ".";
    $("disconnect").hidden = false; $("revoke").hidden = false;
  } else if (c.status === "revoked" || c.status === "reconnect_required") {
    $("status").innerHTML = '<span class="bad">Reconnect needed</span>: <span id="reason"></span>';
    $("reason").textContent = reasons[c.reason] || c.reason || c.status;
    $("reconnect").hidden = false;
  } else if (c.status === "not_connected") {
    $("status").textContent = "Not connected.";
    $("connect").hidden = false;
  } else {
    $("status").textContent = "Error: " + (c.message || "unknown");
  }
}
async function connect() {
  const r = await call("connect");
  if (r.authorizeUrl) location.href = r.authorizeUrl;
  else $("flash").textContent = "Could not start: " + r.message;
}
$("connect").onclick = connect;
$("reconnect").onclick = connect;
$("disconnect").onclick = async () => {
  const r = await call("disconnect");
  $("flash").textContent = r.ok ? "Disconnected (GitHub grant: " + r.githubGrant + ")." : "Error: " + r.reason;
  refresh();
};
$("get-token").onclick = async () => {
  const r = await call("token", { repository: $("repository").value });
  const out = $("token-result");
  out.dataset.ok = String(r.ok);
  if (r.ok) {
    out.textContent = "Token " + r.token.slice(0, 8) + "… valid until " + when(r.expiresAt) + "; commits as " + r.committer.name + " <" + r.committer.email + ">";
    out.dataset.token = r.token.slice(0, 12);
  } else {
    out.textContent = "No token: " + r.reason + " (" + r.message + ")";
    out.dataset.token = "";
    // SAML SSO (issue 13): GitHub's own page where the person authorizes the organisation.
    if (r.ssoUrl) { const a = document.createElement("a"); a.id = "sso-link"; a.href = r.ssoUrl; a.textContent = " Authorize single sign-on for the organization on GitHub, then try again."; out.append(a); }
  }
  refresh();
};
$("expire").onclick = async () => { await call("expire"); $("flash").textContent = "The broker now sees the access token as expired."; refresh(); };
const params = new URLSearchParams(location.search);
if (params.get("github_connect") === "success") $("flash").textContent = "GitHub connected.";
else if (params.get("github_connect") === "error") $("flash").textContent = "GitHub connection failed: " + params.get("reason");
else if (params.get("webhook_status")) $("flash").textContent = "GitHub sent the revocation webhook (broker answered " + params.get("webhook_status") + ").";
history.replaceState(null, "", "/demo");
refresh();
</script>
</body></html>`;
