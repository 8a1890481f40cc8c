/**
 * The routing skeleton both emulators share (itty-router, as the broker's src/http/routes.ts):
 *
 * - {@link emulatorRouter}: a router whose handlers may throw {@link Hang} to lose their answer.
 * - {@link arrive}: numbers every provider request on arrival (emulator/holds.ts `Arrivals`).
 * - {@link held}: a route's hold point, under the endpoint name tests arm holds with.
 * - {@link controlRoutes}: the `/_emulator/...` routes every emulator has: reset, users,
 *   settings, faults, holds.
 *
 * Each emulator's table (emulator/github-routes.ts, emulator/gitlab.ts) lists its own routes
 * around these.
 */
import { Router, type IRequest, type RouterType } from "itty-router";
import { Hang } from "./faults.ts";
import type { Holds } from "./holds.ts";

/** A request as the emulators' routes see it. */
export interface EmulatorRequest extends IRequest {
  /** Arrival number, set by {@link arrive}. */
  seq: number;
  /** `Date.now()` on arrival, set by {@link arrive}. */
  arrivedAt: number;
  /** A control route's JSON body: `{}` when it has none or it is not JSON. */
  content: Record<string, any>;
}

export type EmulatorRouter = RouterType<EmulatorRequest, []>;

/** A router whose handlers may throw {@link Hang}: the request then waits in `hang()`. */
export function emulatorRouter(hang: () => Promise<Response>): EmulatorRouter {
  return Router<EmulatorRequest, []>({
    catch: (err: unknown) => {
      if (err instanceof Hang) return hang();
      throw err;
    },
  });
}

/** Middleware: numbers the request on arrival (`next`: the emulator's arrival counter). */
export function arrive(next: () => number): (request: EmulatorRequest) => void {
  return (request) => {
    request.seq = next();
    request.arrivedAt = Date.now();
  };
}

/**
 * Middleware: the request waits while an armed hold catches it as `endpoint` (a name, or what
 * the request's body says it is, e.g. an exchange or a refresh).
 */
export function held(holds: Holds, endpoint: string | ((request: Request) => Promise<string>)): (request: EmulatorRequest) => Promise<void> {
  return async (request) => {
    if (holds.armed) await holds.at(typeof endpoint === "string" ? endpoint : await endpoint(request), request.seq);
  };
}

/** What {@link controlRoutes} drives. */
export interface Controlled {
  settings: object;
  reset(): void;
  addUser(user: never): void;
  addFault(fault: never): void;
  clearFaults(): void;
  hold(options: { match?: string[]; skip?: number }): number;
  held(id: number): unknown;
  release(id: number): void;
}

/**
 * Adds the control routes every emulator has to `router`, answering with `json` (`ok`: the
 * body of an answer that only says done). Reads the JSON body of every `POST /_emulator/...`
 * into `request.content` for the routes after it too.
 */
export function controlRoutes(router: EmulatorRouter, emulator: Controlled, json: (status: number, body: unknown) => Response, ok: object): EmulatorRouter {
  const holdId = (request: EmulatorRequest) => (/^\d+$/.test(request.params.id ?? "") ? Number(request.params.id) : null);
  return router
    .post("/_emulator/*", async (request) => {
      request.content = (await request.json().catch(() => ({}))) as Record<string, any>;
    })
    .post("/_emulator/reset", () => {
      emulator.reset();
      return json(200, ok);
    })
    .post("/_emulator/users", (request) => {
      emulator.addUser(request.content as never);
      return json(200, ok);
    })
    .post("/_emulator/settings", (request) => {
      emulator.settings = { ...emulator.settings, ...request.content };
      return json(200, emulator.settings);
    })
    .post("/_emulator/faults", (request) => {
      emulator.addFault(request.content as never);
      return json(200, ok);
    })
    .delete("/_emulator/faults", () => {
      emulator.clearFaults();
      return json(200, ok);
    })
    .post("/_emulator/holds", (request) => json(200, { id: emulator.hold(request.content) }))
    .get("/_emulator/holds/:id", (request) => {
      const id = holdId(request);
      return id === null ? undefined : json(200, { caught: emulator.held(id) });
    })
    .post("/_emulator/holds/:id/release", (request) => {
      const id = holdId(request);
      if (id === null) return undefined;
      emulator.release(id);
      return json(200, ok);
    });
}
