/**
 * SAML SSO: where GitHub answers 403 with `X-GitHub-SSO: required; url=...`, the broker's
 * `no_repo_access` carries `ssoUrl` (on the GitHub web host only), so the web app can send
 * the person to authorize the organisation; the answer is not cached, so trying again right
 * after authorizing works.
 */
import { beforeEach, describe, expect, it } from "vitest";
import { ssoUrlOf } from "../src/providers/github";
import { EMULATOR_URL } from "./support/env";
import { connectUser, emulator, requestToken } from "./support/helpers";

const OCTO = { id: 8181, login: "octo", repos: { "acme/app": "push" as const } };

beforeEach(async () => {
  await emulator.reset();
});

describe("SAML SSO", () => {
  it("no_repo_access carries GitHub's SSO authorize URL, and a retry after authorizing succeeds", async () => {
    await connectUser("sso-1", OCTO);
    await emulator.fault({ endpoint: "repo", kind: "sso_required" });
    const res = await requestToken("sso-1", { repository: "acme/app" });
    expect(res.status).toBe(403);
    expect(res.body).toMatchObject({ ok: false, reason: "no_repo_access" });
    expect(res.body.message).toContain("SAML");
    expect(res.body.ssoUrl).toMatch(new RegExp(`^${EMULATOR_URL}/orgs/acme/sso\\?authorization_request=[\\w-]+$`));
    expect(JSON.stringify(res.body)).not.toMatch(/ghu_|ghr_/);
    // The person authorized the organisation: the next request is not answered from a cache.
    const again = await requestToken("sso-1", { repository: "acme/app" });
    expect(again.status).toBe(200);
  });

  it("a repository the user cannot reach (404) is no_repo_access without ssoUrl", async () => {
    await connectUser("sso-2", OCTO);
    const denied = await requestToken("sso-2", { repository: "acme/nope" });
    expect(denied.body.reason).toBe("no_repo_access");
    expect(denied.body.ssoUrl).toBeUndefined();
  });

  it("only a URL on the configured GitHub host is passed on", () => {
    const at = (header: string) => ssoUrlOf(new Response(null, { status: 403, headers: { "x-github-sso": header } }), "https://github.com");
    expect(at("required; url=https://github.com/orgs/acme/sso?authorization_request=AbC1")).toBe("https://github.com/orgs/acme/sso?authorization_request=AbC1");
    expect(at("required; url=https://evil.example/orgs/acme/sso")).toBeUndefined();
    expect(at("required; url=https://user:pw@github.com/x")).toBeUndefined();
    expect(at("required; url=javascript:alert(1)")).toBeUndefined();
    expect(at("partial-results; organizations=21955855,20582480")).toBeUndefined();
    expect(at("")).toBeUndefined();
  });
});
