/**
 * The GitHub emulator's browser pages, for the local demo: sign-in, the account picker
 * (`prompt=select_account`), the consent screen and "Settings → Applications". Plain HTML
 * strings, no state: emulator/github.ts decides which page a request gets.
 *
 * They look enough like GitHub's that the demo reads as the real flow: the consent screen
 * names the App by its name (never its client id), says who is signed in and offers to switch;
 * every page has a way back to where the person came from.
 */

/** A demo user as the pages show it. */
export interface PageUser {
  id: number;
  login: string;
  name: string | null;
}

/** An App as the pages show it. */
export interface PageApp {
  clientId: string;
  /** Display name ("Acme Agents"); the client id only when the App has none. */
  name: string;
}

/** Escapes text for HTML text and attribute values. */
export function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** A full HTML response with the emulator's banner (`service`: which emulator, GitHub or GitLab). */
export function htmlPage(title: string, body: string, status = 200, headers: Record<string, string> = {}, service = "GitHub"): Response {
  const real = service === "GitHub" ? "github.com" : "gitlab.com";
  return new Response(
    `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} · ${service} emulator</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
 body{font-family:system-ui,sans-serif;background:#f6f8fa;color:#1f2328;margin:0}
 .banner{background:#24292f;color:#fff;padding:.6rem 1rem;font-size:.9rem}
 .box{background:#fff;border:1px solid #d0d7de;border-radius:8px;max-width:30rem;margin:2.5rem auto;padding:1.25rem 1.5rem}
 h1{font-size:1.35rem;margin-top:0} .muted{color:#656d76;font-size:.9rem}
 button,.button{font:inherit;padding:.45rem 1rem;border-radius:6px;border:1px solid #d0d7de;background:#f6f8fa;cursor:pointer;color:inherit;text-decoration:none;display:inline-block}
 button.primary{background:#1f883d;color:#fff;border-color:#1f883d}
 .account{display:flex;justify-content:space-between;align-items:center;width:100%;margin:.4rem 0;text-align:left}
 table{border-collapse:collapse;width:100%} td,th{padding:.4rem;text-align:left;border-bottom:1px solid #d0d7de}
</style></head><body><div class="banner">${service} emulator (local). Nothing here is the real ${real}.</div>
<div class="box">${body}</div></body></html>`,
    { status, headers: { "content-type": "text/html; charset=utf-8", "cache-control": "no-store", ...headers } },
  );
}

function who(user: PageUser): string {
  return `@${escapeHtml(user.login)}${user.name ? ` <span class="muted">(${escapeHtml(user.name)})</span>` : ""}`;
}

/** Hidden form fields carrying `fields` through a page. */
export function hiddenFields(fields: Record<string, string>): string {
  return Object.entries(fields)
    .map(([k, v]) => `<input type="hidden" name="${escapeHtml(k)}" value="${escapeHtml(v)}">`)
    .join("");
}

/** "Sign in to GitHub": pick a demo user; `returnTo` is where to go next (a path on the emulator). */
export function signInPage(users: PageUser[], returnTo: string): Response {
  const buttons = users
    .map((u) => `<button class="account" name="user_id" value="${u.id}" data-sign-in="${escapeHtml(u.login)}">${who(u)}<span>Sign in →</span></button>`)
    .join("");
  return htmlPage(
    "Sign in",
    `<h1>Sign in to GitHub</h1><p class="muted">Pick the GitHub account this browser is signed in as.</p>
<form method="post" action="/session">${hiddenFields({ return_to: returnTo })}${buttons}</form>`,
  );
}

/**
 * The account picker GitHub shows for `prompt=select_account`: choose which account continues
 * to the App, even when one is signed in already.
 */
export function accountPickerPage(app: PageApp, users: PageUser[], current: PageUser | null, returnTo: string): Response {
  const buttons = users
    .map(
      (u) =>
        `<button class="account" name="user_id" value="${u.id}" data-pick="${escapeHtml(u.login)}">${who(u)}<span>${current?.id === u.id ? "signed in" : "switch"}</span></button>`,
    )
    .join("");
  return htmlPage(
    "Select an account",
    `<h1 id="account-picker">Select an account</h1><p>to continue to <strong>${escapeHtml(app.name)}</strong></p>
<form method="post" action="/session">${hiddenFields({ return_to: returnTo })}${buttons}</form>`,
  );
}

/** The consent screen: the App by name, the signed-in account, Authorize / Cancel, and "not you?". */
export function consentPage(app: PageApp, user: PageUser, fields: Record<string, string>, switchUrl: string): Response {
  return htmlPage(
    `Authorize ${app.name}`,
    `<h1>Authorize <span id="app-name">${escapeHtml(app.name)}</span></h1>
<p><strong>${escapeHtml(app.name)}</strong> would like to act on your behalf: read your profile and, where the App is
installed, the repositories you can reach.</p>
<p>Signed in as <strong id="signed-in">${who(user)}</strong>. <a href="${escapeHtml(switchUrl)}" id="switch-account">Not you? Switch account</a></p>
<form method="post" action="/login/oauth/authorize">${hiddenFields(fields)}
<p><button class="primary" name="decision" value="authorize" id="authorize">Authorize ${escapeHtml(app.name)}</button>
<button name="decision" value="cancel" id="cancel">Cancel</button></p></form>
<p class="muted">Once you authorize, GitHub sends you straight back next time, without this screen, until you revoke the App.</p>`,
  );
}

/** One row of "Settings → Applications". */
export interface AuthorizedAppRow {
  app: PageApp;
  user: PageUser;
}

/** "Settings → Applications": revoke an App (which sends the signed webhook), and a way back. */
export function settingsPage(rows: AuthorizedAppRow[], returnTo: string | null, notice: string | null): Response {
  const body = rows.length
    ? rows
        .map(
          ({ app, user }) => `<tr><td>${who(user)}</td><td>${escapeHtml(app.name)}</td><td>
<form method="post" action="/settings/applications/revoke">${hiddenFields({ client_id: app.clientId, user_id: String(user.id), return_to: returnTo ?? "" })}
<button type="submit" data-revoke="${escapeHtml(app.clientId)}:${user.id}">Revoke</button></form></td></tr>`,
        )
        .join("")
    : `<tr><td colspan="3" class="muted">No authorized Apps.</td></tr>`;
  const back = returnTo
    ? `<p><a class="button" id="back" href="${escapeHtml(returnTo)}">← Back to ${escapeHtml(hostOf(returnTo))}</a></p>`
    : "";
  return htmlPage(
    "Authorized GitHub Apps",
    `<h1>Authorized GitHub Apps</h1>${notice ? `<p id="notice">${escapeHtml(notice)}</p>` : ""}
<p class="muted">Revoking an App deletes your grant and sends it a signed <code>github_app_authorization</code> webhook.</p>
<table><tr><th>Account</th><th>App</th><th></th></tr>${body}</table>${back}`,
  );
}

function hostOf(url: string): string {
  try {
    return new URL(url).host;
  } catch {
    return "the app";
  }
}
