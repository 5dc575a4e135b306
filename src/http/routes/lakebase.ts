// The Hadron routes: POST /refresh_configuration (internal: Postgres calls it when its page
// requests fail) and GET /hadron_liveness_probe (external: the container's liveness probe). Both
// exist in every mode, as in the reference's routers.

import { Elysia } from "elysia";
import type { Lifecycle } from "../../compute/lifecycle.ts";
import { formatOneLine } from "../../errors.ts";
import type { Metrics } from "../../metrics/registry.ts";
import { pgIsready } from "../../postgres/isready.ts";
import { HttpError, jsonResponse } from "../app.ts";
import { empty, error, operation } from "../route-doc.ts";

/**
 * Counts the call in pg_cctl_pagestream_request_errors_total and asks for a configuration refresh;
 * answers 200 with no body without waiting for it.
 */
const GET_HADRON_LIVENESS_PROBE_DOC = operation({
  operationId: "hadronLivenessProbe",
  summary: "Whether Postgres accepts connections (`pg_isready -p <connstr port>`).",
  responses: {
    200: {
      description: 'Postgres accepts connections: the JSON string `"ok"`.',
      content: { type: "application/json", schema: { type: "string", enum: ["ok"] } },
    },
    500: error("pg_isready failed, or the connstr names no port."),
  },
});

const POST_REFRESH_CONFIGURATION_DOC = operation({
  operationId: "refreshConfiguration",
  summary:
    "Ask for the configuration to be read again (called by Postgres on page request errors).",
  description:
    "Counts the call in pg_cctl_pagestream_request_errors_total. From running, failed or refresh_configuration_pending the compute becomes refresh_configuration_pending and re-reads its configuration; in init nothing changes. Does not wait for the refresh.",
  responses: {
    200: empty("Accepted (empty body)."),
    500: error(
      "The compute is in a status that allows no refresh (`Cannot refresh compute configuration in state <Status>`).",
    ),
  },
});

export const refreshConfigurationRoutes = (ctx: {
  lifecycle: Pick<Lifecycle, "requestRefresh">;
  metrics: Pick<Metrics, "pagestreamRequestErrors">;
}) =>
  new Elysia({ name: "routes:refresh_configuration" }).post(
    "/refresh_configuration",
    () => {
      ctx.metrics.pagestreamRequestErrors.inc();
      const r = ctx.lifecycle.requestRefresh();
      if (!r.ok) throw new HttpError(500, r.error);
      return new Response(null, { status: 200 });
    },
    { parse: "none", detail: POST_REFRESH_CONFIGURATION_DOC },
  );

/** `<dirname(pgbin)>/pg_isready -p <connstr port>`: 200 `"ok"`, or 500 with why. */
export const livenessProbeRoutes = (ctx: { pgIsready: string; connstr: URL }) =>
  new Elysia({ name: "routes:hadron_liveness_probe" }).get(
    "/hadron_liveness_probe",
    async () => {
      if (ctx.connstr.port === "") {
        throw new HttpError(500, "Failed to get the port from the connection string");
      }
      try {
        await pgIsready(ctx.pgIsready, Number(ctx.connstr.port));
      } catch (err) {
        throw new HttpError(500, formatOneLine(err));
      }
      return jsonResponse(200, "ok");
    },
    { detail: GET_HADRON_LIVENESS_PROBE_DOC },
  );
