/** What the real-`git` tests share: the remote a sandbox configures, and a git run expected to fail. */
import { run } from "../emulator/git-backend.ts";

/** The grant's git remote with the capability as the HTTP password, as a sandbox would configure it. */
export function remoteOf(grant: { capability: string; gitRemoteUrl: string }): string {
  const u = new URL(grant.gitRemoteUrl);
  u.username = "x-capability";
  u.password = grant.capability;
  return u.toString();
}

/** Runs git expecting it to fail; returns what it printed on stderr. */
export async function gitFails(args: string[], cwd?: string): Promise<string> {
  try {
    await run("git", args, cwd);
  } catch (err) {
    return (err as { stderr: string }).stderr;
  }
  throw new Error(`git ${args.join(" ")} succeeded but should have failed`);
}
