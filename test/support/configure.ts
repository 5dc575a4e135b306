// POST /configure on a started compute with a new spec, as the control plane sends it.
import { type Json, jsonOf } from "./compute.ts";
import type { Started } from "./started.ts";

export async function configure(s: Started, spec: unknown): Promise<{ code: number; body: Json }> {
  const r = await s.compute.post("/configure", s.token, {
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ spec, compute_ctl_config: { jwks: { keys: [] } } }),
  });
  return { code: r.status, body: await jsonOf(r) };
}
