/**
 * GitLab projects through the git proxy with the real `git` binary: the broker in workerd on
 * a real port (test/support/harness.ts) with a `gitlab` App on the GitLab emulator, which
 * serves real repositories (nested groups included) through `git http-backend`.
 */
import { mkdtempSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createRepository, gitHttpBackend, run } from "../emulator/git-backend.ts";
import { GitLabEmulator } from "../emulator/gitlab.ts";
import { GITLAB_APP } from "../test/support/env.ts";
import { remoteOf, gitFails } from "./support.ts";
import { startHarness, type Harness } from "../test/support/harness.ts";

let harness: Harness;
let gitlab: GitLabEmulator;
let root: string;
let work: string;

const USER = { id: 9100, username: "gl-dev", name: "GL Dev", projects: { "acme/platform/api": { level: 30 }, "acme/platform/web": { level: 20 } } };

beforeAll(async () => {
  root = mkdtempSync(join(tmpdir(), "gitlab-repos-"));
  work = mkdtempSync(join(tmpdir(), "gitlab-work-"));
  await createRepository(root, "acme/platform/api", { "README.md": "# api\n" });
  await createRepository(root, "acme/platform/web", { "README.md": "# web\n" });
  gitlab = new GitLabEmulator([{ ...GITLAB_APP }], { gitBackend: gitHttpBackend(root) });
  harness = await startHarness(undefined, gitlab);
  // The real two-phase connect, for the `gitlab` App.
  await harness.connectGitLab("gl-git", USER);
});

afterAll(async () => {
  await harness?.dispose();
});

async function capability(body: Record<string, unknown> = {}) {
  const res = await harness.call("/v1/users/gl-git/capabilities", { appType: "gitlab", repository: "acme/platform/api", sessionId: "agent-1", ...body });
  expect(res.status).toBe(200);
  return (await res.json()) as { capability: string; gitRemoteUrl: string; committer: { name: string; email: string } };
}



describe("GitLab through the git proxy, with the real git", () => {
  it("clone, commit and push to a nested-group project as the GitLab user, with the GitLab no-reply identity", async () => {
    const cap = await capability({ branches: ["main", "agent/*"] });
    expect(cap.gitRemoteUrl).toBe(new URL("/git/gitlab/acme/platform/api.git", harness.url).toString());
    const dir = join(work, "clone-api");
    await run("git", ["clone", "-q", remoteOf(cap), dir]);
    expect(readFileSync(join(dir, "README.md"), "utf8")).toBe("# api\n");
    writeFileSync(join(dir, "change.txt"), "from the agent\n");
    await run("git", ["add", "."], dir);
    await run("git", ["-c", `user.name=${cap.committer.name}`, "-c", `user.email=${cap.committer.email}`, "commit", "-q", "-m", "agent change"], dir);
    await run("git", ["push", "-q", "origin", "main"], dir);
    const { stdout } = await run("git", ["--git-dir", join(root, "acme/platform/api.git"), "log", "-1", "--format=%an <%ae>"]);
    expect(stdout.trim()).toBe("GL Dev <9100-gl-dev@users.noreply.gitlab.harness>");
    // The branch policy applies to GitLab pushes as well.
    await run("git", ["checkout", "-q", "-b", "release"], dir);
    expect(await gitFails(["push", "origin", "release"], dir)).toContain("[remote rejected] release -> release (branch not allowed for this session");
  });

  it("another project is refused: repository_mismatch; a Reporter project gets no push capability", async () => {
    const cap = await capability({ sessionId: "agent-2" });
    const other = cap.gitRemoteUrl.replace("acme/platform/api.git", "acme/platform/web.git");
    expect(await gitFails(["clone", "-q", remoteOf({ gitRemoteUrl: other, capability: cap.capability }), join(work, "clone-web")])).toContain("repository_mismatch");
    const push = await harness.call("/v1/users/gl-git/capabilities", { appType: "gitlab", repository: "acme/platform/web", sessionId: "agent-3" });
    expect(((await push.json()) as { reason: string }).reason).toBe("no_repo_access");
  });
});
