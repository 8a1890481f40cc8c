/**
 * The crash soak's truth check: what the broker holds on disk (read while the runtime is dead)
 * against what the providers and the event receiver recorded. {@link Truth.afterKill} runs on
 * the storage exactly as each kill left it; {@link Truth.final} at the end, once everything had
 * time to settle. Every finding is a violation with the user it concerns.
 */
import { APPS, GITLAB_APP } from "../support/env.ts";
import type { World } from "./world.ts";
import type { Disk, StoredConnection, StoredUser } from "./disk.ts";

/** A rotation answered at most this long before a kill counts as in flight at the kill. */
export const IN_FLIGHT_MS = 1000;

/** The soak's knowledge of one user, from the answers the workload got. */
export interface UserModel {
  userId: string;
  provider: "github" | "gitlab";
  appType: "standard" | "gitlab";
  accounts: [number, number];
  objectId: string;
  /** The last lifecycle operation that was answered; `unknown` when the last one got no answer. */
  last: "none" | "connected" | "disconnected" | "deleted" | "unknown";
  /** Accounts the soak revoked at the provider (GitHub, with the webhook). */
  revoked: Set<number>;
}

interface KillRecord {
  at: number;
  refreshesInFlight: number;
  exchangesInFlight: number;
  lostRotations: number;
}

const key = (provider: string, account: number | string) => `${provider}:${account}`;

export class Truth {
  readonly violations: string[] = [];
  readonly kills: KillRecord[] = [];
  /** For each lost rotation: how long before the kill the provider had answered it (ms). */
  readonly lossAges: number[] = [];
  /** Per provider account: when the provider issued a pair (refresh or exchange). */
  readonly #issued = new Map<string, { grant: "refresh" | "exchange"; at: number; down: number | null }[]>();
  /** Stored pairs (user, generation, version) already found spent: counted once. */
  readonly #lostKnown = new Set<string>();
  /** Lost rotations found on disk, per provider account. */
  readonly #lost = new Map<string, number>();
  /** Event ids seen in an outbox at a kill: each must be delivered. */
  readonly #outboxSeen = new Map<string, string>();
  /** State changes seen on disk at a kill (user, type, account): each must have its event. */
  readonly #statesSeen = new Map<string, { userId: string; appType: string; type: string; account: string }>();
  /** Pending revocations seen on disk at a kill: each must end confirmed at the provider. */
  readonly #pendingSeen = new Map<string, { userId: string; provider: "github" | "gitlab"; accessToken: string | null }>();
  readonly #world: World;
  readonly #disk: Disk;

  constructor(world: World, disk: Disk) {
    this.#world = world;
    this.#disk = disk;
  }

  /**
   * Records a pair the provider issued (the emulators' `onIssued`). `downSince`: the kill the
   * runtime is down from, if it is: a request the dead runtime sent before the kill can reach
   * the provider after it, so it was in flight at that kill.
   */
  issued(provider: string, account: number, grant: "refresh" | "exchange", downSince: number | null): void {
    const k = key(provider, account);
    this.#issued.set(k, [...(this.#issued.get(k) ?? []), { grant, at: Date.now(), down: downSince }]);
  }

  /** Per account: the pairs of `grant` in flight at the kill at `at` (so far: late arrivals keep coming until the restart). */
  #inFlight(at: number, grant: "refresh" | "exchange"): Map<string, number> {
    const out = new Map<string, number>();
    for (const [k, list] of this.#issued) {
      const n = list.filter((e) => e.grant === grant && ((e.at >= at - IN_FLIGHT_MS && e.at <= at) || e.down === at)).length;
      if (n > 0) out.set(k, n);
    }
    return out;
  }

  /** Per account, over every kill: the pairs of `grant` in flight. */
  #inFlightAll(grant: "refresh" | "exchange"): Map<string, number> {
    const out = new Map<string, number>();
    for (const kill of this.kills) for (const [k, n] of this.#inFlight(kill.at, grant)) out.set(k, (out.get(k) ?? 0) + n);
    return out;
  }

  /** The storage as the kill at `at` left it. */
  async afterKill(at: number, users: UserModel[]): Promise<void> {
    const refreshes = this.#inFlight(at, "refresh");
    const exchanges = this.#inFlight(at, "exchange");
    const record: KillRecord = { at, refreshesInFlight: [...refreshes.values()].reduce((a, b) => a + b, 0), exchangesInFlight: [...exchanges.values()].reduce((a, b) => a + b, 0), lostRotations: 0 };
    for (const u of users) {
      const stored = await this.#disk.read(u.objectId, u.userId);
      for (const c of stored.connections) {
        this.#statesSeen.set(`${u.userId}:${c.generation}:${c.status}`, { userId: u.userId, appType: c.appType, type: c.status, account: c.account });
        const verdict = this.#connected(u, c);
        const pairKey = `${u.userId}:${c.generation}:${c.version}`;
        if (verdict === "lost" && !this.#lostKnown.has(pairKey)) {
          this.#lostKnown.add(pairKey);
          const k = key(u.provider, c.account);
          const last = (this.#issued.get(k) ?? []).filter((e) => e.grant === "refresh" && e.at <= at && e.at >= at - IN_FLIGHT_MS).at(-1);
          if (last) this.lossAges.push(at - last.at);
          this.#lost.set(k, (this.#lost.get(k) ?? 0) + 1);
          record.lostRotations++;
        } else if (verdict && verdict !== "lost") this.violations.push(`${u.userId}: ${verdict}`);
      }
      for (const e of stored.outbox) this.#outboxSeen.set(e.id, u.userId);
      for (const r of stored.revocations) {
        this.#pendingSeen.set(r.id, { userId: u.userId, provider: u.provider, accessToken: r.accessToken });
        // The revoker refreshes an expired pair to revoke it: that rotation can be lost too.
        const spent = r.refreshToken !== null && this.#spentByRotation(u, r.refreshToken);
        // A confirm's record is written before the provider names the account: GitHub's records do.
        const account = r.account ?? (u.provider === "github" && r.refreshToken ? this.#world.github.refreshTokenState(r.refreshToken)?.userId : undefined) ?? "?";
        const k = key(u.provider, account);
        if (spent && !this.#lostKnown.has(`revocation:${r.id}:${r.refreshToken}`)) {
          this.#lostKnown.add(`revocation:${r.id}:${r.refreshToken}`);
          this.#lost.set(k, (this.#lost.get(k) ?? 0) + 1);
          record.lostRotations++;
        }
      }
    }
    this.kills.push(record);
  }

  /**
   * A connected row's refresh token against the provider: `null` when it is live, `"lost"`
   * when a rotation spent it (a lost rotation, if one was in flight), otherwise what is wrong.
   */
  #connected(u: UserModel, c: StoredConnection): string | "lost" | null {
    if (c.status !== "connected") return null;
    if (!c.refreshToken) return "connected with a refresh token that does not open";
    if (u.provider === "github") {
      const state = this.#world.github.refreshTokenState(c.refreshToken);
      if (!state) return "connected with a refresh token GitHub never issued";
      if (state.alive) return null;
      if (state.killedBy?.cause === "rotation") return "lost";
      if (state.killedBy?.cause === "revocation") return u.revoked.has(Number(c.account)) ? null : "connected with a grant revoked by no one but the broker";
      return "connected with an expired refresh token";
    }
    const state = this.#world.gitlab.tokenState(c.refreshToken);
    if (!state) return "connected with a refresh token GitLab never issued";
    if (state.alive) return null;
    if (state.killedBy === "rotation") return "lost";
    return "connected with a GitLab token revoked by the broker";
  }

  #spentByRotation(u: UserModel, token: string): boolean {
    if (u.provider === "github") return this.#world.github.refreshTokenState(token)?.killedBy?.cause === "rotation";
    return this.#world.gitlab.tokenState(token)?.killedBy === "rotation";
  }

  /** Lost rotations found so far for one account. */
  lostRotations(u: UserModel, account: number): number {
    return this.#lost.get(key(u.provider, account)) ?? 0;
  }

  get totalLost(): number {
    return [...this.#lost.values()].reduce((a, b) => a + b, 0);
  }

  /** Everything, once the workload stopped and the broker had time to deliver and revoke. */
  async final(users: UserModel[]): Promise<{ delivered: number; expected: number }> {
    const deliveries = this.#world.receiver.deliveries.map((d) => JSON.parse(d.body) as { id: string; type: string; userId: string; appType: string; githubUserId?: string; reason?: string; at: string });
    const deliveredIds = new Set(deliveries.map((d) => d.id));
    for (const [id, userId] of this.#outboxSeen) if (!deliveredIds.has(id)) this.violations.push(`${userId}: event ${id} was in the outbox at a kill and never delivered`);
    for (const s of this.#statesSeen.values()) {
      if (!deliveries.some((d) => d.userId === s.userId && d.appType === s.appType && d.type === s.type && d.githubUserId === s.account)) {
        this.violations.push(`${s.userId}: stored state ${s.type} (account ${s.account}) at a kill, no such event delivered`);
      }
    }
    // Each lost rotation needs a refresh of its account that was in flight at some kill.
    const inFlight = this.#inFlightAll("refresh");
    for (const [k, n] of this.#lost) if (n > (inFlight.get(k) ?? 0)) this.violations.push(`${k}: ${n} lost rotations, ${inFlight.get(k) ?? 0} refreshes in flight at the kills`);
    for (const kill of this.kills) kill.refreshesInFlight = [...this.#inFlight(kill.at, "refresh").values()].reduce((a, b) => a + b, 0);
    const exchanges = this.#inFlightAll("exchange");
    for (const u of users) await this.#finalUser(u, deliveries.filter((d) => d.userId === u.userId), exchanges);
    for (const [id, p] of this.#pendingSeen) {
      if (!p.accessToken) continue;
      const alive = p.provider === "github" ? this.#world.github.accessTokenState(p.accessToken)?.alive : this.#world.gitlab.tokenState(p.accessToken)?.alive;
      if (alive) this.violations.push(`${p.userId}: pending revocation ${id} (seen at a kill) never confirmed: the grant is live`);
    }
    return { delivered: deliveredIds.size, expected: new Set([...this.#outboxSeen.keys(), ...deliveredIds]).size };
  }

  async #finalUser(u: UserModel, events: { id: string; type: string; appType: string; githubUserId?: string; reason?: string }[], exchangesInFlight: Map<string, number>): Promise<void> {
    const stored: StoredUser = await this.#disk.read(u.objectId, u.userId);
    const v = (m: string) => this.violations.push(`${u.userId}: ${m}`);
    if (stored.outbox.length > 0) v(`${stored.outbox.length} events still undelivered at the end`);
    if (stored.revocations.length > 0) v(`${stored.revocations.length} grant revocations still pending at the end`);
    const row = stored.connections.find((c) => c.appType === u.appType) ?? null;
    const verdict = row ? this.#connected(u, row) : null;
    if (verdict) v(verdict === "lost" ? "connected at the end with a spent refresh token" : verdict);
    // The last event of the App tells the stored state.
    const mine = events.filter((e) => e.appType === u.appType);
    const unique = mine.filter((e, i) => mine.findIndex((x) => x.id === e.id) === i);
    const lastEvent = unique.at(-1);
    if (row && (lastEvent?.type !== row.status || lastEvent.githubUserId !== row.account || (row.reason !== null && lastEvent.reason !== row.reason))) {
      v(`stored ${row.status}/${row.reason} (account ${row.account}), last event ${lastEvent?.type}/${lastEvent?.reason} (account ${lastEvent?.githubUserId})`);
    }
    if (!row && lastEvent && !["disconnected", "deleted"].includes(lastEvent.type)) v(`nothing stored, last event ${lastEvent.type}`);
    for (let i = 1; i < unique.length; i++) {
      const [a, b] = [unique[i - 1]!, unique[i]!];
      if (a.type === b.type && a.type !== "connected" && a.githubUserId === b.githubUserId) v(`event ${b.type} reported twice in a row (${a.id}, ${b.id})`);
    }
    if (row?.status === "revoked" && !u.revoked.has(Number(row.account))) v("revoked, but no one revoked it at the provider");
    if (row?.status === "reconnect_required") {
      const account = Number(row.account);
      const history = this.#history(u, account);
      if (this.lostRotations(u, account) + history.dropped === 0 && !u.revoked.has(account)) v(`reconnect_required (${row.reason}) with no lost rotation and no revocation`);
    }
    if (u.last === "deleted" && (stored.connections.length > 0 || stored.otherRows > 0)) v(`${stored.connections.length} connections and ${stored.otherRows} rows left after the account deletion`);
    for (const account of u.accounts) {
      const history = this.#history(u, account);
      // A pair issued while the runtime was down is lost for certain, even where the disk check
      // ran before the provider got to the dead runtime's request.
      const lateRotations = (this.#issued.get(key(u.provider, account)) ?? []).filter((e) => e.grant === "refresh" && e.down !== null).length;
      const excuse = this.lostRotations(u, account) + lateRotations + history.dropped;
      // A pair spent in a crash is presented again by each holder that still has it (the
      // connection's refresh, then the revoker's): at most twice, and that is how the broker learns.
      if (history.reuses > 2 * excuse) v(`account ${account}: ${history.reuses} spent refresh tokens presented again, ${excuse} lost in a crash or a timeout`);
      const live = this.#live(u, account);
      const connectedHere = row?.status === "connected" && row.account === String(account);
      const forgotten = connectedHere ? live.filter((t) => t !== row!.refreshToken && u.provider === "gitlab") : live;
      const forgivable = excuse + (exchangesInFlight.get(key(u.provider, account)) ?? 0);
      // GitHub has one grant per (App, account), whatever number of pairs it holds; on GitLab each authorization is one.
      const grants = u.provider === "github" ? Math.min(1, forgotten.length) : forgotten.length;
      if (grants > forgivable) v(`account ${account}: ${forgotten.length} live grant(s) the broker forgot (row ${row?.status ?? "none"} ${row?.account ?? ""}, last answer ${u.last})`);
    }
  }

  #history(u: UserModel, account: number): { dropped: number; reuses: number } {
    if (u.provider === "github") {
      const h = this.#world.github.history(APPS_STANDARD_CLIENT, account);
      return { dropped: h.droppedRotations, reuses: h.spentTokenReuses };
    }
    const h = this.#world.gitlab.history(account);
    return { dropped: h.lostRotations, reuses: h.rotatedReuses };
  }

  #live(u: UserModel, account: number): string[] {
    return u.provider === "github" ? this.#world.github.liveRefreshTokens(APPS_STANDARD_CLIENT, account) : this.#world.gitlab.liveRefreshTokens(GITLAB_CLIENT, account);
  }
}

const APPS_STANDARD_CLIENT = APPS.standard.clientId;
const GITLAB_CLIENT = GITLAB_APP.clientId;
