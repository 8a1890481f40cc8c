/**
 * Faults on demand, for both emulators: a queue of faults per endpoint, each good for `count`
 * requests (`-1`: until cleared), and a tally of what was injected (the soak prints it).
 */
export interface QueuedFault<E extends string, K extends string> {
  endpoint: E;
  kind: K;
  /** Default 1; `-1` until cleared. */
  count?: number;
}

export class FaultQueue<E extends string, K extends string, F extends QueuedFault<E, K> = QueuedFault<E, K>> {
  /** Faults injected so far, by kind. */
  readonly injected: Partial<Record<K, number>> = {};
  #faults: F[] = [];

  add(fault: F): void {
    this.#faults.push({ count: 1, ...fault });
  }

  /** Drops the queued faults (the tally stays). */
  clear(): void {
    this.#faults = [];
  }

  /** Drops the queued faults and the tally. */
  reset(): void {
    this.clear();
    for (const key of Object.keys(this.injected) as K[]) delete this.injected[key];
  }

  /** The fault the next request to `endpoint` meets, or `null`; counted as injected. */
  take(endpoint: E): F | null {
    const i = this.#faults.findIndex((f) => f.endpoint === endpoint);
    if (i < 0) return null;
    const fault = this.#faults[i]!;
    if (fault.count !== -1) {
      fault.count = (fault.count ?? 1) - 1;
      if (fault.count <= 0) this.#faults.splice(i, 1);
    }
    this.injected[fault.kind] = (this.injected[fault.kind] ?? 0) + 1;
    return fault;
  }
}

/** Thrown by a handler to turn its answer into a hang after the work was done (a lost response). */
export class Hang extends Error {}

/**
 * Requests that never answer (a `hang` fault, or a response lost after the work): each waits
 * until released (a reset, clearing faults) or until `ms` passed, then gets `answer()` (the
 * 504 a proxy in front of the provider would send).
 */
export class Hangs {
  readonly #releases = new Set<() => void>();

  wait(ms: number, answer: () => Response): Promise<Response> {
    return new Promise((resolve) => {
      const release = () => {
        clearTimeout(timer);
        this.#releases.delete(release);
        resolve(answer());
      };
      const timer = setTimeout(release, ms);
      this.#releases.add(release);
    });
  }

  releaseAll(): void {
    for (const release of [...this.#releases]) release();
  }
}
