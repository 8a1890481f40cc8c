/** Moved to `providers/github.ts` (the GitHub side of the provider seam); kept so old imports still resolve. */
export * from "./providers/github";
