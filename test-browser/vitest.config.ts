import { defineConfig } from "vitest/config";

/**
 * The `browser` project: the local demo as people use it, in headless Chromium
 * (`npm run test:e2e`). Its own config, so `npm test` never starts it: its tests start `npm
 * start` and drive a real browser, minutes of work on ports of their own.
 */
export default defineConfig({
  test: {
    name: "browser",
    root: ".",
    include: ["test-browser/**/*.test.ts"],
    environment: "node",
    // One demo, one browser, steps in order.
    fileParallelism: false,
    // The step modules' own `beforeAll`s read the pages the first one opened: hooks in order.
    sequence: { concurrent: false, hooks: "stack" },
    testTimeout: 120_000,
    // Starting `npm start` (and again for the restart step) can take a couple of minutes.
    hookTimeout: 240_000,
  },
});
