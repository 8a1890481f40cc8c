/**
 * The crash soak's workload: many users, a third of them on GitLab, each with two provider
 * accounts and a few agent sessions asking for tokens on short-lived pairs (refresh storms),
 * while a chaos loop connects, reconnects as the other account, disconnects, deletes accounts,
 * revokes on GitHub (with the webhook), issues capabilities and redeems them with real `git`,
 * and mints installation tokens. Every answer is counted; a 5xx that is not a retryable
 * contract reason is a violation.
 */
import { run as runCommand } from "../../emulator/git-backend.ts";
import { APPS } from "../support/env.ts";
import type { BrokerClient, Answer } from "./broker.ts";
import type { UserModel } from "./truth.ts";
import { GITHUB_REPO, GITLAB_PROJECT, type World } from "./world.ts";

const RETRYABLE_5XX = new Set(["github_unavailable", "broker_unavailable"]);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const pick = <T>(xs: readonly T[]): T => xs[Math.floor(Math.random() * xs.length)]!;

export interface SoakUser extends UserModel {
  current: number;
  busy: boolean;
}

export class Workload {
  readonly users: SoakUser[];
  /** Answers by operation and outcome (`op:status/reason`); `none` when the broker gave none. */
  readonly answers: Record<string, number> = {};
  readonly violations: string[] = [];
  operations = 0;
  gitRuns = 0;
  #gitBusy = false;
  readonly #broker: BrokerClient;
  readonly #world: World;
  /** Resolves when the runtime is up (the workload waits while it is down). */
  readonly #up: () => Promise<void>;

  constructor(broker: BrokerClient, world: World, users: number, up: () => Promise<void>) {
    this.#broker = broker;
    this.#world = world;
    this.#up = up;
    this.users = Array.from({ length: users }, (_, i) => {
      const provider = i % 3 === 2 ? "gitlab" : "github";
      const first = (provider === "gitlab" ? 80_000 : 50_000) + i;
      return { userId: `crash-${i}`, provider, appType: provider === "gitlab" ? "gitlab" : "standard", accounts: [first, first + 10_000], objectId: "", last: "none", revoked: new Set(), current: first, busy: false };
    });
    for (const u of this.users) {
      for (const account of u.accounts) {
        if (u.provider === "github") world.github.addUser({ id: account, login: `crash${account}`, name: null, repos: { [GITHUB_REPO]: "push" } });
        else world.gitlab.addUser({ id: account, username: `crash${account}`, name: `Crash ${account}`, projects: { [GITLAB_PROJECT]: { level: 30 } } });
      }
    }
  }

  #count(op: string, a: Answer): Answer {
    this.operations++;
    const outcome = a.status === 0 ? "none" : a.body?.ok ? "ok" : `${a.status}/${a.body?.reason ?? "?"}`;
    this.answers[`${op}:${outcome}`] = (this.answers[`${op}:${outcome}`] ?? 0) + 1;
    if (a.status >= 500 && !RETRYABLE_5XX.has(a.body?.reason)) this.violations.push(`${op} answered ${a.status} ${JSON.stringify(a.body).slice(0, 200)}`);
    return a;
  }

  /** A connect (of `account`, or the user's other one), as a lifecycle operation of its own. */
  async connect(u: SoakUser, account: number): Promise<Answer> {
    const a = await this.#broker.connect(u.userId, u.appType, account, this.#world);
    this.#count(`connect.${a.step}`, a);
    if (a.step === "confirm" && a.status === 200) {
      u.last = "connected";
      u.current = account;
    } else if (a.step === "confirm" && a.status === 0) u.last = "unknown";
    return a;
  }

  async #lifecycle(u: SoakUser, what: "reconnect" | "other" | "disconnect" | "delete" | "revoke"): Promise<void> {
    if (u.busy) return;
    u.busy = true;
    try {
      if (what === "reconnect") await this.connect(u, u.current);
      else if (what === "other") await this.connect(u, u.accounts.find((x) => x !== u.current)!);
      else if (what === "disconnect") {
        const a = this.#count("disconnect", await this.#broker.call("DELETE", `/v1/users/${u.userId}/connection?appType=${u.appType}`));
        u.last = a.status === 200 ? "disconnected" : a.status === 0 ? "unknown" : u.last;
      } else if (what === "delete") {
        const a = this.#count("delete", await this.#broker.call("DELETE", `/v1/users/${u.userId}`));
        u.last = a.status === 200 ? "deleted" : a.status === 0 ? "unknown" : u.last;
      } else if (u.provider === "github" && u.last === "connected") {
        u.revoked.add(u.current);
        const res = await this.#world.github.revokeAndNotify(APPS.standard.clientId, u.current).catch(() => ({ status: 0 }));
        this.#count("revoke_webhook", { status: res.status, body: res.status === 202 ? { ok: true } : null });
      }
    } finally {
      u.busy = false;
    }
  }

  /** An agent session: tokens, again and again, on 3-second pairs. */
  async session(u: SoakUser, running: () => boolean): Promise<void> {
    while (running()) {
      await this.#up();
      const a = this.#count("token", await this.#broker.call("POST", `/v1/users/${u.userId}/token`, { appType: u.appType, repository: u.provider === "gitlab" ? GITLAB_PROJECT : GITHUB_REPO, minValiditySeconds: pick([1, 1, 1, 5]) }));
      if (["reconnect_required", "revoked", "not_connected"].includes(a.body?.reason) && Math.random() < 0.3) await this.#lifecycle(u, "reconnect");
      await sleep(20 + Math.random() * 60);
    }
  }

  /** The chaos loop: lifecycle operations, revocations, capabilities with git, installation tokens. */
  async chaos(running: () => boolean): Promise<void> {
    while (running()) {
      await this.#up();
      const roll = Math.random();
      const u = pick(this.users);
      if (roll < 0.12) void this.#lifecycle(u, "other");
      else if (roll < 0.2) void this.#lifecycle(u, "reconnect");
      else if (roll < 0.26) void this.#lifecycle(u, "disconnect");
      else if (roll < 0.3) void this.#lifecycle(u, "delete");
      else if (roll < 0.36) void this.#lifecycle(u, "revoke");
      else if (roll < 0.46) void this.#capability(u);
      else if (roll < 0.56) void this.#installationToken();
      await sleep(60 + Math.random() * 120);
    }
    while (this.users.some((x) => x.busy) || this.#gitBusy) await sleep(50);
  }

  /** A capability, redeemed by real `git ls-remote` through the proxy (one git at a time). */
  async #capability(u: SoakUser): Promise<void> {
    if (u.provider !== "github" || this.#gitBusy) return;
    this.#gitBusy = true;
    try {
      const a = this.#count("capability", await this.#broker.call("POST", `/v1/users/${u.userId}/capabilities`, { appType: "standard", repository: GITHUB_REPO, sessionId: `s-${Date.now()}`, ttlSeconds: 600 }));
      if (a.status !== 200) return;
      const remote = new URL(a.body.gitRemoteUrl);
      remote.username = "x";
      remote.password = a.body.capability;
      this.gitRuns++;
      const ok = await runCommand("git", ["ls-remote", remote.toString()], undefined, { GIT_TERMINAL_PROMPT: "0" }).then(
        () => true,
        () => false,
      );
      this.answers[`git:${ok ? "ok" : "failed"}`] = (this.answers[`git:${ok ? "ok" : "failed"}`] ?? 0) + 1;
    } finally {
      this.#gitBusy = false;
    }
  }

  async #installationToken(): Promise<void> {
    this.#count("installation_token", await this.#broker.call("POST", "/v1/installations/token", { appType: "standard", repository: GITHUB_REPO }));
  }
}
