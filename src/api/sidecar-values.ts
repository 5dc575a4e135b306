// Spec values that compute_ctl writes into its neighbours' configuration files: a pgbouncer ini
// line per pgbouncer_settings entry, and quoted strings in the rendered rsyslog files. A value
// that would add a line is refused before anything is written (quotes and backslashes in rsyslog
// strings are escaped by the renderer).
import type { ComputeAudit, ComputeSpec } from "./spec.ts";

/** A key pgbouncer reads back as the same single key: no separators, blanks or brackets. */
const INI_KEY = /^[^\s=;#[\]]+$/;
const CONTROL = /[\u0000-\u001f\u007f]/;
/** Inside an rsyslog "..." string no control character can be written (quotes are escaped). */
const RSYSLOG_UNSAFE = /[\u0000-\u001f\u007f]/;

/** Why `key=value` cannot be written as one pgbouncer ini line, or null when it can. */
export function iniSettingProblem(key: string, value: string): string | null {
  if (!INI_KEY.test(key)) return `invalid pgbouncer setting name ${JSON.stringify(key)}`;
  if (CONTROL.test(value)) {
    return `pgbouncer setting ${key} has a control character (such as a newline) in its value`;
  }
  return null;
}

/** Why `value` cannot go inside a quoted string of an rsyslog file, or null when it can. */
export function rsyslogValueProblem(what: string, value: string): string | null {
  return RSYSLOG_UNSAFE.test(value)
    ? `${what} has a control character (such as a newline), which the rsyslog configuration cannot hold`
    : null;
}

/** The audit levels whose logs rsyslog ships (their ids go into the rendered file). */
export const AUDIT_EXPORT_LEVELS: readonly ComputeAudit[] = ["Hipaa", "Extended", "Full"];

/** The first problem with a sidecar value of `spec`, or null. */
export function sidecarValueProblem(spec: ComputeSpec): string | null {
  for (const [k, v] of Object.entries(spec.pgbouncer_settings ?? {})) {
    const p = iniSettingProblem(k, v);
    if (p) return p;
  }
  if (spec.logs_export_host != null) {
    const p = rsyslogValueProblem("logs_export_host", spec.logs_export_host);
    if (p) return p;
  }
  if (AUDIT_EXPORT_LEVELS.includes(spec.audit_log_level)) {
    for (const [what, v] of [
      ["endpoint_id", spec.endpoint_id],
      ["project_id", spec.project_id],
    ] as const) {
      const p = v == null ? null : rsyslogValueProblem(what, v);
      if (p) return p;
    }
  }
  return null;
}
