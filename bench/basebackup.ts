// Basebackup ingest against `gzip -dc file | tar -x -C dir` on the same bytes, in the same run,
// three ways, each in a child process of its own (so its peak RSS is its own):
//   file   extractTarGz reading the .tar.gz from disk (the extractor alone);
//   libpq  the libpq path: CopyOut from the fake pageserver (8 KiB CopyData, as the pageserver);
//   grpc   the gRPC path: GetBaseBackup from the fake gRPC pageserver (256 KiB chunks, as the
//          pageserver), over h2c on loopback.
// The fake pageservers run in this process and stream the file from disk. The basebackup is the
// template padded with ~1 GiB of page-like data that gzip -1 shrinks about 3:1, so both inflate
// and disk writes matter. Rounds rotate the order; the median of each side is reported.
// Goals: throughput ratio >= 0.9 for the extractor, peak RSS <= 150 MiB on every path.
import { mkdtempSync, rmSync } from "node:fs";
import { join, resolve } from "node:path";
import { basebackupTemplate } from "../test/fakes/basebackup-template.ts";
import { startFakeGrpcPageserver } from "../test/fakes/grpc-pageserver.ts";
import { startFakePageserver } from "../test/fakes/pageserver.ts";
import { median, table } from "./_util.ts";

const PAD_BYTES = Number(process.env.BENCH_BASEBACKUP_BYTES ?? 2 ** 30);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const UNTAR = resolve(import.meta.dir, "../src/storage/untar.ts");
const BASEBACKUP = resolve(import.meta.dir, "../src/storage/basebackup.ts");
const TENANT = "b0554b632bd4d547a63b86c3630317e8";
const TIMELINE = "2414a61ffc94e428f14b5758fe308e13";

// The child: one side's ingest; reports time, sizes and /proc/self/status figures.
const CHILD = `
import { extractTarGz } from ${JSON.stringify(UNTAR)};
import { getBasebackup, grpcBasebackupSource, libpqBasebackupSource, basebackupCommand } from ${JSON.stringify(BASEBACKUP)};
const kb = (k) => Number(require("node:fs").readFileSync("/proc/self/status", "utf8")
  .match(new RegExp("^" + k + ":\\\\s+(\\\\d+) kB", "m"))[1]);
const [side, src, dest] = process.argv.slice(-3);
const hwmBefore = kb("VmHWM");
const t0 = performance.now();
let r;
if (side === "file") {
  r = await extractTarGz(Bun.file(src).stream(), dest);
} else {
  const ids = { tenantId: ${JSON.stringify(TENANT)}, timelineId: ${JSON.stringify(TIMELINE)} };
  const source = side === "grpc"
    ? grpcBasebackupSource({ target: { url: src, ...ids, shardId: "0000", token: null }, lsn: "0/0", mode: "primary" })
    : libpqBasebackupSource({ connstring: src, token: null, mode: "primary",
        command: basebackupCommand({ ...ids, lsn: "0/0", mode: "primary" }) });
  const m = await getBasebackup({ source, pgdata: dest, lsn: "0/0", retries: 0 });
  r = { compressedBytes: m.basebackupBytes, tarBytes: 0, files: 0 };
}
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

type Side = "file" | "libpq" | "grpc";

async function runOurs(side: Side, src: string, dest: string): Promise<Ours> {
  const p = Bun.spawn(["bun", "-e", CHILD, "--", side, src, dest], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const [out, code] = await Promise.all([new Response(p.stdout).text(), p.exited]);
  if (code !== 0) throw new Error(`${side} child exited with ${code}`);
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

  const stream = () => Bun.file(tarGzPath).stream() as unknown as AsyncIterable<Uint8Array>;
  const ids = { tenantId: TENANT, timelineId: TIMELINE, token: null };
  const libpq = await startFakePageserver({ basebackup: stream, ...ids });
  const grpc = await startFakeGrpcPageserver({ basebackup: stream, ...ids });
  const srcOf: Record<Side, string> = { file: tarGzPath, libpq: libpq.url, grpc: grpc.url };

  const sides: Side[] = ["file", "libpq", "grpc"];
  const ours: Record<Side, Ours[]> = { file: [], libpq: [], grpc: [] };
  const floor: number[] = [];
  try {
    for (let i = 0; i < ROUNDS; i++) {
      const order = [...sides, "floor" as const];
      for (let k = 0; k < i % order.length; k++) order.push(order.shift() as Side | "floor");
      for (const side of order) {
        const dest = join(work, `${side}-${i}`);
        Bun.spawnSync(["mkdir", dest]);
        sync();
        if (side === "floor") floor.push(await runFloor(tarGzPath, dest));
        else ours[side].push(await runOurs(side, srcOf[side], dest));
        rmSync(dest, { recursive: true, force: true });
      }
    }
  } finally {
    await libpq.stop();
    await grpc.stop();
  }

  const first = ours.file[0] as Ours;
  const tarMiB = first.tarBytes / 2 ** 20;
  const gzMiB = first.compressedBytes / 2 ** 20;
  for (const side of ["libpq", "grpc"] as const) {
    if (ours[side].some((o) => o.compressedBytes !== first.compressedBytes)) {
      throw new Error(`${side}: basebackup_bytes differs from the file's size`);
    }
  }
  const floorMs = median(floor);
  const floorRate = tarMiB / (floorMs / 1000);
  console.log(
    `basebackup: ${gzMiB.toFixed(0)} MiB gzip -> ${tarMiB.toFixed(0)} MiB tar ` +
      `(${(tarMiB / gzMiB).toFixed(2)}:1), ${first.files} files; median of ${ROUNDS} rounds`,
  );
  const rows: (string | number)[][] = [
    ["path", "wall ms", "MiB/s (uncompressed)", "ratio to floor", "peak RSS MiB", "goal"],
    ["gzip -dc | tar -x (floor)", floorMs, floorRate, 1, "", ""],
  ];
  for (const side of sides) {
    const ms = median(ours[side].map((o) => o.ms));
    const rate = tarMiB / (ms / 1000);
    const peak = Math.max(...ours[side].map((o) => o.hwmKb)) / 1024;
    const label = side === "file" ? "extractTarGz (file)" : `${side} fetch + extract`;
    rows.push([label, ms, rate, rate / floorRate, peak, ">= 0.9, <= 150 MiB"]);
  }
  const runtime = Math.max(...sides.flatMap((s) => ours[s].map((o) => o.hwmBeforeKb))) / 1024;
  rows.push(["  runtime RSS at start", "", "", "", runtime, ""]);
  table(rows);
} finally {
  rmSync(work, { recursive: true, force: true });
}
