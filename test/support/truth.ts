/**
 * Each provider's truth at its emulator, as the interleaving explorer and the soak check it:
 * whether a refresh token is live, which refresh tokens of an account are live, and which
 * identity-index object names an account.
 */
import { GITLAB_URL } from "./env";
import { gitlab } from "./gitlab";
import { emulator } from "./helpers";

export interface ProviderTruth {
  name: "GitHub" | "GitLab";
  appType: "standard" | "gitlab";
  refreshAlive(token: string): Promise<boolean>;
  liveRefreshTokens(account: number): Promise<string[]>;
  indexKey(account: number | string): string;
}

export const GITHUB_TRUTH: ProviderTruth = {
  name: "GitHub",
  appType: "standard",
  refreshAlive: async (token) => !!(await emulator.tokenState(token)).refresh?.alive,
  liveRefreshTokens: async (id) => (await emulator.liveRefreshTokens("standard", id)).refreshTokens,
  indexKey: (id) => `github:${id}`,
};

export const GITLAB_TRUTH: ProviderTruth = {
  name: "GitLab",
  appType: "gitlab",
  refreshAlive: async (token) => !!(await gitlab.tokenState(token))?.alive,
  liveRefreshTokens: (id) => gitlab.liveRefreshTokens(id),
  indexKey: (id) => `gitlab:${new URL(GITLAB_URL).hostname}:${id}`,
};
