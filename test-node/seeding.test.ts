/**
 * The demo's repositories are seeded by `npm start` on first run (emulator/local.ts). A fresh
 * clone gives a relative state directory, and a seed can be interrupted (Ctrl-C, a crash):
 * neither may leave a repository that is served empty.
 */
import { mkdirSync, mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { createRepository, run } from "../emulator/git-backend.ts";

const cwd = process.cwd();
afterEach(() => process.chdir(cwd));

async function readme(bare: string): Promise<string> {
  return (await run("git", ["--git-dir", bare, "show", "main:README.md"])).stdout;
}

describe("seeding the emulator's repositories", () => {
  it("works with a relative root, as npm start passes it in a fresh clone", async () => {
    process.chdir(mkdtempSync(join(tmpdir(), "seed-")));
    const bare = await createRepository(".wrangler/emulator/repos", "octo-org/hello-world", { "README.md": "# Hello\n" });
    expect(bare.startsWith("/")).toBe(true);
    expect(await readme(bare)).toBe("# Hello\n");
  });

  it("rebuilds a repository a crashed seed left without its main branch", async () => {
    const root = mkdtempSync(join(tmpdir(), "seed-"));
    const bare = join(root, "octo-org/docs.git");
    mkdirSync(join(root, "octo-org"), { recursive: true });
    await run("git", ["init", "-q", "--bare", "-b", "main", bare]);
    await createRepository(root, "octo-org/docs", { "README.md": "# Docs\n" });
    expect(await readme(bare)).toBe("# Docs\n");
  });

  it("keeps a complete repository, pushes included, when seeded again", async () => {
    const root = mkdtempSync(join(tmpdir(), "seed-"));
    const bare = await createRepository(root, "octo-org/app", { "README.md": "# one\n" });
    const before = (await run("git", ["--git-dir", bare, "rev-parse", "main"])).stdout;
    await createRepository(root, "octo-org/app", { "README.md": "# two\n" });
    expect((await run("git", ["--git-dir", bare, "rev-parse", "main"])).stdout).toBe(before);
  });
});
