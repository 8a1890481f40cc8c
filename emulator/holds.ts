/**
 * Request holds for the emulators (the interleaving explorers' tool): a test arms a hold,
 * the `skip + 1`-th matching request that arrives after it waits, before it does anything
 * (no fault, no token check, no rotation), until the test releases it.
 */

interface Hold {
  match: ReadonlySet<string> | null;
  skip: number;
  caught: { endpoint: string; seq: number } | null;
  released: boolean;
  waiters: (() => void)[];
}

export class Holds {
  readonly #holds = new Map<number, Hold>();
  #next = 1;

  /** Whether any hold is armed (so a request need not work out its endpoint). */
  get armed(): boolean {
    return this.#holds.size > 0;
  }

  /** Arms a hold on the `skip + 1`-th request to one of `match` (every endpoint when omitted). */
  arm(options: { match?: string[]; skip?: number } = {}): number {
    const id = this.#next++;
    this.#holds.set(id, { match: options.match ? new Set(options.match) : null, skip: options.skip ?? 0, caught: null, released: false, waiters: [] });
    return id;
  }

  /** What a hold has caught so far (`null`: nothing yet). */
  held(id: number): { endpoint: string; seq: number } | null {
    return this.#holds.get(id)?.caught ?? null;
  }

  /** Lets a held request go on (or disarms a hold that caught nothing). */
  release(id: number): void {
    const hold = this.#holds.get(id);
    if (!hold) return;
    hold.released = true;
    for (const go of hold.waiters.splice(0)) go();
    this.#holds.delete(id);
  }

  releaseAll(): void {
    for (const id of [...this.#holds.keys()]) this.release(id);
  }

  /** Waits while an armed hold catches this request (`seq`: its arrival number, if counted). */
  async at(endpoint: string, seq = 0): Promise<void> {
    for (const hold of this.#holds.values()) {
      if (hold.caught || hold.released || (hold.match && !hold.match.has(endpoint))) continue;
      if (hold.skip > 0) {
        hold.skip--;
        continue;
      }
      hold.caught = { endpoint, seq };
      await new Promise<void>((resolve) => hold.waiters.push(resolve));
      return;
    }
  }
}

/**
 * Where requests get their arrival numbers and holds: each emulator has its own, or several
 * share one (the test setup hands the GitLab emulator the GitHub one's), so a test orders and
 * holds requests to either with one counter.
 */
export interface Arrivals {
  holds: Holds;
  /** The next arrival number. */
  next(): number;
}
