// The basebackup runs in a child process of the compiled compute_ctl (the same executable, with
// COMPUTE_CTL_INTERNAL_ROLE=basebackup). Checked here through the binary: the child exists while
// the basebackup streams, its command line and environment carry no storage token, it is gone
// once the start is done, and a SIGKILL of compute_ctl mid-basebackup takes it down within a few
// seconds (the parent-death signal and the EOF on its stdin).
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readdirSync, readFileSync } from "node:fs";
import { cleanup, waitFor } from "../support/proc.ts";
import {
  expectNothingLeft,
  type Started,
  start,
  statusOf,
  waitStatus,
} from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

const TOKEN = "storage-token-7f3c1e9a-never-in-argv";

function readProc(pid: number, file: string): string | null {
  try {
    return readFileSync(`/proc/${pid}/${file}`, "utf8");
  } catch {
    return null;
  }
}

function ppidOf(pid: number): number | null {
  const stat = readProc(pid, "stat");
  if (stat === null) return null;
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return fields[0] === "Z" ? null : Number(fields[1]);
}

/** Live children of `parent` that are basebackup children. */
function basebackupChildren(parent: number): number[] {
  const out: number[] = [];
  for (const name of readdirSync("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    const pid = Number(name);
    if (ppidOf(pid) !== parent) continue;
    const environ = readProc(pid, "environ") ?? "";
    if (environ.split("\0").includes("COMPUTE_CTL_INTERNAL_ROLE=basebackup")) out.push(pid);
  }
  return out;
}

const alive = (pid: number) => ppidOf(pid) !== null;

/** A start whose basebackup streams slowly (64 KiB every 100 ms), with a storage token. */
async function slowStart(): Promise<{ s: Started; child: number }> {
  const s = await start({
    mode: "Primary",
    safekeepers: "agree",
    token: TOKEN,
    pageserverFaults: { chunkSize: 64 << 10, chunkDelayMs: 100 },
    env: { RUST_LOG: "debug" },
  });
  const child = await waitFor(() => basebackupChildren(s.compute.proc.pid)[0], {
    what: "the basebackup child",
    timeoutMs: 30_000,
    intervalMs: 10,
  });
  return { s, child };
}

describe("the basebackup child process", () => {
  test("carries no secret in argv or env, and is gone once the start is done", async () => {
    const { s, child } = await slowStart();
    const cmdline = readProc(child, "cmdline") ?? "";
    const environ = readProc(child, "environ") ?? "";
    expect(cmdline.length).toBeGreaterThan(0);
    expect(cmdline).not.toContain(TOKEN);
    expect(environ).not.toContain(TOKEN);
    // Nothing but the executable: no argument reaches the child.
    expect(cmdline.split("\0").filter((a) => a !== "")).toHaveLength(1);
    const st = await waitStatus(s, "running", 60_000);
    expect(st.status).toBe("running");
    expect(alive(child)).toBe(false);
    expect(basebackupChildren(s.compute.proc.pid)).toEqual([]);
    // The pageserver saw the token (as the password), and the start's metrics are compute_ctl's.
    expect(s.stack.pageserver.rejections).toEqual([]);
    const metrics = (await (await s.compute.get("/metrics.json", s.token)).json()) as Record<
      string,
      number
    >;
    expect(metrics.basebackup_bytes).toBeGreaterThan(0);
    expect(metrics.basebackup_ms).toBeGreaterThan(0);
    expect(s.compute.stderr.text).toContain("DEBUG start phase basebackup_first_byte");
    expect(s.compute.stderr.text).toContain("INFO Got storage auth token from spec file");
    expect((await statusOf(s)).status).toBe("running");
  });

  test("a SIGKILL of compute_ctl mid-basebackup: the child is gone within 5 s", async () => {
    const { s, child } = await slowStart();
    await waitFor(() => s.compute.stderr.text.includes("start phase basebackup_first_byte"), {
      what: "the basebackup streaming",
      timeoutMs: 30_000,
      intervalMs: 10,
    });
    expect(alive(child)).toBe(true);
    process.kill(s.compute.proc.pid, "SIGKILL");
    const killedAt = performance.now();
    await waitFor(() => !alive(child), {
      what: `the basebackup child ${child} gone`,
      timeoutMs: 5_000,
      intervalMs: 10,
    });
    console.log(
      `basebackup child gone ${Math.round(performance.now() - killedAt)} ms after the kill`,
    );
    await s.compute.exited;
    await expectNothingLeft(s);
    await s.stack.stop();
  });

  test("a SIGTERM mid-basebackup: compute_ctl stops the child, waits for it, exits 1", async () => {
    const { s, child } = await slowStart();
    await waitFor(() => s.compute.stderr.text.includes("start phase basebackup_first_byte"), {
      what: "the basebackup streaming",
      timeoutMs: 30_000,
      intervalMs: 10,
    });
    process.kill(s.compute.proc.pid, "SIGTERM");
    expect(await s.compute.exited).toBe(1);
    expect(alive(child)).toBe(false);
    await expectNothingLeft(s);
    await s.stack.stop();
  });
});
