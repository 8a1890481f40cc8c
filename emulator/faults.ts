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
