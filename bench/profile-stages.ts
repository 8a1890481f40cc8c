/**
 * The hot `/token` path cut into cumulative stages, for `npm run bench -- --profile`.
 *
 * workerd's clock advances only on I/O, so a stage's CPU cannot be timed from inside the
 * isolate. Instead the bench runs one variant per stage, each doing everything the previous
 * one did plus one more step, and measures each variant from outside (workerd's CPU time per
 * request, from /proc, and throughput): a stage costs the difference to the one before.
 *
 * Each stage can run many times within one request (`repeat`), so its own CPU stands out of
 * the request's (HTTP, RPC), which varies with the machine's load far more than a stage costs.
 *
 * The stages use the actor's own modules over the same storage, in the order and the way the
 * real `UserActor.token` uses them; bench/worker.ts also repeats that method itself, so the
 * ladder's top can be compared with it. Bench-only: production code has no hook for this.
 */
import { Refresher } from "../src/actor/refresher";
import { RepoAccess } from "../src/actor/repo-access";
import { TokenVault } from "../src/actor/token-vault";
import { AuditLog } from "../src/actor/audit-log";
import { ConnectionStore } from "../src/actor/connection-store";
import { callContext } from "../src/actor/context";
import { grantOf } from "../src/actor/token-desk";
import { recordMetric } from "../src/metrics";

/**
 * The actor-side stages, cumulative, in the order a hot `/token` call runs them; `sqlite_read`
 * and `aes_open` are single steps on top of `context`, not rungs.
 */
export type ActorStage = "rpc" | "context" | "live" | "repo" | "recheck" | "audit" | "metrics" | "sqlite_read" | "aes_open";

export interface StageInput {
  userId: string;
  appType: string;
  repository: string;
}

export class ProfileStages {
  readonly #env: Env;
  readonly #store: ConnectionStore;
  readonly #vault = new TokenVault();
  readonly #refresher: Refresher;
  readonly #repos: RepoAccess;
  readonly #audit: AuditLog;

  constructor(sql: SqlStorage, env: Env) {
    this.#env = env;
    this.#store = new ConnectionStore(sql);
    this.#refresher = new Refresher(this.#store, this.#vault);
    this.#repos = new RepoAccess(this.#refresher);
    this.#audit = new AuditLog(sql, () => true);
  }

  /** Runs `stage` `repeat` times in a row (so its CPU stands out of the request's), all must succeed. */
  async repeat(stage: ActorStage, input: StageInput, repeat: number): Promise<{ ok: boolean; stage: ActorStage }> {
    for (let i = 0; i < repeat; i++) {
      const done = await this.run(stage, input);
      if (!done.ok) return done;
    }
    return { ok: true, stage };
  }

  async run(stage: ActorStage, input: StageInput): Promise<{ ok: boolean; stage: ActorStage; token?: string }> {
    const started = Date.now();
    if (stage === "rpc") return { ok: true, stage };
    const c = await callContext(this.#env, input.userId, input.appType);
    if (!c.ok) return { ok: false, stage };
    if (stage === "context") return { ok: true, stage };
    if (stage === "sqlite_read") return { ok: this.#store.get(input.appType) !== null, stage };
    if (stage === "aes_open") {
      const row = this.#store.get(input.appType)!;
      const opened = await this.#vault.open(c.value.keyring, input.userId, input.appType, "access_token", row.access_token!);
      return { ok: opened.ok, stage };
    }
    const live = await this.#refresher.live(c.value, 300_000);
    if (!live.ok || stage === "live") return { ok: live.ok, stage };
    const checked = await this.#repos.check(c.value, live, input.repository, "push", 300_000);
    if (!checked.ok || stage === "repo") return { ok: checked.ok, stage };
    if (!this.#refresher.isCurrent(checked)) return { ok: false, stage };
    const grant = grantOf(checked, c.value.provider);
    if (stage === "recheck") return { ok: grant.ok, stage, token: checked.accessToken };
    this.#audit.recordCoalesced("token_issued", input.appType, { repository: input.repository, identity: "user", scope: "user" });
    if (stage === "audit") return { ok: grant.ok, stage, token: checked.accessToken };
    recordMetric(this.#env, { operation: "token", outcome: "ok", appType: input.appType, durationMs: Date.now() - started, githubCalls: c.value.provider.calls });
    return { ok: grant.ok, stage, token: checked.accessToken };
  }
}
