// The vm-monitor: lets the autoscaler-agent on an autoscaling VM resize the compute. It answers
// the agent's upscale notifications and downscale requests (resizing the file cache and moving its
// memory threshold) and asks for more memory while the cgroup's usage stays above the threshold.
export { type FileCacheConnOptions, parseConnstr } from "./connstr.ts";
export type { VmMonitorMetricsSink } from "./runner.ts";
export {
  DEFAULT_VM_MONITOR_ADDR,
  parseListenAddr,
  startVmMonitor,
  type VmMonitor,
  type VmMonitorOptions,
} from "./server.ts";
