// Basebackup ingest: extractTarGz (in a child process of its own, so its peak RSS is its own)
// against `gzip -dc file | tar -x -C dir` on the same bytes, in the same run. The basebackup is
// the template padded with ~1 GiB of page-like data that gzip -1 shrinks about 3:1, so both
// inflate and disk writes matter. Rounds alternate; the median of each side is reported.
// Goals: throughput ratio >= 0.9, peak RSS of our extraction <= 150 MiB.
import { mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { basebackupTemplate } from "../test/fakes/basebackup-template.ts";
import { median, table } from "./_util.ts";

const PAD_BYTES = Number(process.env.BENCH_BASEBACKUP_BYTES ?? 2 ** 30);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const UNTAR = resolve(import.meta.dir, "../src/storage/untar.ts");

// The child: extract from a file stream, report time, sizes and /proc/self/status figures.
const CHILD = `
import { extractTarGz } from ${JSON.stringify(UNTAR)};
const kb = (k) => Number(require("node:fs").readFileSync("/proc/self/status", "utf8")
  .match(new RegExp("^" + k + ":\\\\s+(\\\\d+) kB", "m"))[1]);
const [src, dest] = process.argv.slice(-2);
const hwmBefore = kb("VmHWM");
const t0 = performance.now();
const r = await extractTarGz(Bun.file(src).stream(), dest);
const ms = performance.now() - t0;
console.log(JSON.stringify({ ms, ...r, hwmBeforeKb: hwmBefore, hwmKb: kb("VmHWM") }));
`;

interface Ours {
  ms: number;
  tarBytes: number;
  compressedBytes: number;
  files: number;
  hwmBeforeKb: number;
  hwmKb: number;
}

function sync(): void {
  Bun.spawnSync(["sync"]); // earlier rounds' writeback must not bill this one
}

async function runOurs(src: string, dest: string): Promise<Ours> {
  const p = Bun.spawn(["bun", "-e", CHILD, "--", src, dest], { stdout: "pipe", stderr: "inherit" });
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  if (code !== 0) throw new Error(`extractTarGz child exited with ${code}`);
  return JSON.parse(out.trim().split("\n").at(-1) as string) as Ours;
}

async function runFloor(src: string, dest: string): Promise<number> {
  const t0 = performance.now();
  const p = Bun.spawn(
    [
      "bash",
      "-c",
      'set -o pipefail; gzip -dc "$1" | tar -x --no-same-owner -C "$2"',
      "-",
      src,
      dest,
    ],
    { stdout: "ignore", stderr: "inherit" },
  );
  if ((await p.exited) !== 0) throw new Error("gzip -dc | tar -x failed");
  return performance.now() - t0;
}

const work = mkdtempSync(join("/tmp", "compute_ctl-bench-basebackup-"));
try {
  console.log(`building the template (${(PAD_BYTES / 2 ** 20).toFixed(0)} MiB padding, cached)…`);
  const { tarGzPath } = await basebackupTemplate({ padBytes: PAD_BYTES, padContent: "mixed" });
  Bun.spawnSync(["cat", tarGzPath], { stdout: "ignore" }); // both sides read from page cache

  const ours: Ours[] = [];
  const floor: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    for (const side of i % 2 ? ["floor", "ours"] : ["ours", "floor"]) {
      const dest = join(work, `${side}-${i}`);
      Bun.spawnSync(["mkdir", dest]);
      sync();
      if (side === "ours") ours.push(await runOurs(tarGzPath, dest));
      else floor.push(await runFloor(tarGzPath, dest));
      rmSync(dest, { recursive: true, force: true });
    }
  }

  const first = ours[0] as Ours;
  const tarMiB = first.tarBytes / 2 ** 20;
  const gzMiB = first.compressedBytes / 2 ** 20;
  const oursMs = median(ours.map((o) => o.ms));
  const floorMs = median(floor);
  const oursRate = tarMiB / (oursMs / 1000);
  const floorRate = tarMiB / (floorMs / 1000);
  const peak = Math.max(...ours.map((o) => o.hwmKb)) / 1024;
  const runtime = Math.max(...ours.map((o) => o.hwmBeforeKb)) / 1024;
  console.log(
    `basebackup: ${gzMiB.toFixed(0)} MiB gzip -> ${tarMiB.toFixed(0)} MiB tar ` +
      `(${(tarMiB / gzMiB).toFixed(2)}:1), ${first.files} files; median of ${ROUNDS} rounds`,
  );
  table([
    ["measure", "extractTarGz", "gzip -dc | tar -x", "ratio", "goal"],
    ["wall ms", oursMs, floorMs, floorMs / oursMs, ""],
    ["MiB/s (uncompressed)", oursRate, floorRate, oursRate / floorRate, ">= 0.9"],
    ["peak RSS MiB (VmHWM)", peak, "", "", "<= 150"],
    ["  of which runtime at start", runtime, "", "", ""],
  ]);
} finally {
  rmSync(work, { recursive: true, force: true });
}
