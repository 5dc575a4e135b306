// Lakebase's daily JSON log files: the line shape, the ids, the day's file and the pruning.
import { afterEach, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import {
  configureLogging,
  fileLogLine,
  formatGmtMillis,
  log,
  setLogIds,
  startFileLogs,
  stopFileLogs,
} from "../../src/log.ts";

afterEach(() => {
  stopFileLogs();
  setLogIds({ instanceId: "", computeId: "" });
  configureLogging({ level: "warn", sink: { write: (t) => process.stderr.write(t) } });
});

const AT = Date.UTC(2025, 6, 31, 23, 59, 59, 123);

test("one line in the shape of Postgres's JSON logs", () => {
  expect(formatGmtMillis(AT)).toBe("2025-07-31 23:59:59.123 GMT");
  expect(fileLogLine(AT, "INFO", 'say "hi"\nthere')).toBe(
    '{"timestamp": "2025-07-31 23:59:59.123 GMT", "error_severity": "INFO", "file_name": "compute_ctl", "backend_type": "compute_ctl_self", "pg_instance_id": "", "pg_compute_id": "", "message": "say \\"hi\\"\\nthere"}\n',
  );
  setLogIds({ instanceId: "inst", computeId: "comp" });
  expect(JSON.parse(fileLogLine(AT, "WARN", "m"))).toEqual({
    timestamp: "2025-07-31 23:59:59.123 GMT",
    error_severity: "WARN",
    file_name: "compute_ctl",
    backend_type: "compute_ctl_self",
    pg_instance_id: "inst",
    pg_compute_id: "comp",
    message: "m",
  });
});

test("lines go to pgcctl.<UTC day>, appended; a new day keeps one older file", () => {
  const dir = join(mkdtempSync(join(tmpdir(), "pgcctl-")), "logs");
  let now = AT;
  configureLogging({ level: "info", sink: { write: () => {} } });
  startFileLogs(dir, () => now);
  // Files from earlier days, as a restart loop leaves them.
  writeFileSync(join(dir, "pgcctl.2025-07-29"), "");
  writeFileSync(join(dir, "pgcctl.2025-07-30"), "");
  writeFileSync(join(dir, "unrelated.log"), "");
  log.info("first", { key: "v" });
  log.debug("not at info");
  expect(readdirSync(dir).sort()).toEqual([
    "pgcctl.2025-07-29",
    "pgcctl.2025-07-30",
    "pgcctl.2025-07-31",
    "unrelated.log",
  ]);
  const lines = readFileSync(join(dir, "pgcctl.2025-07-31"), "utf8").split("\n");
  expect(lines).toHaveLength(2);
  expect(JSON.parse(lines[0] as string).message).toBe("first key=v");

  now += 1000; // 2025-08-01
  log.warn("second");
  expect(readdirSync(dir).sort()).toEqual([
    "pgcctl.2025-07-31",
    "pgcctl.2025-08-01",
    "unrelated.log",
  ]);
  const next = JSON.parse(readFileSync(join(dir, "pgcctl.2025-08-01"), "utf8"));
  expect(next).toMatchObject({ error_severity: "WARN", message: "second" });
});
