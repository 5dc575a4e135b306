// The README's main job, scripts/dev.ts, as a newcomer meets it: --help, then a start whose
// terminal shows one progress line and the banner (last, ending with Ctrl-C), a log file with
// nothing at ERROR or WARN and no requests the script made itself, the banner's commands run
// as printed (the /configure creates a role and a database), and Ctrl-C leaving one "stopped"
// line and no process behind.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { ROOT } from "../support/binary.ts";
import { processesUsing } from "../support/leftovers.ts";
import { cleanup, collectStream, trackProcess, waitFor, waitForLine } from "../support/proc.ts";

setDefaultTimeout(240_000);
afterAll(cleanup);

const DEV = join(ROOT, "scripts/dev.ts");

function dev(args: string[]) {
  const p = trackProcess(
    Bun.spawn([process.execPath, DEV, ...args], {
      cwd: ROOT,
      stdin: "ignore",
      stdout: "pipe",
      stderr: "pipe",
      env: { ...process.env, OTEL_SDK_DISABLED: undefined },
    }),
  );
  return { p, out: collectStream(p.stdout), err: collectStream(p.stderr) };
}

describe("scripts/dev.ts", () => {
  test("--help prints the options and starts nothing", async () => {
    const d = dev(["--help"]);
    expect(await d.p.exited).toBe(0);
    await d.out.done;
    expect(d.out.text).toStartWith("Usage: bash scripts/dev.sh [--mode Primary|Replica|Static]");
    expect(d.out.text).toContain("--mode MODE");
    expect(d.err.text).toBe("");
  });

  test("an unknown argument is a usage error that points at --help", async () => {
    const d = dev(["--bogus"]);
    expect(await d.p.exited).toBe(2);
    await d.err.done;
    expect(d.err.text).toBe(
      "error: unexpected argument '--bogus'; see 'bash scripts/dev.sh --help'\n",
    );
  });

  test("a quiet start, the banner's /configure creates a role, Ctrl-C stops it all", async () => {
    const d = dev([]);
    await waitForLine(d.out, /Ctrl-C/, 200_000);
    const banner = d.out.text;
    const lines = banner.trimEnd().split("\n");
    // The banner is last and its last line says how to stop.
    expect(lines[lines.length - 1]).toBe("Ctrl-C stops it.");
    // Before it, one progress line and nothing else.
    expect(d.err.lines()).toEqual([
      "starting a local Primary compute (the first run builds compute_ctl and a basebackup: about 15 s)…",
    ]);

    const logPath = banner.match(/^ {2}log {11}(\S+) {2}\(compute_ctl and Postgres\)$/m)?.[1];
    expect(logPath).toBeDefined();
    const pgdata = banner.match(/^ {2}PGDATA {8}(\S+)$/m)?.[1] ?? "";
    expect(existsSync(pgdata)).toBe(true);
    const log = readFileSync(logPath ?? "", "utf8");
    expect(log).toContain("Changing compute status from init to running");
    expect(log.split("\n").filter((l) => /\b(ERROR|WARN|FATAL|PANIC)\b/.test(l))).toEqual([]);
    // No access-log lines: the script did not poll the API.
    expect(log).not.toContain("request{");

    // The banner's commands, as printed: the token, /status, the /configure and the psql check.
    const start = lines.findIndex((l) => l.startsWith("  export TOKEN="));
    const end = lines.findIndex((l) => l.includes("current_database()"));
    expect(start).toBeGreaterThan(0);
    expect(end).toBeGreaterThan(start);
    const script = lines.slice(start, end + 1).join("\n");
    const sh = Bun.spawnSync(["bash", "-euo", "pipefail", "-c", script], {
      stdout: "pipe",
      stderr: "pipe",
      timeout: 60_000,
    });
    const shOut = sh.stdout.toString();
    expect({ code: sh.exitCode, err: sh.stderr.toString() }).toEqual({ code: 0, err: "" });
    // /status, then /configure, each answered with a running status; then psql as alice in shop.
    expect(shOut.match(/"status":"running"/g)?.length).toBe(2);
    expect(shOut).toMatch(/^\s*alice\s*\|\s*shop\s*$/m);
    const after = readFileSync(logPath ?? "", "utf8");
    expect(after.split("\n").filter((l) => /\b(ERROR|WARN|FATAL|PANIC)\b/.test(l))).toEqual([]);

    d.p.kill("SIGINT");
    expect(await d.p.exited).toBe(0);
    await Promise.all([d.out.done, d.err.done]);
    // Nothing more on stdout; one line on stderr.
    expect(d.out.text).toBe(banner);
    expect(d.err.lines().slice(1)).toEqual([`stopped (the log stays at ${logPath})`]);
    await waitFor(() => processesUsing(pgdata).length === 0, {
      what: "no process using the PGDATA",
      timeoutMs: 5_000,
    });
    expect(existsSync(pgdata)).toBe(false);
  });
});
