#!/usr/bin/env node
// Prints one closing line for the test run: the totals of the vitest JSON reports.
import { existsSync, readFileSync } from "node:fs";

let passed = 0;
let failed = 0;
for (const file of process.argv.slice(2)) {
  if (!existsSync(file)) continue;
  const report = JSON.parse(readFileSync(file, "utf8"));
  passed += report.numPassedTests ?? 0;
  // A suite that failed with no failed test (a failed beforeAll, a file that did not load)
  // counts as one failure per suite: its skipped tests would otherwise pass unnoticed.
  failed += report.numFailedTests || report.numFailedTestSuites || 0;
}
console.log(`tests: ${passed} passed, ${failed} failed`);
process.exit(failed === 0 && passed > 0 ? 0 : 1);
