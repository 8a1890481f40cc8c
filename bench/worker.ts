/**
 * The benchmark's Worker: the broker as deployed, plus one route to a Durable Object that
 * does nothing, so "hot path" and "bare Durable Object round trip" are measured in the same
 * process, through the same HTTP and RPC layers; and the harness's egress stand-in
 * (test/support/harness-entry.ts), for the bench's egress figure. `scripts/bench.ts` passes
 * this entry to the harness; the tests run test/support/harness-entry.ts.
 *
 * For `--profile` (scripts/bench-profile.ts) it also answers variants of the hot path that
 * repeat one part of it many times within a request (`x-bench-repeat`), so that part's CPU
 * stands out of the request's:
 * - `/bench/stage/{stage}/{id}`: the actor's stages (bench/profile-stages.ts) or its real
 *   `token` method, run in the user's actor (a subclass of the real one, same storage);
 * - `/bench/worker/{stage}/{id}`: the Worker's own work (body parsing, validation, response
 *   building, routing, bearer check) on a copy of the request, against an actor that answers
 *   at once, so no RPC is repeated.
 * None of it is in the deployed Worker.
 */
import { DurableObject } from "cloudflare:workers";
import broker from "../src/index";
import * as api from "../src/api";
import { UserActor as BrokerUserActor, type TokenInput } from "../src/actor/user-actor";
import type { TokenResult } from "../src/contract";
import { tokenRoute } from "../src/http/token-route";
import { userActor } from "../src/actors";
import { loadConfig } from "../src/config";
import { redeem } from "../src/proxy/git-proxy";
import { json } from "../src/http/respond";
import { jsonText } from "../src/json-text";
import { ProfileStages, type ActorStage, type StageInput } from "./profile-stages";
import { egressStandIn } from "../test/support/harness-entry";

export { IdentityIndex, InstallationActor, BrokerApi } from "../src/index";

export class BareObject extends DurableObject {
  async ping(input: { userId: string }): Promise<{ ok: true; userId: string }> {
    return { ok: true, userId: input.userId };
  }

  /** The same with the token call's shapes: its input in, a grant-sized answer out (no other work). */
  async pingGrant(_input: TokenInput): Promise<TokenResult> {
    return GRANT;
  }

  /** The same, from an object that has opened its SQLite storage (as every user actor has). */
  async pingStorage(input: { userId: string }): Promise<{ ok: true; userId: string }> {
    this.#wrote ||= (this.ctx.storage.sql.exec("CREATE TABLE IF NOT EXISTS t (x)"), this.ctx.storage.sql.exec("INSERT INTO t VALUES (1)"), true);
    return { ok: true, userId: input.userId };
  }
  #wrote = false;
}

/**
 * What the user actors did since the isolate started, for the bench's scale phase: how many
 * were constructed (a first request, or one after workerd evicted the object) and how many
 * alarms ran. Counted per isolate: workerd runs the Worker and its objects in one.
 */
const actorCounts = { constructed: 0, alarms: 0 };

/** The broker's actor, unchanged, plus the profile's stages over the same storage. */
export class UserActor extends BrokerUserActor {
  #stages: ProfileStages | undefined;

  constructor(ctx: DurableObjectState, env: Env) {
    super(ctx, env);
    actorCounts.constructed++;
  }

  override async alarm(): Promise<void> {
    actorCounts.alarms++;
    return super.alarm();
  }

  async benchStage(stage: ActorStage | "token", input: StageInput, repeat: number): Promise<{ ok: boolean }> {
    if (stage === "token") {
      const full: TokenInput = { ...input, permission: "push", minValiditySeconds: 300 };
      for (let i = 0; i < repeat; i++) if (!(await this.token(full)).ok) return { ok: false };
      return { ok: true };
    }
    this.#stages ??= new ProfileStages(this.ctx.storage.sql, this.env);
    return this.#stages.repeat(stage, input, repeat);
  }
}

type BenchEnv = Env & { BARE: DurableObjectNamespace<BareObject> };
const BENCH = /^https?:\/\/[^/]+\/bench\/([a-z_]+)\/(?:([a-z_]+)\/)?([^/?]+)$/;

export default {
  async fetch(request, env, ctx) {
    const egress = egressStandIn(request, ctx);
    if (egress) return egress;
    if (request.url.endsWith("/bench/counts")) return Response.json(actorCounts);
    const bench = BENCH.exec(request.url);
    if (bench) return benchRoute(request, env, bench[1]!, bench[2], decodeURIComponent(bench[3]!));
    return broker.fetch(request, env);
  },
} satisfies ExportedHandler<BenchEnv>;

async function benchRoute(request: Request, env: BenchEnv, kind: string, stage: string | undefined, userId: string): Promise<Response> {
  const repeat = Number(request.headers.get("x-bench-repeat") ?? 1);
  if (kind === "worker") return workerStage(request, env, stage!, userId, repeat);
  if (kind === "proxy") return proxyStage(request, env, stage!, userId);
  const body = (await request.json()) as Record<string, unknown>;
  switch (kind) {
    case "bare":
      return Response.json({ ...(await env.BARE.get(env.BARE.idFromName(userId)).ping({ userId })), echo: typeof body.repository });
    case "bare_grant": {
      const input: TokenInput = { userId, appType: String(body.appType), repository: String(body.repository), permission: "push", minValiditySeconds: 300 };
      return json(await env.BARE.get(env.BARE.idFromName(userId)).pingGrant(input));
    }
    case "bare_storage":
      return Response.json({ ...(await env.BARE.get(env.BARE.idFromName(`storage:${userId}`)).pingStorage({ userId })), echo: typeof body.repository });
    case "stage": {
      const input = { userId, appType: String(body.appType), repository: String(body.repository) };
      const actors = env.USER_ACTOR as unknown as DurableObjectNamespace<UserActor>;
      return Response.json(await actors.get(actors.idFromName(userId)).benchStage(stage as ActorStage, input, repeat));
    }
    default:
      return new Response("no such bench route", { status: 404 });
  }
}

/**
 * Parts of a proxied git request on their own, for the proxy's profile: `redeem` (the
 * capability checked in the Worker and redeemed by the user's actor: the one round trip a
 * proxied request must make), `record` (the push's audit record, a second call to the actor),
 * `forward` (the request to the git host with a token the bench gives, no redemption).
 * `{userId}` is the repository as `owner~name`.
 */
async function proxyStage(request: Request, env: Env, stage: string, ownerName: string): Promise<Response> {
  const repository = ownerName.replace("~", "/");
  if (stage === "redeem") {
    const lent = await redeem(env, request, { repository, write: true, service: "git-receive-pack", appType: null });
    return Response.json({ ok: lent.ok });
  }
  if (stage === "record") {
    const userId = request.headers.get("x-bench-user")!;
    await userActor(env, userId).recordPush({ userId, sessionId: "bench", repository, refs: ["refs/heads/agent/bench"], outcome: "forwarded" });
    return Response.json({ ok: true });
  }
  if (stage === "forward") {
    const headers = { authorization: `Basic ${btoa(`x-access-token:${request.headers.get("x-bench-token")}`)}` };
    const upstream = await fetch(`${loadConfig(env).webUrl}/${repository}.git/info/refs?service=git-receive-pack`, { headers, redirect: "manual" });
    return new Response(upstream.body, { status: upstream.status, headers: { "content-type": upstream.headers.get("content-type") ?? "" } });
  }
  return new Response("no such stage", { status: 404 });
}

/** What the actor answers in {@link workerStage}: a grant shaped like the real one. */
const GRANT: TokenResult = {
  ok: true,
  identity: "user",
  token: "ghu_" + "x".repeat(36),
  expiresAt: "2026-12-04T20:00:00Z",
  expiresInSeconds: 28_000,
  githubUserId: "1",
  githubLogin: "user1",
  committer: { name: "user1", email: "1+user1@users.noreply.github.com" },
};
const GRANT_TEXT = jsonText(GRANT);
const instantActor = { idFromName: (name: string) => name, get: () => ({ tokenText: async (_: TokenInput) => GRANT_TEXT }) };
const fakeEnvs = new WeakMap<object, Env>();

/**
 * The Worker's own work on the hot path, `repeat` times on copies of the request, against an
 * actor that answers at once: `parse` (a copy of the request, its JSON body, a plain JSON
 * answer), then each rung adds the next layer of the real path.
 */
async function workerStage(request: Request, env: Env, stage: string, userId: string, repeat: number): Promise<Response> {
  let fake = fakeEnvs.get(env);
  if (!fake) fakeEnvs.set(env, (fake = Object.assign(Object.create(env) as Env, { USER_ACTOR: instantActor })));
  const text = await request.text();
  const url = request.url.replace(/\/bench\/worker\/[a-z_]+\/[^/?]+/, `/v1/users/${encodeURIComponent(userId)}/token`);
  for (let i = 0; i < repeat; i++) {
    const copy = new Request(url, { method: "POST", headers: request.headers, body: text });
    let response: Response;
    if (stage === "parse") {
      await copy.json();
      response = new Response(GRANT_TEXT);
    } else if (stage === "api") {
      const answer = await api.getToken(fake, userId, await copy.json());
      response = new Response(typeof answer === "string" ? answer : JSON.stringify(answer));
    } else if (stage === "respond") response = json(await api.getToken(fake, userId, await copy.json()));
    else if (stage === "route") response = await tokenRoute(copy, fake, new URL(url).pathname)!;
    else if (stage === "entry") response = await broker.fetch(copy as Request<unknown, IncomingRequestCfProperties>, fake);
    else return new Response("no such stage", { status: 404 });
    await response.arrayBuffer();
    if (response.status !== 200) return new Response(`stage ${stage} answered ${response.status}`, { status: 500 });
  }
  return Response.json({ ok: true });
}
