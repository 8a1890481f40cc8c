/** Webhook deliveries as GitHub POSTs them, for the GitHub emulator's modules. */

/** A signed delivery: the event, its id, `X-Hub-Signature-256` and the body. */
export interface SignedDelivery {
  event: string;
  deliveryId: string;
  /** `X-Hub-Signature-256`. */
  signature: string;
  body: string;
}

/** POSTs a delivery to `url` with GitHub's headers; the receiver's response. */
export function postWebhook(fetch: (request: Request) => Promise<Response>, url: string, delivery: SignedDelivery): Promise<Response> {
  return fetch(
    new Request(url, {
      method: "POST",
      headers: {
        "content-type": "application/json",
        "x-github-event": delivery.event,
        "x-github-delivery": delivery.deliveryId,
        "x-hub-signature-256": delivery.signature,
        "user-agent": "GitHub-Hookshot/emulator",
      },
      body: delivery.body,
    }),
  );
}
