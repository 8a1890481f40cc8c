/**
 * Optional settings, declared by hand: `wrangler types` writes only the secrets listed in
 * `[secrets] required` (worker-configuration.d.ts), and these are deliberately not required.
 */
declare namespace Cloudflare {
  interface Env {
    /** Enables `/v1` on the public URL behind this bearer token; unset, `/v1` there is 404. */
    INTERNAL_API_TOKEN?: string;
  }
}

interface Env {
  INTERNAL_API_TOKEN?: string;
}
