// POST /check_writability: prove the timeline takes writes.
import { Elysia } from "elysia";
import type { ComputeState } from "../../compute/state.ts";
import { checkWritability } from "../../postgres/writability.ts";
import { HttpError, jsonResponse, requireRunning } from "../app.ts";

export const writabilityRoutes = (opts: { connstr: URL; state: ComputeState }) =>
  new Elysia({ name: "routes:writability" }).post("/check_writability", async () => {
    requireRunning(opts.state);
    try {
      await checkWritability(opts.connstr);
    } catch (err) {
      throw new HttpError(500, err instanceof Error ? err.message : String(err));
    }
    return jsonResponse(200, true);
  });
