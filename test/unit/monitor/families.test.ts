// /metrics families and label names exactly as the reference exports them, written out by hand
// here. Labelled families appear once used; plain ones always.
import { expect, test } from "bun:test";
import { createMetrics } from "../../../src/metrics/registry.ts";

test("every family of the reference, with its type and label names, in its order, then ours", async () => {
  const m = createMetrics();
  m.up.set({ build_tag: "latest", status: "running" }, 1);
  m.installedExtensions.set(
    { extension_name: "plpgsql", version: "1.0", owned_by_superuser: "1" },
    1,
  );
  m.cplaneRequests.inc({ rpc: "GetConfig", http_status: "200 OK" });
  m.migrationFailed.inc({ migration_id: "4" });
  m.remoteExtRequests.inc({ http_status: "200 OK", filename: "anon.tar.zst" });
  m.attached.set({ pg_compute_id: "c", pg_instance_id: "i", tenant_id: "t", timeline_id: "l" }, 1);
  const families = (await m.registry.getMetricsAsJSON()).map((f) => ({
    name: f.name,
    type: String(f.type),
    labels: Object.keys(f.values[0]?.labels ?? {}),
  }));
  expect(families).toEqual([
    { name: "compute_ctl_up", type: "gauge", labels: ["build_tag", "status"] },
    {
      name: "compute_installed_extensions",
      type: "gauge",
      labels: ["extension_name", "version", "owned_by_superuser"],
    },
    { name: "compute_ctl_cplane_requests_total", type: "counter", labels: ["rpc", "http_status"] },
    {
      name: "compute_ctl_remote_ext_requests_total",
      type: "counter",
      labels: ["http_status", "filename"],
    },
    { name: "compute_ctl_db_migration_failed_total", type: "counter", labels: ["migration_id"] },
    { name: "compute_audit_log_dir_size", type: "gauge", labels: [] },
    { name: "compute_pg_current_downtime_ms", type: "gauge", labels: [] },
    { name: "compute_pg_downtime_ms_total", type: "counter", labels: [] },
    { name: "compute_ctl_lfc_prewarms_total", type: "counter", labels: [] },
    { name: "compute_ctl_lfc_prewarm_errors_total", type: "counter", labels: [] },
    { name: "compute_ctl_lfc_offloads_total", type: "counter", labels: [] },
    { name: "compute_ctl_lfc_offload_errors_total", type: "counter", labels: [] },
    { name: "pg_cctl_pagestream_request_errors_total", type: "counter", labels: [] },
    { name: "pg_cctl_configure_statement_timeout_errors_total", type: "counter", labels: [] },
    {
      name: "pg_cctl_attached",
      type: "gauge",
      labels: ["pg_compute_id", "pg_instance_id", "tenant_id", "timeline_id"],
    },
    { name: "compute_ctl_vm_monitor_connected", type: "gauge", labels: [] },
    { name: "compute_ctl_vm_monitor_upscale_requests_total", type: "counter", labels: [] },
    { name: "compute_ctl_vm_monitor_memory_threshold_bytes", type: "gauge", labels: [] },
    { name: "compute_ctl_vm_monitor_file_cache_size_bytes", type: "gauge", labels: [] },
  ]);
});

test("HELP texts the reference gives", async () => {
  const m = createMetrics();
  const text = await m.registry.metrics();
  expect(text).toContain("# HELP compute_ctl_up Whether compute_ctl is running\n");
  expect(text).toContain(
    "# HELP compute_audit_log_dir_size Size of audit log directory in bytes\n",
  );
  expect(text).toContain("# HELP pg_cctl_attached Compute node attached status (1 if attached)\n");
});
