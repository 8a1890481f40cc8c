/**
 * What survives the kills: the GitHub and GitLab emulators (with real repositories for
 * `git`) and the platform's event receiver, served over HTTP from the soak's own process.
 * They record the truth the soak checks the broker against: every pair issued, every token
 * killed, every grant revoked, every event received. `onIssued` is where the soak pulls the
 * plug right after a provider answered a refresh or a code exchange.
 */
import { mkdirSync } from "node:fs";
import { join } from "node:path";
import { createRepository, gitHttpBackend } from "../../emulator/git-backend.ts";
import { EventReceiver } from "../../emulator/event-receiver.ts";
import { GitHubEmulator, type IssuedPair } from "../../emulator/github.ts";
import { GitLabEmulator } from "../../emulator/gitlab.ts";
import { serve } from "../../emulator/serve.ts";
import { APP_IDENTITIES } from "../support/app-keys.ts";
import { brokerBindings } from "../support/harness.ts";
import { APPS, EVENTS_SIGNING_KEY, GITLAB_APP } from "../support/env.ts";

export const GITHUB_REPO = "acme/app";
export const GITLAB_PROJECT = "acme/platform/api";
/** The installation the App has on `acme` (installation tokens). */
export const INSTALLATION_ID = 7001;

export interface World {
  github: GitHubEmulator;
  gitlab: GitLabEmulator;
  receiver: EventReceiver;
  gitlabUrl: string;
  /** The broker's bindings, for a runtime listening on `brokerUrl`. */
  bindings: Record<string, string>;
  /** Called with every pair a provider issued, before the answer is sent. */
  onIssued: ((issued: IssuedPair & { provider: "github" | "gitlab" }) => Promise<void>) | null;
  close(): Promise<void>;
}

/** Starts the emulators and the receiver; `brokerUrl` is where GitHub's webhooks go. */
export async function startWorld(dir: string, brokerUrl: string): Promise<World> {
  const repos = join(dir, "repos");
  mkdirSync(repos, { recursive: true });
  await createRepository(repos, GITHUB_REPO, { "README.md": "# app\n" });
  const github = new GitHubEmulator(
    Object.values(APPS).map((a) => ({ ...a, webhookUrl: `${brokerUrl}/webhooks/github/${a === APPS.standard ? "standard" : "lite"}` })),
    { gitBackend: gitHttpBackend(repos) },
  );
  for (const identity of APP_IDENTITIES) github.installations.registerApp(identity);
  github.installations.addInstallation({ id: INSTALLATION_ID, clientId: APPS.standard.clientId, account: "acme", repositories: [GITHUB_REPO], permissions: { contents: "write", pull_requests: "write", metadata: "read" } });
  const gitlab = new GitLabEmulator([{ ...GITLAB_APP }]);
  const receiver = new EventReceiver();
  const servers = await Promise.all([serve((r) => github.fetch(r)), serve((r) => gitlab.fetch(r)), serve((r) => receiver.fetch(r))]);
  const [githubServer, gitlabServer, receiverServer] = servers;
  const world: World = {
    github,
    gitlab,
    receiver,
    gitlabUrl: gitlabServer!.url,
    bindings: {
      ...brokerBindings(githubServer!.url, brokerUrl, "5000"),
      GITLAB_APPS: JSON.stringify({ gitlab: { clientId: GITLAB_APP.clientId, baseUrl: gitlabServer!.url } }),
      GITLAB_CLIENT_SECRET_GITLAB: GITLAB_APP.clientSecret,
      EVENTS_URL: `${receiverServer!.url}/hook`,
      EVENTS_SIGNING_KEY,
    },
    onIssued: null,
    close: async () => {
      github.clearFaults();
      receiver.reset();
      await Promise.all(servers.map((s) => s.close()));
    },
  };
  github.onIssued = (issued) => world.onIssued?.({ ...issued, provider: "github" });
  gitlab.onIssued = (issued) => world.onIssued?.({ ...issued, provider: "gitlab" });
  return world;
}
