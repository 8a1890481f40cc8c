/**
 * Single flight: every caller that needs the same thing while it is being fetched awaits the
 * same promise. Used inside a Durable Object, where all requests share one I/O context (in a
 * stateless Worker a promise shared across requests dies with the request that made it).
 */

/**
 * Joins the promise in flight for `key` in `map`, or starts `fn`. The entry leaves the map
 * when the promise settles (only if it is still this promise's entry), so a failure never
 * poisons later callers. The check and the join happen with no `await` between them.
 */
export function singleFlight<T>(map: Map<string, Promise<T>>, key: string, fn: () => Promise<T>): Promise<T> {
  let pending = map.get(key);
  if (!pending) {
    const p: Promise<T> = fn().finally(() => {
      if (map.get(key) === p) map.delete(key);
    });
    map.set(key, p);
    pending = p;
  }
  return pending;
}
