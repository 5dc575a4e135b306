// The tracing settings from the environment variables OpenTelemetry defines. The variables are
// read in testing-knobs.ts; this turns them into a TracingConfig.
import type { TracingConfig } from "./index.ts";

export interface TracingEnv {
  OTEL_SDK_DISABLED?: string;
  OTEL_EXPORTER_OTLP_ENDPOINT?: string;
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?: string;
  OTEL_BSP_SCHEDULE_DELAY?: string;
  TRACEPARENT?: string;
  TRACESTATE?: string;
}

/** OpenTelemetry's default OTLP/HTTP endpoint. */
export const DEFAULT_OTLP_ENDPOINT = "http://localhost:4318";

/**
 * The traces URL: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT as given, else OTEL_EXPORTER_OTLP_ENDPOINT
 * with `v1/traces` appended, else the default endpoint's. Throws on a value that is not a URL.
 */
export function tracesUrl(env: TracingEnv): string {
  const specific = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim();
  if (specific) return new URL(specific).toString();
  const base = env.OTEL_EXPORTER_OTLP_ENDPOINT?.trim() || DEFAULT_OTLP_ENDPOINT;
  new URL(base);
  return new URL(`${base.endsWith("/") ? base : `${base}/`}v1/traces`).toString();
}

/**
 * Tracing is on unless OTEL_SDK_DISABLED is `true` (any case, as the OpenTelemetry
 * specification reads booleans). A malformed endpoint turns it off with the reason, so a bad
 * variable never stops the compute.
 */
export function tracingConfigFromEnv(
  env: TracingEnv,
  serviceName: string,
): { config: TracingConfig; problem?: string } {
  const disabled = env.OTEL_SDK_DISABLED?.trim().toLowerCase() === "true";
  const config: TracingConfig = { enabled: !disabled, serviceName, tracesUrl: "" };
  if (disabled) return { config };
  try {
    config.tracesUrl = tracesUrl(env);
  } catch {
    const which = env.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT?.trim()
      ? "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"
      : "OTEL_EXPORTER_OTLP_ENDPOINT";
    config.enabled = false;
    return { config, problem: `tracing is off: ${which} is not a URL` };
  }
  const delay = env.OTEL_BSP_SCHEDULE_DELAY?.trim();
  if (delay && /^\d+$/.test(delay)) config.scheduleDelayMs = Number(delay);
  if (env.TRACEPARENT !== undefined) config.traceparent = env.TRACEPARENT;
  if (env.TRACESTATE !== undefined) config.tracestate = env.TRACESTATE;
  return { config };
}
