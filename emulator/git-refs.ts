/**
 * Branches and commits of the emulator's bare repositories, in Node, with the real `git`:
 * what the GraphQL and REST views of a repository read (refs, a pull request's commits) and
 * what a merge writes (`git merge-tree --write-tree`, then `commit-tree` and `update-ref`, so
 * a merged pull request is a real commit on the base branch that a clone fetches).
 */
import { join } from "node:path";
import { run } from "./git-backend.ts";
import type { Actor, CommitInfo, GitRefs } from "./github-store.ts";

const FORMAT = "%H%x1f%s%x1f%b%x1f%cI%x1f%aI%x1f%an%x1f%ae%x1e";

/** {@link GitRefs} over the bare repositories under `root` (`root/owner/name.git`). */
export function gitRefs(root: string): GitRefs {
  const dir = (repository: string) => join(root, `${repository}.git`);
  const git = async (repository: string, args: string[], env: Record<string, string> = {}) => (await run("git", ["--git-dir", dir(repository), ...args], undefined, env)).stdout;
  const commits = (out: string): CommitInfo[] =>
    out
      .split("\x1e")
      .map((r) => r.replace(/^\n/, ""))
      .filter((r) => r.length > 0)
      .map((r) => {
        const [oid, headline, body, committed, authored, name, email] = r.split("\x1f");
        return { oid: oid!, messageHeadline: headline!, messageBody: (body ?? "").trim(), committedDate: committed!, authoredDate: authored!, authorName: name!, authorEmail: email! };
      });
  return {
    async branches(repository) {
      const out = await git(repository, ["for-each-ref", "--format=%(refname:lstrip=2) %(objectname)", "refs/heads/"]).catch(() => "");
      return new Map(out.split("\n").filter(Boolean).map((l) => l.split(" ") as [string, string]));
    },
    async commit(repository, rev) {
      const out = await git(repository, ["log", "-1", `--format=${FORMAT}`, rev, "--"]).catch(() => null);
      return out ? (commits(out)[0] ?? null) : null;
    },
    async log(repository, base, head) {
      const out = await git(repository, ["log", "--reverse", `--format=${FORMAT}`, `refs/heads/${base}..refs/heads/${head}`, "--"]).catch(() => "");
      return commits(out);
    },
    async merge(repository, { base, head, method, message, author }) {
      const baseRef = `refs/heads/${base}`;
      const [baseOid, headOid] = await Promise.all([git(repository, ["rev-parse", "--verify", baseRef]), git(repository, ["rev-parse", "--verify", `refs/heads/${head}`])]).catch(() => [null, null]);
      if (!baseOid || !headOid) return { ok: false, message: "Head or base branch is missing" };
      let tree: string;
      try {
        tree = (await git(repository, ["merge-tree", "--write-tree", baseOid.trim(), headOid.trim()])).split("\n")[0]!.trim();
      } catch {
        return { ok: false, message: "Pull Request is not mergeable" };
      }
      const parents = method === "MERGE" ? ["-p", baseOid.trim(), "-p", headOid.trim()] : ["-p", baseOid.trim()];
      const oid = (await git(repository, ["commit-tree", tree, ...parents, "-m", message], identity(author))).trim();
      // Moves the base only if nobody moved it meanwhile, as GitHub's merge does.
      await git(repository, ["update-ref", baseRef, oid, baseOid.trim()]);
      return { ok: true, oid };
    },
    async deleteBranch(repository, branch) {
      await git(repository, ["update-ref", "-d", `refs/heads/${branch}`]).catch(() => "");
    },
  };
}

/** Author and committer of a merge made on GitHub: the merger, and GitHub itself. */
function identity(author: Actor): Record<string, string> {
  const email = `${author.id}+${author.login}@users.noreply.github.com`;
  return { GIT_AUTHOR_NAME: author.name ?? author.login, GIT_AUTHOR_EMAIL: email, GIT_COMMITTER_NAME: "GitHub", GIT_COMMITTER_EMAIL: "noreply@github.com" };
}
