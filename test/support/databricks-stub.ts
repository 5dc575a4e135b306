// A SQL-only stand-in for Databricks' `databricks_auth` extension, so lakebase's
// HandleDatabricksAuthExtension phase runs on vanilla Postgres 15. Installed like the neon stub
// (see neon-stub.ts): as root, into the server's extension directory, left in place.
import { existsSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { StubResult } from "./neon-stub.ts";
import { PG_BINDIR } from "./pg.ts";

const CONTROL = `# compute_ctl test stub
comment = 'stand-in for databricks_auth in compute_ctl tests'
default_version = '1.0'
relocatable = true
`;

const SCRIPT = `-- compute_ctl test stub of databricks_auth 1.0
CREATE TABLE databricks_auth_metrics (name text PRIMARY KEY, value int8 NOT NULL DEFAULT 0);
`;

export function installDatabricksAuthStub(): StubResult {
  const r = Bun.spawnSync([join(PG_BINDIR, "pg_config"), "--sharedir"], { stdout: "pipe" });
  const sharedir = r.success ? r.stdout.toString().trim() : "/usr/share/postgresql/15";
  const dir = join(sharedir, "extension");
  const control = join(dir, "databricks_auth.control");
  if (existsSync(control)) return { installed: true };
  if (process.getuid?.() !== 0) {
    return { installed: false, reason: `not root: cannot install databricks_auth into ${dir}` };
  }
  const put = (path: string, text: string) => {
    writeFileSync(`${path}.${process.pid}.tmp`, text);
    renameSync(`${path}.${process.pid}.tmp`, path);
  };
  put(join(dir, "databricks_auth--1.0.sql"), SCRIPT);
  put(control, CONTROL);
  return { installed: true };
}
