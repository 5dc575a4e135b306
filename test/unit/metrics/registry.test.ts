import { expect, test } from "bun:test";
import { createMetrics, exposition, httpStatusLabel } from "../../../src/metrics/registry.ts";

test("exposition leaves out unused labelled families and has no blank lines", async () => {
  const m = createMetrics();
  m.up.set({ build_tag: "latest", status: "empty" }, 1);
  const text = await exposition(m.registry);
  expect(text).not.toContain("\n\n");
  expect(text).toContain('compute_ctl_up{build_tag="latest",status="empty"} 1\n');
  // Labelled and unused: absent, HELP and TYPE included.
  expect(text).not.toContain("compute_ctl_cplane_requests_total");
  expect(text).not.toContain("compute_installed_extensions");
  // Plain metrics are always there, starting at 0.
  for (const name of [
    "compute_pg_current_downtime_ms",
    "compute_pg_downtime_ms_total",
    "compute_ctl_lfc_prewarms_total",
    "compute_ctl_lfc_prewarm_errors_total",
    "compute_ctl_lfc_offloads_total",
    "compute_ctl_lfc_offload_errors_total",
  ]) {
    expect(text).toContain(`\n${name} 0\n`);
  }
  m.cplaneRequests.inc({ rpc: "GetConfig", http_status: "503 Service Unavailable" });
  expect(await exposition(m.registry)).toContain(
    '# TYPE compute_ctl_cplane_requests_total counter\ncompute_ctl_cplane_requests_total{rpc="GetConfig",http_status="503 Service Unavailable"} 1\n',
  );
});

test("the first family is compute_ctl_up, as the reference registers it first", async () => {
  const m = createMetrics();
  m.up.set({ build_tag: "latest", status: "running" }, 1);
  expect((await exposition(m.registry)).startsWith("# HELP compute_ctl_up ")).toBe(true);
});

test("status labels follow the http crate's Display", () => {
  expect(httpStatusLabel(200)).toBe("200 OK");
  expect(httpStatusLabel(503)).toBe("503 Service Unavailable");
  expect(httpStatusLabel(418)).toBe("418 I'm a teapot");
  expect(httpStatusLabel(599)).toBe("599 <unknown status code>");
});
