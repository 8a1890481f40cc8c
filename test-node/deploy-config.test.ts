/**
 * What a bare `npx wrangler deploy` would ship, checked with wrangler itself: the dry run's
 * bindings and bundle, and the parsed wrangler.toml. A local URL, `DEMO_MODE`, the demo or
 * invocation logs (which would record `/oauth/callback?code=...`) must never reach production.
 */
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unstable_readConfig } from "wrangler";
import { beforeAll, describe, expect, it } from "vitest";
import { run } from "../emulator/git-backend.ts";

let output = "";
let bundle = "";

beforeAll(async () => {
  const outdir = mkdtempSync(join(tmpdir(), "deploy-dry-run-"));
  // No --env, no -c: exactly what someone typing `npx wrangler deploy` gets.
  const result = await run("npx", ["wrangler", "deploy", "--dry-run", "--outdir", outdir], process.cwd(), { WRANGLER_SEND_METRICS: "false", NO_COLOR: "1", WRANGLER_LOG: "log" });
  output = result.stdout + result.stderr;
  bundle = readFileSync(join(outdir, "index.js"), "utf8");
});

describe("a bare `wrangler deploy`", () => {
  it("binds no local URL and no DEMO_MODE, and does not warn about environments", () => {
    expect(output).toContain("--dry-run: exiting now.");
    expect(output).toContain("env.PUBLIC_BASE_URL");
    expect(output).not.toMatch(/127\.0\.0\.1|localhost|\[::1\]/);
    expect(output).not.toContain("DEMO_MODE");
    expect(output).not.toMatch(/emulator/i);
    expect(output).not.toContain("Multiple environments");
  });

  it("ships the production entry: no demo page, no demo hook", () => {
    expect(bundle).toContain("oauth/callback");
    expect(bundle).not.toContain("/demo");
    expect(bundle).not.toContain("demoExpireAccessToken");
    expect(bundle).not.toContain("DemoUserActor");
  });

  it("requires exactly the secrets of the configured Apps (GitHub: client and webhook; GitLab: client), and not INTERNAL_API_TOKEN", () => {
    const config = unstable_readConfig({ config: "wrangler.toml" });
    const apps = Object.keys(JSON.parse(String(config.vars.GITHUB_APPS)) as Record<string, unknown>);
    const gitlab = String(config.vars.GITLAB_APPS ?? "");
    const gitlabApps = gitlab === "" ? [] : Object.keys(JSON.parse(gitlab) as Record<string, unknown>);
    const perApp = [
      ...apps.flatMap((a) => [`GITHUB_CLIENT_SECRET_${a.toUpperCase()}`, `GITHUB_WEBHOOK_SECRET_${a.toUpperCase()}`]),
      ...gitlabApps.map((a) => `GITLAB_CLIENT_SECRET_${a.toUpperCase()}`),
    ];
    expect([...(config.secrets?.required ?? [])].sort()).toEqual([...perApp, "STATE_SIGNING_KEY", "TOKEN_ENCRYPTION_KEYS"].sort());
    expect(config.main?.endsWith("src/index.ts")).toBe(true);
  });

  it("keeps invocation logs off, since they would record the OAuth code in the callback URL", () => {
    const config = unstable_readConfig({ config: "wrangler.toml" });
    expect(config.observability?.enabled).toBe(true);
    expect(config.observability?.logs?.invocation_logs).toBe(false);
  });
});
