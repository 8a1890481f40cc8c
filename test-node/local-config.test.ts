/**
 * `npm start`'s configuration as a newcomer changes it: a setting put in `.dev.vars` reaches
 * the local broker. Checked with wrangler's own function for `wrangler dev` (getVarsForDev):
 * once a config declares `[secrets]`, wrangler dev takes from `.dev.vars` only the names it
 * declares, in `[vars]` or `secrets.required`, and drops the rest without a word.
 */
import { copyFileSync, mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { unstable_getVarsForDev, unstable_readConfig } from "wrangler";
import { describe, expect, it } from "vitest";

/** The variables `wrangler dev -c wrangler.local.toml` would bind, given this `.dev.vars`. */
function localBindings(devVars: string): Record<string, { type: string; value: unknown }> {
  const dir = mkdtempSync(join(tmpdir(), "local-config-"));
  copyFileSync("wrangler.local.toml", join(dir, "wrangler.local.toml"));
  writeFileSync(join(dir, ".dev.vars"), devVars);
  const configPath = join(dir, "wrangler.local.toml");
  const config = unstable_readConfig({ config: configPath });
  return unstable_getVarsForDev(configPath, undefined, config.vars, undefined, true, config.secrets) as Record<string, { type: string; value: unknown }>;
}

describe(".dev.vars for npm start", () => {
  it("turns connection events on with EVENTS_URL and EVENTS_SIGNING_KEY", () => {
    const example = readFileSync(".dev.vars.example", "utf8");
    const vars = localBindings(`${example}\nEVENTS_URL=http://127.0.0.1:9000/broker-events\nEVENTS_SIGNING_KEY=local-events-key\n`);
    expect(vars.EVENTS_URL?.value).toBe("http://127.0.0.1:9000/broker-events");
    expect(vars.EVENTS_SIGNING_KEY?.value).toBe("local-events-key");
  });

  it("leaves events off (empty, which the broker reads as unset) when .dev.vars does not set them", () => {
    const vars = localBindings(readFileSync(".dev.vars.example", "utf8"));
    expect(vars.EVENTS_URL?.value ?? "").toBe("");
    expect(vars.EVENTS_SIGNING_KEY?.value ?? "").toBe("");
  });

  it("documents both lines, commented, in .dev.vars.example", () => {
    const example = readFileSync(".dev.vars.example", "utf8");
    expect(example).toMatch(/^# EVENTS_URL=/m);
    expect(example).toMatch(/^# EVENTS_SIGNING_KEY=/m);
  });
});
