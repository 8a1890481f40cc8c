/**
 * The demo page's HTML and script (served by src/dev/demo.ts). Every code the broker can
 * answer is shown in words (src/dev/words.ts); every state has a stable id or data attribute
 * the browser test (scripts/e2e.ts) reads.
 */
import { WORDS } from "./words";

/** The demo's platform users: the web app's accounts, not GitHub's. */
export const DEMO_USERS = ["alice", "mallory"] as const;
export type DemoUser = (typeof DEMO_USERS)[number];

/** What the page needs from the server: who is signed in, and where "Revoke on GitHub" goes. */
export interface DemoPageInput {
  user: DemoUser;
  revokeUrl: string;
}

/** The demo page for the signed-in demo user, with the words for every code built in. */
export function demoPage(input: DemoPageInput): Response {
  const others = DEMO_USERS.filter((u) => u !== input.user)
    .map((u) => `<a href="/demo?as=${u}" data-switch-user="${u}">switch to ${u}</a>`)
    .join(" · ");
  const html = PAGE.replaceAll("__USER__", input.user)
    .replace("__SWITCH__", others)
    .replace("__REVOKE_URL__", escapeHtml(input.revokeUrl))
    .replace("__WORDS__", JSON.stringify(WORDS).replace(/</g, "\\u003c"));
  return new Response(html, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } });
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const PAGE = `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Token broker demo</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
  body { font-family: system-ui, sans-serif; max-width: 46rem; margin: 2rem auto; padding: 0 1rem; color: #1f2328; }
  .card { border: 1px solid #d0d7de; border-radius: 8px; padding: 1rem 1.25rem; margin: 1rem 0; }
  .muted { color: #656d76; font-size: .9rem; }
  .ok { color: #1a7f37; } .bad { color: #cf222e; }
  #flash[data-kind=warning] { border-color: #cf222e; background: #ffebe9; }
  #flash[data-kind=ok] { border-color: #1a7f37; background: #dafbe1; }
  button, .button { font: inherit; padding: .4rem .9rem; border-radius: 6px; border: 1px solid #d0d7de; background: #f6f8fa; cursor: pointer; text-decoration: none; color: inherit; display: inline-block; }
  button.primary { background: #1f883d; color: #fff; border-color: #1f883d; }
  input, select { font: inherit; padding: .35rem; }
  input { width: 16rem; }
  code { background: #f6f8fa; padding: .1rem .3rem; border-radius: 4px; }
  #audit { border-collapse: collapse; width: 100%; font-size: .85rem; }
  #audit th, #audit td { text-align: left; padding: .2rem .4rem; border-bottom: 1px solid #d0d7de; vertical-align: top; }
  pre { background: #f6f8fa; padding: .6rem; border-radius: 6px; white-space: pre-wrap; word-break: break-all; }
  #flash:empty, [hidden] { display: none !important; }
</style></head>
<body>
<h1>Token broker: local demo</h1>
<p class="muted">This page is the web app. You are signed in to it as <strong id="demo-user">__USER__</strong> (__SWITCH__).
GitHub and GitLab are the local emulators.</p>
<p id="flash" class="card"></p>

<div class="card" id="connection">
  <h2>GitHub connection</h2>
  <p id="status">Loading…</p>
  <p id="details" class="muted"></p>
  <p>
    <button class="primary" id="connect" hidden>Connect GitHub</button>
    <button class="primary" id="reconnect" hidden>Reconnect</button>
    <button id="connect-other" hidden>Connect a different account</button>
    <button id="disconnect" hidden>Disconnect</button>
    <a class="button" id="revoke" href="__REVOKE_URL__" hidden>Revoke on GitHub…</a>
  </p>
  <p class="muted">Connecting takes two steps: GitHub sends the browser back with a ticket, and this web app's
  server confirms it as the user signed in here, never as a user named in the URL.</p>
</div>

<div class="card" id="gitlab">
  <h2>GitLab connection</h2>
  <p class="muted">The same broker, the same per-user actor and two-phase connect, for a GitLab instance (the local
  GitLab emulator): only the provider differs.</p>
  <p id="gl-status">Loading…</p>
  <p id="gl-details" class="muted"></p>
  <p><button class="primary" id="gl-connect" hidden>Connect GitLab</button> <button id="gl-disconnect" hidden>Disconnect GitLab</button></p>
  <p><label>Project <input id="gl-repository" value="acme/platform/api"></label>
     <button id="gl-get-token">Get a token</button> <button id="gl-issue-cap">Issue a capability</button></p>
  <p id="gl-result" class="muted">Nested groups are part of the path: <code>group/subgroup/project</code>.</p>
  <pre id="gl-clone" hidden></pre>
</div>

<div class="card" id="token-card">
  <h2>What an agent session gets: a token</h2>
  <p><label>Repository <input id="repository" value="octo-org/hello-world"></label>
     <button id="get-token">Get a token</button></p>
  <p id="token-result" class="muted">No token requested yet.</p>
  <p id="refresh-note" class="ok" hidden></p>
  <p><button id="expire">Expire the access token now</button> <span class="muted">then get a token again to watch it refresh</span></p>
</div>

<div class="card" id="session">
  <h2>Session for an agent: a capability</h2>
  <p class="muted">An agent's sandbox gets a capability instead of a token: good for one repository, one session,
  revocable, and worthless anywhere else. Plain <code>git</code> uses it as the HTTP password.</p>
  <p><label>Repository <input id="cap-repository" value="octo-org/hello-world"></label>
     <select id="cap-permission"><option value="push">push</option><option value="pull">pull</option></select></p>
  <p><label>Push as <select id="cap-identity"><option value="user">the user</option>
     <option value="user_or_app">the user, then the App's bot once the user cannot</option>
     <option value="app">the App's bot</option></select></label></p>
  <p><label>May push to <input id="cap-branches" value="agent/*"></label>
     <button id="issue-cap">Issue a capability</button>
     <span class="muted">comma-separated ref patterns; other branches, tags and deletions are refused</span></p>
  <p id="cap-result" class="muted">No capability issued yet.</p>
  <div id="cap-issued" hidden>
    <p id="clone-as">Run this to clone as the user, through the broker:</p>
    <pre id="clone-command"></pre>
    <p><button id="copy-clone">Copy</button> <button id="revoke-cap">Revoke this capability</button></p>
  </div>
</div>

<div class="card" id="audit-card">
  <h2>What was done with this identity</h2>
  <p class="muted">The user's audit trail (<code>GET /v1/users/{userId}/audit</code>), newest first. Token hand-outs
  and fetches of one minute are one line with a count.</p>
  <table id="audit"><thead><tr><th>When</th><th>What</th><th>Details</th><th>×</th></tr></thead><tbody></tbody></table>
</div>

<script>
const WORDS = __WORDS__;
async function showAudit() {
  const a = await call("audit");
  const body = $("audit").querySelector("tbody");
  body.textContent = "";
  for (const e of a.entries || []) {
    const tr = document.createElement("tr");
    const facts = Object.entries(e.detail).map(([k, v]) => k + ": " + (Array.isArray(v) ? v.join(" ") : v)).join(", ");
    const what = e.kind.replace(/_/g, " ") + (e.appType ? " (" + e.appType + ")" : "");
    for (const text of [new Date(e.at).toLocaleTimeString(), what, facts, String(e.count)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
}
const $ = (id) => document.getElementById(id);
const words = (code) => WORDS[code] || code;
const when = (iso) => iso ? new Date(iso).toLocaleString() : "?";
let session = null;
function flash(text, kind) { $("flash").textContent = text; $("flash").dataset.kind = kind || "info"; }
async function call(action, body) {
  const res = await fetch("/demo/api/" + action, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body || {}) });
  return res.json();
}
function clearToken() {
  $("token-result").textContent = "No token requested yet.";
  $("token-result").dataset.ok = ""; $("token-result").dataset.token = "";
  $("refresh-note").hidden = true;
}
function clearCapability(text) {
  session = null;
  $("cap-issued").hidden = true; $("clone-command").textContent = "";
  $("cap-result").textContent = text || "No capability issued yet.";
  $("cap-result").dataset.state = text ? "revoked" : "";
}
async function refresh() {
  const c = await call("state");
  for (const id of ["connect", "reconnect", "connect-other", "disconnect", "revoke"]) $(id).hidden = true;
  $("details").textContent = "";
  $("connection").dataset.status = c.status || c.reason;
  if (c.status === "connected") {
    $("status").innerHTML = '<span class="ok">Connected</span> as <strong id="login"></strong>';
    $("login").textContent = "@" + c.githubLogin;
    $("details").textContent = "Access token valid until " + when(c.accessTokenExpiresAt) + "; refresh token until " + when(c.refreshTokenExpiresAt) + ".";
    for (const id of ["connect-other", "disconnect", "revoke"]) $(id).hidden = false;
  } else if (c.status === "revoked" || c.status === "reconnect_required") {
    $("status").innerHTML = '<span class="bad">Reconnect needed</span>: <span id="reason"></span>';
    $("reason").textContent = words(c.reason || c.status);
    $("reconnect").hidden = false; $("connect-other").hidden = false;
  } else if (c.status === "not_connected") {
    $("status").textContent = "Not connected.";
    $("connect").hidden = false;
  } else {
    $("status").textContent = "Could not read the connection: " + words(c.reason);
  }
  if (c.status !== "connected") clearToken();
  await showAudit();
}
async function connect(selectAccount) {
  const r = await call("connect", { selectAccount });
  if (r.ok) location.href = r.authorizeUrl;
  else flash("Could not start connecting: " + words(r.reason), "warning");
}
$("connect").onclick = () => connect(false);
$("reconnect").onclick = () => connect(false);
$("connect-other").onclick = () => connect(true);
$("disconnect").onclick = async () => {
  const r = await call("disconnect");
  if (r.ok) {
    flash("Disconnected. GitHub grant: " + (r.githubGrant === "revoked" ? "revoked" : r.githubGrant === "pending" ? "GitHub unreachable, the broker will keep trying to revoke it" : "already gone") + ".", "ok");
    clearToken(); clearCapability();
  } else flash("Could not disconnect: " + words(r.reason), "warning");
  refresh();
};
$("get-token").onclick = async () => {
  const r = await call("token", { repository: $("repository").value });
  const out = $("token-result");
  out.dataset.ok = String(r.ok);
  $("refresh-note").hidden = true;
  if (r.ok) {
    out.textContent = "Token " + r.token.slice(0, 8) + "… valid until " + when(r.expiresAt) + "; commits as " + r.committer.name + " <" + r.committer.email + ">";
    out.dataset.token = r.token.slice(0, 12);
    if (r.refreshed) {
      $("refresh-note").textContent = "↻ Refreshed: the access token had expired, so the broker spent the refresh token once and stored GitHub's new pair before answering.";
      $("refresh-note").hidden = false;
    }
  } else {
    out.textContent = "No token: " + words(r.reason) + ".";
    out.dataset.reason = r.reason; out.dataset.token = "";
    // SAML SSO: GitHub's own page where the person authorizes the organization.
    if (r.ssoUrl) { const a = document.createElement("a"); a.id = "sso-link"; a.href = r.ssoUrl; a.textContent = " Authorize single sign-on for the organization on GitHub, then try again."; out.append(a); }
  }
  refresh();
};
$("expire").onclick = async () => {
  const r = await call("expire");
  if (r.ok) flash("The broker now sees the access token as expired. Get a token to watch it refresh.", "info");
  else flash("Nothing to expire: " + words(r.reason) + ".", "warning");
  refresh();
};
$("issue-cap").onclick = async () => {
  const branches = $("cap-branches").value.split(",").map((b) => b.trim()).filter(Boolean);
  const r = await call("capability", { repository: $("cap-repository").value, permission: $("cap-permission").value, branches, identity: $("cap-identity").value });
  if (!r.ok) { clearCapability(); $("cap-result").textContent = "No capability: " + words(r.reason) + "."; $("cap-result").dataset.state = "refused"; return; }
  session = r.sessionId;
  $("cap-result").textContent = "Session " + r.sessionId + ": valid until " + when(r.expiresAt) + "; commits as " + r.committer.name + " <" + r.committer.email + ">" +
    ($("cap-permission").value === "push" ? "; may push to " + (r.branches || []).join(", ") + (r.allowDelete ? " (deletions allowed)" : "") : "; read only") +
    (r.identity === "user" ? "" : "; identity " + r.identity + (r.fallbackReason ? ", starting as the App's bot: " + words(r.fallbackReason) : "")) +
    (r.coAuthor ? "; trailer Co-authored-by: " + r.coAuthor.name + " <" + r.coAuthor.email + ">" : "") + ".";
  $("cap-result").dataset.identity = r.identity;
  $("clone-as").textContent = "Run this to clone " + ({ user: "as the user", user_or_app: "as the user (as the App's bot once the user cannot)", app: "as the App's bot" })[r.identity] + ", through the broker:";
  $("cap-result").dataset.state = "issued";
  $("clone-command").textContent = r.cloneCommand;
  $("cap-issued").hidden = false;
};
$("copy-clone").onclick = async () => {
  try { await navigator.clipboard.writeText($("clone-command").textContent); $("copy-clone").textContent = "Copied"; }
  catch { getSelection().selectAllChildren($("clone-command")); $("copy-clone").textContent = "Selected: press Ctrl-C"; }
};
$("revoke-cap").onclick = async () => {
  if (!session) return;
  const r = await call("revoke-capability", { sessionId: session });
  if (r.ok) clearCapability("Revoked session " + session + ": git with that capability now gets " + words("invalid_capability") + ".");
  else $("cap-result").textContent = "Could not revoke: " + words(r.reason) + ".";
};
// ---- GitLab: the same calls with appType "gitlab"; messages are the broker's own, which name GitLab.
async function refreshGitLab() {
  const c = await call("state", { appType: "gitlab" });
  $("gitlab").dataset.status = c.status || c.reason;
  $("gl-connect").hidden = c.status === "connected";
  $("gl-disconnect").hidden = c.status !== "connected";
  $("gl-connect").textContent = c.status === "revoked" || c.status === "reconnect_required" ? "Reconnect GitLab" : "Connect GitLab";
  $("gl-details").textContent = "";
  if (c.status === "connected") {
    $("gl-status").innerHTML = '<span class="ok">Connected</span> as <strong id="gl-login"></strong>';
    $("gl-login").textContent = "@" + c.githubLogin;
    $("gl-details").textContent = "Access token valid until " + when(c.accessTokenExpiresAt) + " (GitLab's last 2 hours; every refresh rotates both tokens).";
  } else if (c.status === "not_connected") $("gl-status").textContent = "Not connected.";
  else $("gl-status").textContent = "Reconnect needed: " + (c.reason || c.status || "") + (c.message ? " (" + c.message + ")" : "");
}
function glResult(text, ok) { $("gl-result").textContent = text; $("gl-result").dataset.ok = String(ok); }
$("gl-connect").onclick = async () => {
  const r = await call("connect", { appType: "gitlab" });
  if (r.ok) location.href = r.authorizeUrl;
  else flash("Could not start connecting GitLab: " + r.message, "warning");
};
$("gl-disconnect").onclick = async () => {
  const r = await call("disconnect", { appType: "gitlab" });
  if (r.ok) flash("GitLab disconnected. GitLab token: " + (r.githubGrant === "revoked" ? "revoked" : r.githubGrant === "pending" ? "GitLab unreachable, the broker will keep trying to revoke it" : "already gone") + ".", "ok");
  else flash("Could not disconnect GitLab: " + r.message, "warning");
  $("gl-clone").hidden = true; glResult("", "");
  refreshGitLab();
};
$("gl-get-token").onclick = async () => {
  const r = await call("token", { appType: "gitlab", repository: $("gl-repository").value });
  if (r.ok) glResult("Token " + r.token.slice(0, 6) + "… valid until " + when(r.expiresAt) + "; commits as " + r.committer.name + " <" + r.committer.email + ">", true);
  else glResult("No token: " + r.reason + ": " + r.message, false);
  $("gl-result").dataset.reason = r.ok ? "" : r.reason;
  refreshGitLab();
};
$("gl-issue-cap").onclick = async () => {
  const r = await call("capability", { appType: "gitlab", repository: $("gl-repository").value, permission: "push", branches: ["agent/*"] });
  if (!r.ok) { $("gl-clone").hidden = true; glResult("No capability: " + r.reason + ": " + r.message, false); return; }
  glResult("Session " + r.sessionId + ": may push to agent/*; clone with:", true);
  $("gl-clone").textContent = r.cloneCommand; $("gl-clone").hidden = false;
};
const params = new URLSearchParams(location.search);
const result = params.get("connect_result");
if (result === "connected") flash((params.get("app") === "gitlab" ? "GitLab" : "GitHub") + " connected as @" + params.get("login") + ": this web app confirmed the connection as __USER__.", "ok");
else if (result) flash((result === "started_elsewhere" || result === "ticket_not_valid" ? "" : "GitHub connection failed: ") + words(result), result === "started_elsewhere" ? "warning" : "warning");
else if (params.get("webhook_status")) flash("Revoked on GitHub: GitHub sent the signed webhook and the broker answered " + params.get("webhook_status") + ".", "info");
if (result) $("flash").dataset.result = result;
history.replaceState(null, "", "/demo");
refresh();
refreshGitLab();
</script>
</body></html>`;
