/**
 * The platform's end of `EVENTS_URL`, for tests: records every delivery (body, signature,
 * arrival) and fails on demand (5xx, hangs), like a real receiver having a bad day.
 * Control routes under `/_control/`.
 */

export interface Delivery {
  body: string;
  signature: string | null;
  receivedAt: number;
}

export class EventReceiver {
  readonly deliveries: Delivery[] = [];
  /** Every POST that reached the receiver, answered or failed: how often the broker tried. */
  attempts = 0;
  #fault: { kind: "status_5xx" | "hang"; count: number } | null = null;
  #hangs = new Set<() => void>();

  reset(): void {
    this.deliveries.length = 0;
    this.attempts = 0;
    this.#fault = null;
    for (const release of this.#hangs) release();
  }

  async fetch(request: Request): Promise<Response> {
    const url = new URL(request.url);
    if (url.pathname.startsWith("/_control/")) return this.#control(request, url.pathname.slice("/_control/".length));
    if (request.method !== "POST") return new Response("method not allowed", { status: 405 });
    const body = await request.text();
    this.attempts++;
    const fault = this.#fault;
    if (fault) {
      if (fault.count !== -1 && --fault.count <= 0) this.#fault = null;
      if (fault.kind === "status_5xx") return new Response("unavailable", { status: 503 });
      // Never answers (until reset): the broker's timeout must give up.
      return new Promise((resolve) => {
        const release = () => {
          this.#hangs.delete(release);
          resolve(new Response("gateway timeout", { status: 504 }));
        };
        this.#hangs.add(release);
        setTimeout(release, 5000);
      });
    }
    this.deliveries.push({ body, signature: request.headers.get("x-broker-signature-256"), receivedAt: Date.now() });
    return new Response(null, { status: 204 });
  }

  async #control(request: Request, action: string): Promise<Response> {
    switch (`${request.method} ${action}`) {
      case "POST reset":
        this.reset();
        return Response.json({ ok: true });
      case "GET deliveries":
        return Response.json({ deliveries: this.deliveries, attempts: this.attempts });
      case "POST fault": {
        const body = (await request.json()) as { kind: "status_5xx" | "hang"; count?: number };
        this.#fault = { kind: body.kind, count: body.count ?? 1 };
        return Response.json({ ok: true });
      }
      case "DELETE fault":
        this.#fault = null;
        for (const release of this.#hangs) release();
        return Response.json({ ok: true });
      default:
        return new Response("no such control route", { status: 404 });
    }
  }
}
