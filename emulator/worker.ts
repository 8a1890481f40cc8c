/**
 * The GitHub emulator as a local Worker, for `npm start` (see emulator/wrangler.toml).
 * One in-memory {@link GitHubEmulator} per isolate: restarting `npm start` forgets its
 * tokens, exactly as if GitHub had lost them, and the broker will say `reconnect_required`.
 *
 * Besides GitHub's own routes it serves a tiny "GitHub settings" page where the demo
 * user can revoke the App, which sends the signed `github_app_authorization` webhook.
 */
import { escapeHtml as esc, GitHubEmulator, type EmulatorApp } from "./github";

interface EmulatorEnv {
  /** JSON array of {@link EmulatorApp}. */
  EMULATOR_APPS: string;
  /** JSON array of demo users. */
  EMULATOR_USERS: string;
}

let emulator: GitHubEmulator | null = null;

function instance(env: EmulatorEnv): GitHubEmulator {
  if (!emulator) {
    emulator = new GitHubEmulator(JSON.parse(env.EMULATOR_APPS) as EmulatorApp[]);
    seedUsers(emulator, env);
  }
  return emulator;
}

function seedUsers(emu: GitHubEmulator, env: EmulatorEnv): void {
  for (const user of JSON.parse(env.EMULATOR_USERS) as Parameters<GitHubEmulator["addUser"]>[0][]) emu.addUser(user);
}

export default {
  async fetch(request: Request, env: EmulatorEnv): Promise<Response> {
    const emu = instance(env);
    const url = new URL(request.url);
    if (url.pathname === "/_emulator/reset" && request.method === "POST") {
      // Reset, then put the demo users back: the demo always has someone to sign in as.
      emu.reset();
      seedUsers(emu, env);
      return Response.json({ ok: true });
    }
    if (url.pathname === "/settings/applications" && request.method === "GET") return settingsPage(emu, url);
    if (url.pathname === "/settings/applications/revoke" && request.method === "POST") {
      const form = await request.formData();
      const clientId = String(form.get("client_id") ?? "");
      const userId = Number(form.get("user_id"));
      const back = String(form.get("return_to") ?? "/settings/applications");
      const delivered = await emu.revokeAndNotify(clientId, userId);
      const target = new URL(back, url);
      target.searchParams.set("webhook_status", String(delivered.status));
      return new Response(null, { status: 303, headers: { location: target.toString() } });
    }
    return emu.fetch(request);
  },
};

/** "Settings → Applications" for each demo user: one Revoke button per App. */
function settingsPage(emu: GitHubEmulator, url: URL): Response {
  const returnTo = url.searchParams.get("return_to") ?? "/settings/applications";
  const rows = [...emu.users.values()]
    .flatMap((user) =>
      [...emu.apps.values()].map(
        (app) => `<tr><td>@${esc(user.login)}</td><td><code>${esc(app.clientId)}</code></td><td>
<form method="post" action="/settings/applications/revoke">
<input type="hidden" name="client_id" value="${esc(app.clientId)}"><input type="hidden" name="user_id" value="${user.id}">
<input type="hidden" name="return_to" value="${esc(returnTo)}">
<button type="submit" data-revoke="${esc(app.clientId)}:${user.id}">Revoke</button></form></td></tr>`,
      ),
    )
    .join("");
  return new Response(
    `<!doctype html><html><head><meta charset="utf-8"><title>Authorized GitHub Apps · GitHub emulator</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem}td{padding:.3rem .8rem}</style></head>
<body><h1>Authorized GitHub Apps</h1><p>GitHub emulator. Revoking sends a signed <code>github_app_authorization</code> webhook to the App.</p>
<table><tr><th>User</th><th>App</th><th></th></tr>${rows}</table></body></html>`,
    { headers: { "content-type": "text/html; charset=utf-8" } },
  );
}

