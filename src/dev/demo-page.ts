/**
 * The demo page's HTML and script (served by src/dev/demo.ts). Every code the broker can
 * answer is shown in words (src/dev/words.ts); every state has a stable id or data attribute
 * the browser test (test-browser/) reads.
 */
import { escapeHtml } from "../http/respond";
import { forProvider, WORDS } from "./words";

/** The demo's platform users: the web app's accounts, not GitHub's. */
export const DEMO_USERS = ["alice", "mallory"] as const;
export type DemoUser = (typeof DEMO_USERS)[number];

/** What the page needs from the server: who is signed in, where "Revoke on GitHub" goes, each appType's provider. */
export interface DemoPageInput {
  user: DemoUser;
  revokeUrl: string;
  /** appType → provider name ("GitHub", "GitLab"): the words and the audit's user-id column follow it. */
  providers: Record<string, string>;
}

/** The demo page for the signed-in demo user, with the words for every code built in. */
export function demoPage(input: DemoPageInput): Response {
  const others = DEMO_USERS.filter((u) => u !== input.user)
    .map((u) => `<a href="/demo?as=${u}" data-switch-user="${u}">switch to ${u}</a>`)
    .join(" · ");
  const words = Object.fromEntries(["GitHub", "GitLab"].map((p) => [p, Object.fromEntries(Object.entries(WORDS).map(([k, v]) => [k, forProvider(v, p)]))]));
  const html = PAGE.replaceAll("__USER__", input.user)
    .replace("__SWITCH__", others)
    .replace("__REVOKE_URL__", escapeHtml(input.revokeUrl))
    .replace("__WORDS__", scriptJson(words))
    .replace("__PROVIDERS__", scriptJson(input.providers));
  return new Response(html, { headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store" } });
}

function scriptJson(value: unknown): string {
  return JSON.stringify(value).replace(/</g, "\\u003c");
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
  <p id="gl-result" class="muted" data-default="Nested groups are part of the path: group/subgroup/project.">Nested groups are part of the path: group/subgroup/project.</p>
  <pre id="gl-clone" hidden></pre>
</div>

<div class="card" id="token-card">
  <h2>What an agent session gets: a token</h2>
  <p><label>Repository <input id="repository" value="octo-org/hello-world"></label>
     <button id="get-token">Get a token</button></p>
  <p id="token-result" class="muted" data-default="No token requested yet.">No token requested yet.</p>
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
  <p id="cap-result" class="muted" data-default="No capability issued yet.">No capability issued yet.</p>
  <p id="cap-note" hidden></p>
  <div id="cap-issued" hidden>
    <p id="clone-as">Run this to clone as the user, through the broker:</p>
    <pre id="clone-command"></pre>
    <p><button id="copy-clone">Copy</button> <button id="revoke-cap">Revoke this capability</button></p>
    <div id="agent-tools" hidden><p>Or the agent's own tools, <code>git</code> and <code>gh</code>, unmodified, with the same capability (paste into a terminal):</p>
    <pre id="agent-commands"></pre></div>
  </div>
</div>

<div class="card" id="audit-card">
  <h2>What was done with this identity</h2>
  <p class="muted">The user's audit trail (<code>GET /v1/users/{userId}/audit</code>), newest first, a page at a time.
  Token hand-outs and fetches of one minute are one line with a count.</p>
  <table id="audit"><thead><tr><th>When</th><th>What</th><th>Details</th><th title="how many times in that minute">Times</th></tr></thead><tbody></tbody></table>
  <p><button id="audit-newest" hidden>Newest</button> <button id="audit-older" hidden>Older</button> <span id="audit-page" class="muted"></span></p>
</div>

<script>
const WORDS = __WORDS__;
const PROVIDERS = __PROVIDERS__;
const AUDIT_PAGE = 10;
const $ = (id) => document.getElementById(id);
/** A code in words, said for the provider ("GitHub" unless told). */
const words = (code, provider) => (WORDS[provider || "GitHub"] || WORDS.GitHub)[code] || code;
/** A failure in words. invalid_request adds the broker's message: it names the field at fault. */
const explain = (r, provider) => words(r.reason, provider) + (r.reason === "invalid_request" && r.message ? " (" + r.message + ")" : "");
const when = (iso) => iso ? new Date(iso).toLocaleString() : "?";
const CAP_KEY = "demo-capability:__USER__";

// ---- Messages that describe a state go when that state goes. A message is tied to the
// connection it is about (data-about = appType) and to that connection's status when it was
// shown; each refresh clears the ones whose status has changed since.
function say(el, text, about) { el.textContent = text; el.dataset.about = about; el.dataset.under = "?"; }
function unsay(el) {
  el.textContent = el.dataset.default || "";
  for (const k of ["about", "under", "ok", "reason", "token", "kind", "result", "topic"]) delete el.dataset[k];
  if (el.id === "token-result") $("refresh-note").hidden = true;
  if (el.id === "gl-result") $("gl-clone").hidden = true;
}
function settle(appType, status) {
  for (const el of document.querySelectorAll("[data-about=" + appType + "]")) {
    if (el.dataset.under === "?") el.dataset.under = status;
    else if (el.dataset.under !== status) unsay(el);
  }
}
function flash(text, kind, about, topic) {
  say($("flash"), text, about || "standard");
  $("flash").dataset.kind = kind || "info";
  if (topic) $("flash").dataset.topic = topic;
}
async function call(action, body) {
  const res = await fetch("/demo/api/" + action, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body || {}) });
  return res.json();
}

// ---- The audit trail, a page at a time.
let auditBefore = null;
let auditPage = 1;
let auditAsked = 0;
/** Page n of the trail, starting before the entry id "before" (null: the newest). The last asked wins. */
async function showAudit(before, n) {
  const asked = ++auditAsked;
  const a = await call("audit", { limit: AUDIT_PAGE, before: before || undefined });
  if (asked !== auditAsked) return;
  const body = $("audit").querySelector("tbody");
  body.textContent = "";
  for (const e of a.entries || []) {
    const tr = document.createElement("tr");
    const provider = PROVIDERS[e.appType] || "GitHub";
    const facts = Object.entries(e.detail).map(([k, v]) => (k === "githubUserId" ? provider + " user id" : k) + ": " + (Array.isArray(v) ? v.join(" ") : v)).join(", ");
    const what = e.kind.replace(/_/g, " ") + (e.appType ? " (" + (e.appType === provider.toLowerCase() ? provider : provider + ", " + e.appType) + ")" : "");
    for (const text of [new Date(e.at).toLocaleTimeString(), what, facts, String(e.count)]) {
      const td = document.createElement("td");
      td.textContent = text;
      tr.appendChild(td);
    }
    body.appendChild(tr);
  }
  auditBefore = a.nextBefore || null;
  auditPage = n || 1;
  $("audit-older").hidden = !auditBefore;
  $("audit-newest").hidden = auditPage === 1;
  $("audit-page").textContent = a.entries && a.entries.length ? "page " + auditPage : "nothing yet";
}
$("audit-older").onclick = () => showAudit(auditBefore, auditPage + 1);
$("audit-newest").onclick = () => showAudit(null, 1);

// ---- The capability survives leaving the page (GitHub's settings and back): this tab keeps it
// in sessionStorage, which this local demo's own page reads and nothing else.
let session = null;
function showCapability(cap) {
  session = cap.sessionId;
  $("cap-result").textContent = cap.text;
  $("cap-result").dataset.identity = cap.identity;
  $("cap-result").dataset.state = "issued";
  $("clone-as").textContent = cap.cloneAs;
  $("clone-command").textContent = cap.cloneCommand;
  $("agent-commands").textContent = cap.agentCommands || ""; $("agent-tools").hidden = !cap.agentCommands;
  $("cap-issued").hidden = false;
}
function clearCapability(text) {
  session = null;
  sessionStorage.removeItem(CAP_KEY);
  $("cap-issued").hidden = true; $("clone-command").textContent = ""; $("cap-note").hidden = true;
  $("cap-result").textContent = text || "No capability issued yet.";
  $("cap-result").dataset.state = text ? "revoked" : "";
  delete $("cap-result").dataset.identity;
}
function capabilityNote(status) {
  const identity = $("cap-result").dataset.identity;
  const note = $("cap-note");
  note.hidden = !(session && status !== "connected" && identity === "user_or_app");
  note.textContent = note.hidden ? "" : "The user's GitHub connection is gone: this session now pushes as the App's bot; its commits keep the user as author, with the Co-authored-by trailer.";
}

// ---- GitHub.
async function refresh() {
  const c = await call("state");
  const status = c.status || c.reason;
  for (const id of ["connect", "reconnect", "connect-other", "disconnect", "revoke"]) $(id).hidden = true;
  $("details").textContent = "";
  $("connection").dataset.status = status;
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
    $("status").textContent = "Could not read the connection: " + explain(c);
  }
  settle("standard", status);
  capabilityNote(status);
  await showAudit(null);
}
async function connect(selectAccount) {
  const r = await call("connect", { selectAccount });
  if (r.ok) location.href = r.authorizeUrl;
  else flash("Could not start connecting GitHub: " + explain(r) + ".", "warning");
}
$("connect").onclick = () => connect(false);
$("reconnect").onclick = () => connect(false);
$("connect-other").onclick = () => connect(true);
$("disconnect").onclick = async () => {
  const r = await call("disconnect");
  if (r.ok) {
    flash("Disconnected. GitHub grant: " + (r.githubGrant === "revoked" ? "revoked" : r.githubGrant === "pending" ? "GitHub unreachable, the broker will keep trying to revoke it" : "already gone") + ".", "ok");
    unsay($("token-result")); clearCapability();
  } else flash("Could not disconnect GitHub: " + explain(r) + ".", "warning");
  refresh();
};
$("get-token").onclick = async () => {
  const r = await call("token", { repository: $("repository").value });
  const out = $("token-result");
  $("refresh-note").hidden = true;
  if (r.ok) {
    say(out, "Token " + r.token.slice(0, 8) + "… valid until " + when(r.expiresAt) + "; commits as " + r.committer.name + " <" + r.committer.email + ">", "standard");
    out.dataset.token = r.token.slice(0, 12);
    if (r.refreshed) {
      $("refresh-note").textContent = "↻ Refreshed: the access token had expired, so the broker spent the refresh token once and stored GitHub's new pair before answering.";
      $("refresh-note").hidden = false;
      if ($("flash").dataset.topic === "expire") unsay($("flash"));
    }
  } else {
    say(out, "No token: " + explain(r) + ".", "standard");
    out.dataset.reason = r.reason;
    // SAML SSO: GitHub's own page where the person authorizes the organization.
    if (r.ssoUrl) { const a = document.createElement("a"); a.id = "sso-link"; a.href = r.ssoUrl; a.textContent = " Authorize single sign-on for the organization on GitHub, then try again."; out.append(a); }
  }
  out.dataset.ok = String(r.ok);
  refresh();
};
$("expire").onclick = async () => {
  const r = await call("expire");
  if (r.ok) flash("The broker now sees the access token as expired. Get a token to watch it refresh.", "info", "standard", "expire");
  else flash("Nothing to expire: " + explain(r) + ".", "warning");
  refresh();
};
$("issue-cap").onclick = async () => {
  const branches = $("cap-branches").value.split(",").map((b) => b.trim()).filter(Boolean);
  const r = await call("capability", { repository: $("cap-repository").value, permission: $("cap-permission").value, branches, identity: $("cap-identity").value });
  if (!r.ok) { clearCapability(); $("cap-result").textContent = "No capability: " + explain(r) + "."; $("cap-result").dataset.state = "refused"; return; }
  const cap = {
    sessionId: r.sessionId,
    identity: r.identity,
    cloneCommand: r.cloneCommand,
    agentCommands: r.agentCommands,
    text: "Session " + r.sessionId + ": valid until " + when(r.expiresAt) + "; commits as " + r.committer.name + " <" + r.committer.email + ">" +
      ($("cap-permission").value === "push" ? "; may push to " + (r.branches || []).join(", ") + (r.allowDelete ? " (deletions allowed)" : "") : "; read only") +
      (r.identity === "user" ? "" : "; identity " + r.identity + (r.fallbackReason ? ", starting as the App's bot: " + words(r.fallbackReason) : "")) +
      (r.coAuthor ? "; trailer Co-authored-by: " + r.coAuthor.name + " <" + r.coAuthor.email + ">" : "") + ".",
    cloneAs: "Run this to clone " + ({ user: "as the user", user_or_app: "as the user (as the App's bot once the user cannot)", app: "as the App's bot" })[r.identity] + ", through the broker:",
  };
  sessionStorage.setItem(CAP_KEY, JSON.stringify(cap));
  showCapability(cap);
  showAudit(null);
};
$("copy-clone").onclick = async () => {
  try { await navigator.clipboard.writeText($("clone-command").textContent); $("copy-clone").textContent = "Copied"; }
  catch { getSelection().selectAllChildren($("clone-command")); $("copy-clone").textContent = "Selected: press Ctrl-C"; }
};
$("revoke-cap").onclick = async () => {
  if (!session) return;
  const id = session;
  const r = await call("revoke-capability", { sessionId: id });
  if (r.ok) clearCapability("Revoked session " + id + ": git with that capability now gets " + words("invalid_capability") + ".");
  else $("cap-result").textContent = "Could not revoke: " + explain(r) + ".";
  showAudit(null);
};

// ---- GitLab: the same calls with appType "gitlab", in the same words, said for GitLab.
async function refreshGitLab() {
  const c = await call("state", { appType: "gitlab" });
  const status = c.status || c.reason;
  $("gitlab").dataset.status = status;
  $("gl-connect").hidden = c.status === "connected";
  $("gl-disconnect").hidden = c.status !== "connected";
  $("gl-connect").textContent = c.status === "revoked" || c.status === "reconnect_required" ? "Reconnect GitLab" : "Connect GitLab";
  $("gl-details").textContent = "";
  if (c.status === "connected") {
    $("gl-status").innerHTML = '<span class="ok">Connected</span> as <strong id="gl-login"></strong>';
    $("gl-login").textContent = "@" + c.githubLogin;
    $("gl-details").textContent = "Access token valid until " + when(c.accessTokenExpiresAt) + (c.refreshTokenExpiresAt ? "; refresh token until " + when(c.refreshTokenExpiresAt) : "") + " (GitLab's last 2 hours; every refresh rotates both tokens).";
  } else if (c.status === "not_connected") $("gl-status").textContent = "Not connected.";
  else if (c.status === "revoked" || c.status === "reconnect_required") {
    $("gl-status").innerHTML = '<span class="bad">Reconnect needed</span>: <span id="gl-reason"></span>';
    $("gl-reason").textContent = words(c.reason || c.status, "GitLab");
  } else $("gl-status").textContent = "Could not read the connection: " + explain(c, "GitLab");
  settle("gitlab", status);
}
/** After a GitLab action: its card, and the audit trail it added to. */
async function afterGitLab() { await refreshGitLab(); await showAudit(null); }
function glResult(text, ok, reason) {
  say($("gl-result"), text, "gitlab");
  $("gl-result").dataset.ok = String(ok);
  $("gl-result").dataset.reason = reason || "";
}
$("gl-connect").onclick = async () => {
  const r = await call("connect", { appType: "gitlab" });
  if (r.ok) location.href = r.authorizeUrl;
  else flash("Could not start connecting GitLab: " + explain(r, "GitLab") + ".", "warning", "gitlab");
};
$("gl-disconnect").onclick = async () => {
  const r = await call("disconnect", { appType: "gitlab" });
  if (r.ok) flash("GitLab disconnected. GitLab token: " + (r.githubGrant === "revoked" ? "revoked" : r.githubGrant === "pending" ? "GitLab unreachable, the broker will keep trying to revoke it" : "already gone") + ".", "ok", "gitlab");
  else flash("Could not disconnect GitLab: " + explain(r, "GitLab") + ".", "warning", "gitlab");
  unsay($("gl-result"));
  afterGitLab();
};
$("gl-get-token").onclick = async () => {
  const r = await call("token", { appType: "gitlab", repository: $("gl-repository").value });
  $("gl-clone").hidden = true;
  if (r.ok) glResult("Token " + r.token.slice(0, 6) + "… valid until " + when(r.expiresAt) + "; commits as " + r.committer.name + " <" + r.committer.email + ">", true);
  else glResult("No token: " + explain(r, "GitLab") + ".", false, r.reason);
  afterGitLab();
};
$("gl-issue-cap").onclick = async () => {
  const r = await call("capability", { appType: "gitlab", repository: $("gl-repository").value, permission: "push", branches: ["agent/*"] });
  if (!r.ok) { $("gl-clone").hidden = true; glResult("No capability: " + explain(r, "GitLab") + ".", false, r.reason); return; }
  glResult("Session " + r.sessionId + ": valid until " + when(r.expiresAt) + "; commits as " + r.committer.name + " <" + r.committer.email + ">; may push to agent/*. Run this to clone as the user, through the broker:", true);
  // Not tied to the connection's status: a capability outlives it (it then answers source_unavailable).
  delete $("gl-result").dataset.about;
  $("gl-clone").textContent = r.cloneCommand; $("gl-clone").hidden = false;
  showAudit(null);
};

// ---- What the last navigation came back with.
const params = new URLSearchParams(location.search);
const result = params.get("connect_result");
const app = params.get("app") === "gitlab" ? "gitlab" : "standard";
const provider = PROVIDERS[app] || "GitHub";
if (result === "connected") flash(provider + " connected as @" + params.get("login") + ": this web app confirmed the connection as __USER__.", "ok", app);
else if (result === "not_started_here" || result === "ticket_not_valid") flash(words(result, provider), "warning", app);
else if (result) flash(provider + " connection failed: " + words(result, provider) + ".", "warning", app);
else if (params.get("webhook_status")) flash("Revoked on GitHub: GitHub sent the signed webhook and the broker answered " + params.get("webhook_status") + ".", "info");
if (result) $("flash").dataset.result = result;
const kept = sessionStorage.getItem(CAP_KEY);
if (kept) { try { showCapability(JSON.parse(kept)); } catch { sessionStorage.removeItem(CAP_KEY); } }
history.replaceState(null, "", "/demo");
refresh();
refreshGitLab();
</script>
</body></html>`;
