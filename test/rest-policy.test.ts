/**
 * The REST policy of the GitHub-shaped surface (src/surface/rest-policy.ts) is pure: these
 * properties try to smuggle a call past it (other repositories in any case or spelling, dot
 * segments, encodings, doubled slashes, writes with a pull capability, ref writes outside the
 * branches) and check every call it lets through stays inside the session.
 */
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { refMatches, type PushPolicy } from "../src/proxy/ref-policy";
import { judgeBaseChange, judgeRest, type Binding } from "../src/surface/rest-policy";

const policy: PushPolicy = { branches: ["refs/heads/agent/*"], allowDelete: false };
const bound = (permission: "push" | "pull"): Binding => ({ repository: "acme/app", permission, policy });

const segment = fc.oneof(
  fc.constantFrom("repos", "acme", "app", "ACME", "App", "other", "app.git", "..", ".", "%2e%2e", "%2F", "", "pulls", "1", "merge", "git", "refs", "heads", "agent", "main", "x", "issues", "comments", "actions", "runs", "logs", "user", "contents", "hooks", "collaborators", "keys"),
  fc.string({ minLength: 1, maxLength: 6 }),
);
const path = fc.array(segment, { minLength: 1, maxLength: 8 }).map((s) => `/${s.join("/")}`);
const pathUnderRepo = fc.tuple(fc.constantFrom("/repos/acme/app", "/repos/ACME/App", "/repos/acme/other", "/repos/acme/app/../other", "/repos/acme//app"), fc.array(segment, { maxLength: 6 })).map(([p, s]) => (s.length ? `${p}/${s.join("/")}` : p));
const method = fc.constantFrom("GET", "POST", "PATCH", "PUT", "DELETE", "HEAD", "OPTIONS");

describe("the surface's REST policy", () => {
  it("lets through only calls on the bound repository (or the identity), plain, with the permission they need", () => {
    fc.assert(
      fc.property(method, fc.oneof(path, pathUnderRepo), fc.constantFrom<"push" | "pull">("push", "pull"), (m, p, permission) => {
        const d = judgeRest(m, p, bound(permission));
        if (!d.ok) {
          expect(d.message.startsWith(`${d.rule}: `)).toBe(true);
          return;
        }
        expect(p).not.toMatch(/%|\/\/|(^|\/)\.\.?(\/|$)/);
        if (d.upstreamPath === "/user" || d.upstreamPath === "/rate_limit") {
          expect(m).toBe("GET");
          return;
        }
        expect(p.toLowerCase().startsWith("/repos/acme/app")).toBe(true);
        expect(p.slice("/repos/acme/app".length)).toMatch(/^(\/|$)/);
        expect(d.upstreamPath.startsWith("/repos/acme/app")).toBe(true);
        expect(d.upstreamPath.slice("/repos/acme/app".length)).toBe(p.slice("/repos/acme/app".length));
        if (m !== "GET") expect(permission).toBe("push");
        const ref = /^\/repos\/acme\/app\/git\/refs\/(heads\/.+)$/i.exec(p);
        if (ref && m !== "GET") expect(refMatches("refs/heads/agent/*", `refs/${ref[1]}`)).toBe(true);
      }),
      { numRuns: 5000 },
    );
  });

  it("names the rule that refused", () => {
    expect(judgeRest("GET", "/repos/acme/other/pulls", bound("push"))).toMatchObject({ ok: false, rule: "repository_mismatch" });
    expect(judgeRest("POST", "/repos/acme/app/pulls", bound("pull"))).toMatchObject({ ok: false, rule: "insufficient_permission" });
    expect(judgeRest("PATCH", "/repos/acme/app/git/refs/heads/main", bound("push"))).toMatchObject({ ok: false, rule: "branch_not_allowed" });
    expect(judgeRest("PATCH", "/repos/acme/app/git/refs/heads/agent/fix", bound("push"))).toMatchObject({ ok: true, write: true });
    expect(judgeRest("DELETE", "/repos/acme/app/git/refs/heads/agent/fix", bound("push"))).toMatchObject({ ok: false, rule: "operation_not_allowed" });
    expect(judgeRest("GET", "/repos/acme/app/hooks", bound("push"))).toMatchObject({ ok: false, rule: "operation_not_allowed" });
    expect(judgeRest("PUT", "/repos/acme/app/pulls/7/merge", bound("push"))).toMatchObject({ ok: true, mergeOf: 7 });
    expect(judgeRest("PATCH", "/repos/acme/app/pulls/7", bound("push"))).toMatchObject({ ok: true, baseFromBody: true });
    expect(judgeBaseChange(bound("push"), "main")).toMatchObject({ ok: false, rule: "branch_not_allowed" });
    expect(judgeBaseChange(bound("push"), "agent/next")).toBeNull();
    expect(judgeBaseChange(bound("push"), undefined)).toBeNull();
    expect(judgeBaseChange(bound("push"), 7)).toMatchObject({ ok: false, rule: "operation_not_allowed" });
    expect(judgeRest("GET", "/repos/acme/app/actions/jobs/9/logs", bound("pull"))).toMatchObject({ ok: true, passRedirect: true });
  });
});
