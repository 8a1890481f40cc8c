/**
 * The Worker's way into the Durable Objects: the stub of each actor, and the one policy for
 * a call into one ({@link callActor}). Every Worker-side module that calls an actor (the API
 * operations, the proxies, the webhooks, the installation tokens) comes here, so the policy
 * is written once and no module has to import the API's operations to reach an actor.
 */
import { catchingConfigErrors } from "./config";
import { failure, type Failure } from "./contract";
import { INTERNAL_ERROR } from "./failures";
import type { InstallationActor } from "./installations/actor";
import { logEvent } from "./log";
import type { UserActor } from "./actor/user-actor";

/** The actor of one platform user (`userId` as the platform names it). */
export function userActor(env: Env, userId: string): DurableObjectStub<UserActor> {
  return env.USER_ACTOR.get(env.USER_ACTOR.idFromName(userId));
}

/** The installation actor for `owner` (any case) of the App `appType` (installations/actor.ts says why the owner names it). */
export function installationActor(env: Env, appType: string, owner: string): DurableObjectStub<InstallationActor> {
  return env.INSTALLATION_ACTOR.get(env.INSTALLATION_ACTOR.idFromName(`${appType}/${owner.toLowerCase()}`));
}

/**
 * The one policy for a call into a Durable Object: a call that fails in transit (the object
 * was reset or moved) is retried once when the runtime says it may be, then reported as
 * `broker_unavailable`. The actors' own results never throw: they are contract values. A
 * broken configuration met on the Worker's side of the call is `app_misconfigured`.
 */
export async function callActor<T>(fn: () => Promise<T>): Promise<T | Failure> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await catchingConfigErrors(fn);
    } catch (err) {
      const e = err as { retryable?: boolean; overloaded?: boolean; remote?: boolean; message?: string; name?: string };
      if (attempt === 0 && e.retryable && !e.overloaded) continue;
      logEvent({ event: "actor_error", level: "error", detail: `${e.name ?? "Error"}: ${e.message ?? ""}`.slice(0, 200) });
      // `remote`: thrown by the actor's own code, which never throws on purpose: a bug.
      // Anything else is the runtime's (the object was reset, moved or overloaded).
      return e.remote
        ? INTERNAL_ERROR
        : failure("broker_unavailable", "The broker could not complete the request; try again.", 1);
    }
  }
}
