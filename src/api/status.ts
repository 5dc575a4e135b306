// The compute statuses: snake_case on the wire (/status), kebab-case ("Display") in logs,
// metric labels and 412 texts, as the reference spells them.

export const COMPUTE_STATUSES = [
  "empty",
  "configuration_pending",
  "init",
  "running",
  "configuration",
  "failed",
  "termination_pending_fast",
  "termination_pending_immediate",
  "terminated",
  "refresh_configuration_pending",
  "refresh_configuration",
] as const;

export type ComputeStatus = (typeof COMPUTE_STATUSES)[number];

/** The Display form: `termination_pending_fast` → `termination-pending-fast`. */
export function displayStatus(status: ComputeStatus): string {
  return status.replaceAll("_", "-");
}
