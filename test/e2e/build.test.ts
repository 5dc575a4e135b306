// The single-file executable: it runs, reports what it was built from, and keeps the build-time
// constants whatever the runtime environment says.
import { afterAll, expect, test } from "bun:test";
import { join } from "node:path";
import { outputName } from "../../build.ts";
import { compiledBinaryInfo, hostTarget, ROOT, runBinary } from "../support/binary.ts";
import { emptyConfig, startCompute } from "../support/compute.ts";
import { ed25519Key, jwks } from "../support/jwt.ts";
import { cleanup, makeUserDir } from "../support/proc.ts";

afterAll(cleanup);

// The runtime environment tries to override every embedded constant; none may win.
const HOSTILE_ENV = {
  BUILD_TAG: "other",
  COMPUTE_CTL_VERSION: "9.9.9-env",
  COMPUTE_CTL_TARGET: "env-target",
};

test("--version prints the embedded version, build tag and target", async () => {
  const { stamp } = await compiledBinaryInfo();
  const r = await runBinary(["--version"], { env: HOSTILE_ENV, timeoutMs: 20_000 });
  expect(r.stderr).not.toContain("error");
  expect(r.code).toBe(0);
  expect(r.stdout).toContain(stamp.version);
  expect(r.stdout).toContain(stamp.buildTag);
  expect(r.stdout).toContain(stamp.target);
  expect(r.stdout).not.toContain("9.9.9-env");
  expect(r.stdout).not.toContain("env-target");
}, 180_000);

test("BUILD_TAG from the build environment is embedded", async () => {
  const outdir = await makeUserDir("build-");
  const target = hostTarget();
  const p = Bun.spawn(
    [process.execPath, join(ROOT, "build.ts"), "--target", target, "--outdir", outdir],
    {
      cwd: ROOT,
      env: { ...process.env, BUILD_TAG: "test-tag" },
      stdout: "pipe",
      stderr: "pipe",
      timeout: 120_000,
    },
  );
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  if (code !== 0) throw new Error(`build.ts failed (exit ${code}):\n${out}${err}`);
  expect(out).toContain(outputName(target));

  const r = await runBinary(["--version"], {
    binary: join(outdir, outputName(target)),
    env: HOSTILE_ENV,
    timeoutMs: 20_000,
  });
  expect(r.code).toBe(0);
  expect(r.stdout).toContain("test-tag");
  expect(r.stdout).not.toContain("other");
}, 180_000);

test("the bytecode is laid out by the committed profiles: an Empty compute loads mostly profiled functions", async () => {
  const key = await ed25519Key();
  const c = await startCompute({
    config: emptyConfig(jwks(key)),
    env: { COMPUTE_CTL_TESTING_MEMORY_PROBE: "1" },
  });
  const probe = (await (await fetch(`${c.internal}/testing/memory`)).json()) as {
    bytecode_order: { hot: number; unknown: number; cold: number } | null;
  };
  c.proc.kill("SIGKILL");
  const stats = probe.bytecode_order;
  expect(stats).not.toBeNull();
  // Functions changed since the profile was recorded count as unknown: the bound leaves room
  // for that, and fails for a profile that no longer describes an Empty compute at all.
  const { hot, cold, unknown } = stats!;
  if (hot <= 2 * (cold + unknown)) {
    throw new Error(
      `the bytecode profiles in build-profile/ no longer describe an Empty compute (hot ${hot}, cold ${cold}, unknown ${unknown}): re-record them with \`bun scripts/bytecode-order.ts\``,
    );
  }
}, 180_000);
