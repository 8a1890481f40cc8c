/**
 * What the browser steps share: the pages, the step wrapper that screenshots every state, and
 * small readers of the demo page.
 */
import { join } from "node:path";
import type { Browser, Page } from "playwright-core";
import { expect, test } from "vitest";
import { run } from "../emulator/git-backend.ts";
import { AGENT } from "./demo.ts";

/** Where the screenshots go: one PNG per step, named for the state it shows. */
export const ARTIFACTS = "artifacts/browser";

/** State the ordered steps hand on to each other (set in `beforeAll`). */
export interface Demo {
  browser: Browser;
  /** Alice's page. */
  page: Page;
  /** Scratch directory for clones. */
  work: string;
  /** Stops `npm start` and starts it again on the same state. */
  restart: () => Promise<void>;
}

/** How many steps failed so far (the servers' output is printed at the end if any did). */
export const outcome = { failed: 0 };

/** One step: a vitest `test` whose page is screenshot as `shot` whether it passed or not. */
export function step(name: string, shot: string, page: () => Page | undefined, fn: () => Promise<void>): void {
  test(name, async () => {
    try {
      await fn();
    } catch (err) {
      outcome.failed++;
      throw err;
    } finally {
      await screenshot(page(), shot);
    }
  });
}

/** A full-page screenshot to artifacts/browser/NAME.png (never fails a step). */
export async function screenshot(page: Page | undefined, name: string): Promise<void> {
  await page?.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true }).catch(() => undefined);
}

/** What the example agent Worker would push with, for a demo user. */
export async function agentCredential(user = "alice"): Promise<{ credential: string; reason?: string; author?: string }> {
  const res = await fetch(`${AGENT}/?user=${user}&repo=octo-org/hello-world`);
  return (await res.json()) as { credential: string; reason?: string; author?: string };
}

/** Exactly these connection buttons are visible, the others are not. */
export async function buttonsShown(page: Page, shown: string[]): Promise<void> {
  for (const id of ["connect", "reconnect", "connect-other", "disconnect", "revoke"]) {
    const visible = await page.locator(`#${id}`).isVisible();
    expect(visible, `#${id} should be ${shown.includes(id) ? "shown" : "hidden"}`).toBe(shown.includes(id));
  }
}

/**
 * Every row of the demo's audit table, newest first, read a page at a time through "Older";
 * each page holds one to ten rows. Leaves the table on its last page.
 */
export async function readAudit(page: Page): Promise<{ rows: string[]; pages: number }> {
  await page.locator("#audit-page", { hasText: "page 1" }).waitFor();
  const rows: string[] = [];
  for (let n = 1; ; n++) {
    await page.locator("#audit-page", { hasText: `page ${n}` }).waitFor();
    const onPage = await page.locator("#audit tbody tr").allTextContents();
    expect(onPage.length >= 1 && onPage.length <= 10, `page ${n} has ${onPage.length} rows`).toBe(true);
    rows.push(...onPage);
    if (!(await page.locator("#audit-older").isVisible())) return { rows, pages: n };
    expect(n, "the audit pages end").toBeLessThan(50);
    await page.click("#audit-older");
  }
}

/** Runs the shell-free `git clone <url> <dir>` the page shows, in `cwd`. */
export async function runShownClone(command: string, cwd: string): Promise<void> {
  const parts = command.trim().split(/\s+/);
  expect(parts[0] === "git" && parts[1] === "clone" && parts.length === 4, `unexpected command: ${command.replace(/gcap1\.[^@]+/, "gcap1.…")}`).toBe(true);
  await run("git", parts.slice(1), cwd);
}
