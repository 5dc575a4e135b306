// The two HTTP servers: external (control plane; JWT except /metrics) and internal (the neon
// extension and local_proxy; no auth). Both bind [::].
import { type AnyElysia, Elysia } from "elysia";
import type { JwkSet } from "../api/config.ts";
import type { Lifecycle } from "../compute/lifecycle.ts";
import type { ComputeState } from "../compute/state.ts";
import type { Params } from "../config/params.ts";
import type { RemoteExtensions } from "../extensions/remote.ts";
import type { LfcManager } from "../lfc/manager.ts";
import { log } from "../log.ts";
import type { Metrics } from "../metrics/registry.ts";
import { knobs } from "../testing-knobs.ts";
import { authGuard, createHttpApp, type HttpServer, listen } from "./app.ts";
import { createAuthorizer } from "./auth.ts";
import { buildOpenApiDocument, documentOrder, type RouteDoc, registeredRoutes } from "./openapi.ts";
import { autoscalingMetricsRoutes } from "./routes/autoscaling-metrics.ts";
import { catalogRoutes } from "./routes/catalog.ts";
import { configureRoutes } from "./routes/configure.ts";
import { extensionServerRoutes } from "./routes/extension-server.ts";
import { extensionsRoutes } from "./routes/extensions.ts";
import { failpointsRoutes } from "./routes/failpoints.ts";
import { grantsRoutes } from "./routes/grants.ts";
import { insightsRoutes } from "./routes/insights.ts";
import { livenessProbeRoutes, refreshConfigurationRoutes } from "./routes/lakebase.ts";
import { lfcRoutes } from "./routes/lfc.ts";
import { memoryProbeRoutes } from "./routes/memory-probe.ts";
import { metricsJsonRoutes, prometheusRoutes } from "./routes/metrics.ts";
import { openapiRoutes } from "./routes/openapi.ts";
import { promoteRoutes } from "./routes/promote.ts";
import { statusRoutes } from "./routes/status.ts";
import { terminateRoutes } from "./routes/terminate.ts";
import { writabilityRoutes } from "./routes/writability.ts";

export interface ServerContext {
  params: Params;
  state: ComputeState;
  metrics: Metrics;
  lifecycle: Lifecycle;
  lfc: LfcManager;
  remote: RemoteExtensions;
  /** pg_dump next to --pgbin, for /database_schema. */
  pgDump: string;
  /** pg_isready next to --pgbin, for /hadron_liveness_probe. */
  pgIsready: string;
  /** null: the configuration had no JWKS, and every authenticated route answers 401. */
  jwks: JwkSet | null;
  /** INSTANCE_ID is set: the external server skips JWT checks (Hadron). */
  instanceIdBypass: boolean;
}

export async function externalApp(ctx: ServerContext) {
  const connstr = ctx.params.connstr;
  const authorize = await createAuthorizer({
    jwks: ctx.jwks,
    computeId: ctx.params.computeId,
    bypass: ctx.instanceIdBypass,
  });
  const authenticated = new Elysia({ name: "external:authenticated" })
    .use(authGuard(authorize))
    // Registration order is the OpenAPI document's order.
    .use(statusRoutes(ctx.state))
    .use(metricsJsonRoutes(ctx.state))
    .use(insightsRoutes({ connstr, state: ctx.state }))
    .use(catalogRoutes({ connstr, pgDump: ctx.pgDump }))
    .use(writabilityRoutes({ connstr, state: ctx.state }))
    .use(configureRoutes(ctx.state, ctx.lifecycle, ctx.params.privilegedRoleName))
    .use(terminateRoutes(ctx.lifecycle))
    .use(livenessProbeRoutes({ pgIsready: ctx.pgIsready, connstr }))
    .use(lfcRoutes(ctx.lfc))
    .use(promoteRoutes({ connstr, lfc: ctx.lfc, lifecycle: ctx.lifecycle }));
  return createHttpApp({ name: "external", logger: log })
    .use(prometheusRoutes(ctx.metrics))
    .use(openapiRoutes(() => openApiDocument(ctx), "external"))
    .use(autoscalingMetricsRoutes({ pgdata: ctx.params.pgdata }))
    .use(authenticated);
}

export function internalApp(ctx: ServerContext) {
  const connstr = ctx.params.connstr;
  return createHttpApp({ name: "internal", logger: log })
    .use(openapiRoutes(() => openApiDocument(ctx), "internal"))
    .use(grantsRoutes({ connstr, state: ctx.state }))
    .use(extensionsRoutes({ connstr, state: ctx.state }))
    .use(extensionServerRoutes({ remote: ctx.remote, pspec: () => ctx.lifecycle.spec }))
    .use(refreshConfigurationRoutes({ lifecycle: ctx.lifecycle, metrics: ctx.metrics }))
    .use(failpointsRoutes())
    .use(memoryProbeRoutes(knobs.memoryProbe));
}

let documented: Promise<{ routes: RouteDoc[]; document: object }> | undefined;
/** The apps startHttpServers serves: the document describes them when it is first asked for. */
let served: { external: AnyElysia; internal: AnyElysia } | undefined;

/**
 * Every route both servers register, with its description, in the document's order, and the
 * OpenAPI document generated from them. Built once per process (on the first request of
 * /openapi.json) from apps wired with `ctx`; registering a route reads nothing from `ctx`.
 */
export function documentedRoutes(
  ctx: ServerContext,
): Promise<{ routes: RouteDoc[]; document: object }> {
  const apps = served;
  documented ??= (async () => {
    if (apps) return describe(apps.external, apps.internal);
    // Without keys: the authorizer is built again here, and a bad key would be reported twice.
    const docCtx: ServerContext = { ...ctx, jwks: null, instanceIdBypass: false };
    return describe(await externalApp(docCtx), internalApp(docCtx));
  })();
  return documented;
}

function describe(external: AnyElysia, internal: AnyElysia) {
  const routes = documentOrder(
    registeredRoutes(external, "external"),
    registeredRoutes(internal, "internal"),
  );
  return { routes, document: buildOpenApiDocument(routes) };
}

/**
 * The API described by the same TypeBox schemas that validate it; served on both servers
 * without a token (it holds nothing secret, and reading a schema should not need one).
 */
export async function openApiDocument(ctx: ServerContext): Promise<object> {
  return (await documentedRoutes(ctx)).document;
}

/** Starts the external server, then the internal one (the reference's order). */
export async function startHttpServers(
  ctx: ServerContext,
): Promise<{ external: HttpServer; internal: HttpServer }> {
  const externalRoutes = await externalApp(ctx);
  const internalRoutes = internalApp(ctx);
  // The served apps describe themselves: no second wiring on the first GET /openapi.json. The
  // document is built then, not here: it is off the start path, and a compute that is never asked
  // for it does not hold it.
  served = { external: externalRoutes, internal: internalRoutes };
  const external = await listen(externalRoutes, ctx.params.externalHttpPort);
  try {
    const internal = await listen(internalRoutes, ctx.params.internalHttpPort);
    return { external, internal };
  } catch (err) {
    await external.stop();
    throw err;
  }
}
