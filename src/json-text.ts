/**
 * A value already serialized as JSON, typed by what it holds. An actor answers its hottest
 * call with one (`UserActor.tokenText`): a string crosses the Durable Object RPC boundary for
 * a fraction of what the object costs (each property cloned out and back, then stringified
 * again for the HTTP answer; measured in docs/benchmark.md), and the HTTP route sends it as
 * it is. RPC callers get the object back with {@link parseJsonText}.
 */
declare const holds: unique symbol;

/** JSON text of a `T`, made only by {@link jsonText}. */
export type JsonText<T> = string & { readonly [holds]: T };

/** `value` as JSON text. */
export function jsonText<T>(value: T): JsonText<T> {
  return JSON.stringify(value) as JsonText<T>;
}

/** The value back from its JSON text. */
export function parseJsonText<T>(text: JsonText<T>): T {
  return JSON.parse(text) as T;
}
