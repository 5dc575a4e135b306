// The Prometheus registry of compute_ctl. Families are registered in the reference's order;
// labelled families appear once they have a child, plain ones always (prom-client does both).
// The registry and the two metric types, not the package's index: the index also loads the
// push gateway client (node:http), the cluster aggregator (node:cluster), the default process
// metrics and the summary's digest, ~7 MiB of resident memory compute_ctl never uses.
import Counter from "prom-client/lib/counter";
import Gauge from "prom-client/lib/gauge";
import Registry from "prom-client/lib/registry";

export function createMetrics() {
  const registry = new Registry();
  const r = [registry];
  return {
    registry,
    up: new Gauge({
      name: "compute_ctl_up",
      help: "Whether compute_ctl is running",
      labelNames: ["build_tag", "status"] as const,
      registers: r,
    }),
    installedExtensions: new Gauge({
      name: "compute_installed_extensions",
      help: "Number of databases where the version of extension is installed",
      labelNames: ["extension_name", "version", "owned_by_superuser"] as const,
      registers: r,
    }),
    cplaneRequests: new Counter({
      name: "compute_ctl_cplane_requests_total",
      help: "Total number of control plane requests made by compute_ctl by status",
      labelNames: ["rpc", "http_status"] as const,
      registers: r,
    }),
    remoteExtRequests: new Counter({
      name: "compute_ctl_remote_ext_requests_total",
      help: "Total number of requests made by compute_ctl to download extensions from S3 proxy by status",
      labelNames: ["http_status", "filename"] as const,
      registers: r,
    }),
    migrationFailed: new Counter({
      name: "compute_ctl_db_migration_failed_total",
      help: "Total number of failed database migrations",
      labelNames: ["migration_id"] as const,
      registers: r,
    }),
    auditLogDirSize: new Gauge({
      name: "compute_audit_log_dir_size",
      help: "Size of audit log directory in bytes",
      registers: r,
    }),
    pgCurrentDowntimeMs: new Gauge({
      name: "compute_pg_current_downtime_ms",
      help: "Non-cumulative duration of Postgres downtime in ms; resets after successful check",
      registers: r,
    }),
    pgDowntimeMsTotal: new Counter({
      name: "compute_pg_downtime_ms_total",
      help: "Cumulative duration of Postgres downtime in ms",
      registers: r,
    }),
    lfcPrewarms: new Counter({
      name: "compute_ctl_lfc_prewarms_total",
      help: "Total number of LFC prewarms requested by compute_ctl or autoprewarm option",
      registers: r,
    }),
    lfcPrewarmErrors: new Counter({
      name: "compute_ctl_lfc_prewarm_errors_total",
      help: "Total number of LFC prewarm errors",
      registers: r,
    }),
    lfcOffloads: new Counter({
      name: "compute_ctl_lfc_offloads_total",
      help: "Total number of LFC offloads requested by compute_ctl or lfc_offload_period_seconds option",
      registers: r,
    }),
    lfcOffloadErrors: new Counter({
      name: "compute_ctl_lfc_offload_errors_total",
      help: "Total number of LFC offload errors",
      registers: r,
    }),
    // The reference's "Hadron" metrics, always exported. The first counts /refresh_configuration
    // calls (Postgres makes them when its page requests fail); the second counts apply statements
    // cancelled by a statement timeout, in lakebase mode only.
    pagestreamRequestErrors: new Counter({
      name: "pg_cctl_pagestream_request_errors_total",
      help: "Number of PageStream request errors reported by the postgres process",
      registers: r,
    }),
    configureStatementTimeoutErrors: new Counter({
      name: "pg_cctl_configure_statement_timeout_errors_total",
      help: "Number of compute configuration errors due to Postgres statement timeouts.",
      registers: r,
    }),
    // Lakebase mode with INSTANCE_ID only: one series once a spec is known.
    attached: new Gauge({
      name: "pg_cctl_attached",
      help: "Compute node attached status (1 if attached)",
      labelNames: ["pg_compute_id", "pg_instance_id", "tenant_id", "timeline_id"] as const,
      registers: r,
    }),
    // Ours, beyond the reference: the vm-monitor (autoscaling VMs only; 0 elsewhere).
    vmMonitorConnected: new Gauge({
      name: "compute_ctl_vm_monitor_connected",
      help: "1 while an autoscaler-agent connection to the vm-monitor is set up, else 0",
      registers: r,
    }),
    vmMonitorUpscaleRequests: new Counter({
      name: "compute_ctl_vm_monitor_upscale_requests_total",
      help: "UpscaleRequest messages the vm-monitor sent to the autoscaler-agent",
      registers: r,
    }),
    vmMonitorMemoryThreshold: new Gauge({
      name: "compute_ctl_vm_monitor_memory_threshold_bytes",
      help: "Memory usage above which the vm-monitor requests upscaling",
      registers: r,
    }),
    vmMonitorFileCacheSize: new Gauge({
      name: "compute_ctl_vm_monitor_file_cache_size_bytes",
      help: "File cache size the vm-monitor last set (after the neon.max_file_cache_size cap)",
      registers: r,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;

/** The `http` crate's Display of a status: `200 OK`, `503 Service Unavailable`. */
export function httpStatusLabel(code: number, reason?: string): string {
  return `${code} ${reason || STATUS_TEXT[code] || "<unknown status code>"}`;
}

const STATUS_TEXT: Record<number, string> = {
  200: "OK",
  201: "Created",
  202: "Accepted",
  204: "No Content",
  301: "Moved Permanently",
  302: "Found",
  304: "Not Modified",
  400: "Bad Request",
  401: "Unauthorized",
  403: "Forbidden",
  404: "Not Found",
  405: "Method Not Allowed",
  408: "Request Timeout",
  409: "Conflict",
  410: "Gone",
  418: "I'm a teapot",
  412: "Precondition Failed",
  413: "Payload Too Large",
  415: "Unsupported Media Type",
  422: "Unprocessable Entity",
  429: "Too Many Requests",
  500: "Internal Server Error",
  501: "Not Implemented",
  502: "Bad Gateway",
  503: "Service Unavailable",
  504: "Gateway Timeout",
};

/**
 * The Prometheus text exposition as the reference's encoder writes it: families without
 * samples (labelled families never used) are left out, and families follow each other with no
 * blank line in between.
 */
export async function exposition(registry: Registry): Promise<string> {
  let out = "";
  for (const family of await registry.getMetricsAsJSON()) {
    if (family.values.length === 0) continue;
    const block = await registry.getSingleMetricAsString(family.name);
    out += block.endsWith("\n") ? block : `${block}\n`;
  }
  return out;
}
