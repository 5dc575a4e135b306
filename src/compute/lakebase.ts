// What lakebase (Hadron) mode adds to a start: the Databricks environment Postgres gets, the
// TLS files and pg_hba/pg_ident includes in PGDATA, and the attached gauge. With lakebase mode off
// none of this runs.
import { chmod, copyFile, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import type { ParsedSpec } from "../api/parsed-spec.ts";
import type { DatabricksSettings } from "../api/spec.ts";
import { log } from "../log.ts";
import type { Metrics } from "../metrics/registry.ts";
import { lineInFile } from "../postgres/files.ts";

/**
 * DATABRICKS_ENDPOINT_ID and DATABRICKS_WORKSPACE_HOST for Postgres. The endpoint id is
 * INSTANCE_ID when set, else the part of the compute id before its first `/`
 * (`<endpoint uuid>/<index>`); the workspace host is empty without databricks_settings.
 */
export function databricksEnv(
  pspec: ParsedSpec,
  computeId: string,
  instanceId: string | null,
): Record<string, string> {
  const endpointId = instanceId ?? (computeId.split("/")[0] as string);
  return {
    DATABRICKS_ENDPOINT_ID: endpointId,
    DATABRICKS_WORKSPACE_HOST: pspec.spec.databricks_settings?.databricks_workspace_host ?? "",
  };
}

async function exists(path: string): Promise<boolean> {
  return stat(path).then(
    () => true,
    () => false,
  );
}

/**
 * After the basebackup: the certificate and key are copied into PGDATA under their own file
 * names (a file already there is kept), the key made 0600 as Postgres requires; then pg_hba.conf
 * and pg_ident.conf include the Databricks files. These includes come before the md5 line that
 * every mode appends, because Postgres uses the first matching pg_hba record.
 */
export async function prepareDatabricksPgdata(
  pgdata: string,
  settings: DatabricksSettings,
): Promise<void> {
  const tls = settings.pg_compute_tls_settings;
  for (const file of [tls.cert_file, tls.key_file]) {
    const dest = join(pgdata, basename(file));
    if (!(await exists(dest))) {
      try {
        await copyFile(file, dest);
      } catch (err) {
        throw new Error(`cannot copy the TLS file ${file} to ${dest}`, { cause: err });
      }
      log.info(`Copying tls file: ${file} to ${dest}`);
    }
    if (file === tls.key_file) {
      await chmod(dest, 0o600);
      log.info(`Setting permission on ${dest}.`);
    }
  }
  // The trailing "\n" inside the line is the reference's: the include is always appended.
  if (
    await lineInFile(
      join(pgdata, "pg_hba.conf"),
      `include_if_exists ${settings.databricks_pg_hba}\n`,
    )
  ) {
    log.info("updated pg_hba.conf to include databricks_pg_hba.conf");
  }
  log.info("checking pg_ident.conf");
  if (
    await lineInFile(
      join(pgdata, "pg_ident.conf"),
      `include_if_exists ${settings.databricks_pg_ident}\n`,
    )
  ) {
    log.info("updated pg_ident.conf to include databricks_pg_ident.conf");
  }
}

/** pg_cctl_attached: one series naming the compute, the instance and the spec's timeline. */
export function setAttached(
  metrics: Pick<Metrics, "attached">,
  ids: { computeId: string; instanceId: string },
  pspec: ParsedSpec,
): void {
  metrics.attached.reset();
  metrics.attached.set(
    {
      pg_compute_id: ids.computeId,
      pg_instance_id: ids.instanceId,
      tenant_id: pspec.tenantId,
      timeline_id: pspec.timelineId,
    },
    1,
  );
}

/** The Debug spelling of a status in the refresh error: `refresh_configuration` → `RefreshConfiguration`. */
export function debugStatusName(status: string): string {
  return status
    .split("_")
    .map((w) => w.charAt(0).toUpperCase() + w.slice(1))
    .join("");
}
