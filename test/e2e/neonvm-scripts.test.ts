// --resize-swap-on-bind and --set-disk-quota-for-fs through the compiled binary: sudo and the
// NeonVM scripts are fakes under the host root that record their argv; both finish before
// Postgres starts, and the reference's failure rules hold.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile, stat } from "node:fs/promises";
import { join } from "node:path";
import { type FakeHost, makeFakeHost } from "../support/host.ts";
import { cleanup } from "../support/proc.ts";
import { start, terminate, waitStatus } from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

const SPEC = { swap_size_bytes: 1073741824, disk_quota_bytes: 10 * 1024 * 1024 * 1024 + 1000 };
const FLAGS = ["--resize-swap-on-bind", "--set-disk-quota-for-fs", "/var/db/postgres/compute"];

/**
 * A script that records "<name> <argv>" and, in a file of its own, the time it ended (ms) after
 * `sleep`; resize-swap deletes itself after success with --once, as the real one does.
 */
async function recordingScripts(host: FakeHost, opts: { swapExit?: number; sleep?: number } = {}) {
  const calls = host.path("/calls.log");
  const body = (name: string, exit: number, selfDelete: boolean) => `
sleep ${opts.sleep ?? 0}
echo "${name} $*" >> ${calls}
date +%s%3N > ${host.path(`/${name}.ended`)}
${selfDelete ? `[ "$1" = "--once" ] && [ ${exit} = 0 ] && rm -f "$0"` : ""}
exit ${exit}
`;
  await host.script("/neonvm/bin/resize-swap", body("resize-swap", opts.swapExit ?? 0, true));
  await host.script("/neonvm/bin/set-disk-quota", body("set-disk-quota", 0, false));
  return {
    endedMs: async (name: string) => Number(await readFile(host.path(`/${name}.ended`), "utf8")),
    calls: async () =>
      (await readFile(calls, "utf8").catch(() => "")).split("\n").filter((l) => l !== ""),
  };
}

describe("swap and disk quota", () => {
  test("with the flags and the spec fields: both scripts, exact argv, before Postgres starts", async () => {
    const host = await makeFakeHost();
    const rec = await recordingScripts(host, { sleep: 1 });
    const s = await start({ spec: SPEC, extraArgs: FLAGS, env: host.env });
    await waitStatus(s, "running");
    const calls = await rec.calls();
    expect(calls.sort()).toEqual([
      "resize-swap --once 1073741824",
      `set-disk-quota ${10 * 1024 * 1024} /var/db/postgres/compute`,
    ]);
    // postmaster.opts is written once, when the postmaster starts: after both scripts ended.
    const pgStarted = (await stat(join(s.stack.pgdata, "postmaster.opts"))).mtimeMs;
    expect(await rec.endedMs("resize-swap")).toBeLessThanOrEqual(pgStarted);
    expect(await rec.endedMs("set-disk-quota")).toBeLessThanOrEqual(pgStarted);
    // --once: the script deleted itself.
    expect(await Bun.file(host.path("/neonvm/bin/resize-swap")).exists()).toBe(false);
    const line = s.compute.stderr.text
      .split("\n")
      .find((l) => l.includes("pre-start tasks finished"));
    expect(line).toMatch(/swap \d+ ms/);
    expect(line).toMatch(/disk_quota \d+ ms/);
    expect(s.compute.stderr.text).toContain("resized swap to 1073741824 bytes (1024.0 MiB)");
    expect((await terminate(s, "immediate")).code).toBe(200);
    await s.compute.exited;
    await s.stack.stop();
  });

  test("the spec fields without the flags, or the flags without the fields: nothing runs", async () => {
    for (const opts of [
      { spec: SPEC, extraArgs: [] },
      { spec: {}, extraArgs: FLAGS },
    ]) {
      const host = await makeFakeHost();
      const rec = await recordingScripts(host);
      const s = await start({ ...opts, env: host.env });
      await waitStatus(s, "running");
      expect(await rec.calls()).toEqual([]);
      expect((await terminate(s, "immediate")).code).toBe(200);
      await s.compute.exited;
      await s.stack.stop();
    }
  });

  test("resize-swap already gone (a restart after --once): tolerated, with a warning", async () => {
    const host = await makeFakeHost();
    const s = await start({ spec: { swap_size_bytes: 4096 }, extraArgs: FLAGS, env: host.env });
    await waitStatus(s, "running");
    expect(s.compute.stderr.text).toContain('ignoring "not found" error from resize-swap');
    expect((await terminate(s, "immediate")).code).toBe(200);
    await s.compute.exited;
    await s.stack.stop();
  });

  test("resize-swap failing while it exists fails the start", async () => {
    const host = await makeFakeHost();
    await recordingScripts(host, { swapExit: 3 });
    const s = await start({ spec: { swap_size_bytes: 4096 }, extraArgs: FLAGS, env: host.env });
    const st = await waitStatus(s, "failed");
    expect(st.error).toBe(
      [
        "failed to resize swap",
        "",
        "Caused by:",
        "    0: could not run `/usr/bin/sudo /neonvm/bin/resize-swap --once 4096`",
        "    1: process exited with exit status: 3",
      ].join("\n"),
    );
    expect(s.compute.stderr.text).toContain(
      "could not start the compute node: failed to resize swap: could not run `/usr/bin/sudo /neonvm/bin/resize-swap --once 4096`: process exited with exit status: 3",
    );
    expect(await Bun.file(join(s.stack.pgdata, "postmaster.pid")).exists()).toBe(false);
    expect(await s.compute.exited).toBe(1);
    await s.stack.stop();
  });

  test("set-disk-quota missing fails the start (no not-found exception there)", async () => {
    const host = await makeFakeHost();
    const s = await start({ spec: { disk_quota_bytes: 2048 }, extraArgs: FLAGS, env: host.env });
    const st = await waitStatus(s, "failed");
    expect(st.error).toBe(
      [
        "failed to set disk quota",
        "",
        "Caused by:",
        "    0: could not run `/usr/bin/sudo /neonvm/bin/set-disk-quota`",
        "    1: process exited with exit status: 127",
      ].join("\n"),
    );
    expect(await s.compute.exited).toBe(1);
    await s.stack.stop();
  });

  test("no sudo at all: the spawn fails and so does the start", async () => {
    const host = await makeFakeHost();
    await Bun.file(host.path("/usr/bin/sudo")).delete();
    const s = await start({ spec: { disk_quota_bytes: 2048 }, extraArgs: FLAGS, env: host.env });
    const st = await waitStatus(s, "failed");
    expect(st.error).toContain("    1: spawn() failed\n    2: ENOENT");
    await s.compute.exited;
    await s.stack.stop();
  });
});
