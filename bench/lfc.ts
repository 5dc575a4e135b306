// LFC offload of a 256 MiB state: compute_ctl's LfcManager (the state queried in 1 MiB rows and
// streamed into zstd level 3, then PUT; goal: peak RSS <= 1.5x the state + 64 MiB) against `zstd -3` of the same bytes plus `curl -T` to the same fake endpoint
// storage, in the same run. The stand-in's neon.get_local_cache_state() returns a generated file
// (pg_read_binary_file) of about 3:1 compressibility. The manager runs in a child process so its
// peak RSS is its own; the fake storage is a separate process too.
import { join } from "node:path";
import type { ParsedSpec } from "../src/api/parsed-spec.ts";
import { LfcManager } from "../src/lfc/manager.ts";
import { configureLogging } from "../src/log.ts";
import { createMetrics } from "../src/metrics/registry.ts";
import { lfcPath } from "../test/fakes/endpoint-storage.ts";
import { PG_BINDIR, startTestPostgres } from "../test/support/pg.ts";
import {
  cleanup,
  collectStream,
  makeUserDir,
  trackProcess,
  waitForLine,
} from "../test/support/proc.ts";
import { median, table } from "./_util.ts";

const SIZE = Number(process.env.BENCH_LFC_MIB ?? 256) * 1024 * 1024;
const RUNS = Number(process.env.BENCH_LFC_RUNS ?? 5);
const TENANT = "5e1f".repeat(8);
const TIMELINE = "7a2b".repeat(8);
const ENDPOINT = "ep-bench-lfc";
const TOKEN = "bench-token";

interface ChildResult {
  run: {
    status: string;
    state_query_time_ms: number;
    compress_time_ms: number;
    state_upload_time_ms: number;
  };
  hwmMiB: number;
}

/** The child: one offload through LfcManager; prints the state and the process's VmHWM. */
async function child(pgUrl: string, addr: string): Promise<void> {
  configureLogging({ level: "warn" });
  const spec = {
    tenantId: TENANT,
    timelineId: TIMELINE,
    endpointStorageAddr: addr,
    endpointStorageToken: TOKEN,
    spec: { endpoint_id: ENDPOINT },
  } as unknown as ParsedSpec;
  const lfc = new LfcManager({
    connstr: new URL(pgUrl),
    metrics: createMetrics(),
    getSpec: () => spec,
    fetchTimeoutMs: 300_000,
  });
  lfc.offload();
  const run = await lfc.waitOffload(300_000);
  if (run.status !== "completed") throw new Error(`offload ended ${JSON.stringify(run)}`);
  const status = await Bun.file("/proc/self/status").text();
  const hwmMiB = Number(status.match(/^VmHWM:\s+(\d+) kB/m)?.[1]) / 1024;
  console.log(JSON.stringify({ run, hwmMiB } satisfies ChildResult));
}

/**
 * Bytes like a cache's pages: 8 KiB pages with a zero-filled free tail (0-2 KiB), filled with rows
 * of two random bytes and a few words drawn from a 1024-word vocabulary, so zstd -3 lands near
 * 3:1 through real matches and literals alike.
 */
function generate(size: number): Uint8Array {
  const out = new Uint8Array(size);
  const rnd = new Uint32Array(1 << 16);
  let ri = rnd.length;
  const next = () => {
    if (ri === rnd.length) {
      crypto.getRandomValues(rnd);
      ri = 0;
    }
    return rnd[ri++]!;
  };
  const words: Uint8Array[] = [];
  for (let i = 0; i < 1024; i++) {
    const w = new Uint8Array(3 + (next() % 8));
    for (let j = 0; j < w.length; j++) w[j] = 97 + (next() % 26);
    words.push(w);
  }
  for (let page = 0; page < size; page += 8192) {
    const end = Math.min(size, page + 8192 - (next() % 2048));
    let p = page;
    while (p < end) {
      out[p++] = next() & 0xff;
      if (p < end) out[p++] = next() & 0xff;
      const nw = 3 + (next() % 4);
      for (let k = 0; k < nw && p < end; k++) {
        const w = words[next() % 1024]!;
        const n = Math.min(w.length, end - p);
        out.set(w.subarray(0, n), p);
        p += n;
        if (p < end) out[p++] = 32;
      }
    }
  }
  return out;
}

async function timed(cmd: string[], discard = false): Promise<{ ms: number; out: string }> {
  const t0 = performance.now();
  const p = Bun.spawn(cmd, { stdout: discard ? "ignore" : "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([
    new Response(p.stdout).text(),
    new Response(p.stderr).text(),
    p.exited,
  ]);
  const ms = performance.now() - t0;
  if (code !== 0) throw new Error(`${cmd.join(" ")} exited ${code}: ${err}`);
  return { ms, out };
}

async function main(): Promise<void> {
  for (const tool of ["zstd", "curl"]) {
    if (!Bun.which(tool)) throw new Error(`${tool} not found: apt-get install zstd curl`);
  }
  const dir = await makeUserDir("bench-lfc-");
  const stateFile = join(dir, "state.bin");
  const zstFile = join(dir, "state.bin.zst");
  await Bun.write(stateFile, generate(SIZE));

  const pg = await startTestPostgres();
  await pg.sql
    .unsafe(await Bun.file(`${import.meta.dir}/../test/fixtures/neon_lfc_standin.sql`).text())
    .simple();
  await pg.sql.unsafe(
    `CREATE OR REPLACE FUNCTION neon.get_local_cache_state(max_chunks integer DEFAULT NULL)
     RETURNS bytea LANGUAGE sql AS $$ SELECT pg_catalog.pg_read_binary_file('${stateFile}') $$`,
  );

  const fake = trackProcess(
    Bun.spawn(
      [
        process.execPath,
        join(import.meta.dir, "../test/fakes/endpoint-storage.ts"),
        "--token",
        TOKEN,
      ],
      {
        stdout: "pipe",
        stderr: "inherit",
      },
    ),
  );
  const [line] = await waitForLine(collectStream(fake.stdout), /^\{"port":\d+\}$/, 10_000);
  const addr = `127.0.0.1:${JSON.parse(line).port}`;
  const url = `http://${addr}${lfcPath(TENANT, TIMELINE, ENDPOINT)}`;

  // The floor: psql reading the same state the same way (binary COPY to /dev/null), zstd -3 of
  // the same bytes, curl -T of the result. Ours and the floor alternate, so that load from
  // elsewhere on the machine hits both alike; each of our runs is a fresh process.
  const psql = [
    `${PG_BINDIR}/psql`,
    "-X",
    "-h",
    pg.socketDir,
    "-p",
    String(pg.port),
    "-U",
    "cloud_admin",
    "-d",
    "postgres",
    "-c",
    "COPY (select neon.get_local_cache_state()) TO STDOUT (FORMAT binary)",
  ];
  const curl = [
    "curl",
    "-sS",
    "-T",
    zstFile,
    "-H",
    `Authorization: Bearer ${TOKEN}`,
    "-H",
    "Content-Type:",
    "-o",
    "/dev/null",
    "-w",
    "%{http_code}",
    url,
  ];
  const ours: ChildResult[] = [];
  const psqlMs: number[] = [];
  const zstdMs: number[] = [];
  const curlMs: number[] = [];
  let storedBytes = 0;
  for (let i = 0; i < RUNS; i++) {
    const c = Bun.spawn([process.execPath, import.meta.path, "--child", pg.url, addr], {
      stdout: "pipe",
      stderr: "inherit",
    });
    const [childOut, childCode] = await Promise.all([new Response(c.stdout).text(), c.exited]);
    if (childCode !== 0) throw new Error(`offload child exited ${childCode}`);
    ours.push(JSON.parse(childOut.trim().split("\n").at(-1)!) as ChildResult);
    const stored = await fetch(url, { headers: { authorization: `Bearer ${TOKEN}` } });
    storedBytes = (await stored.arrayBuffer()).byteLength;

    psqlMs.push((await timed(psql, true)).ms);
    zstdMs.push((await timed(["zstd", "-3", "-q", "-f", "-o", zstFile, stateFile])).ms);
    const put = await timed(curl);
    if (put.out !== "200") throw new Error(`curl -T answered ${put.out}`);
    curlMs.push(put.ms);
  }
  const cliBytes = Bun.file(zstFile).size;

  const q = median(ours.map((r) => r.run.state_query_time_ms));
  const z = median(ours.map((r) => r.run.compress_time_ms));
  const u = median(ours.map((r) => r.run.state_upload_time_ms));
  const zu = median(ours.map((r) => r.run.compress_time_ms + r.run.state_upload_time_ms));
  const fz = median(zstdMs);
  const fu = median(curlMs);
  const fzu = median(zstdMs.map((v, i) => v + curlMs[i]!));
  const fq = median(psqlMs);
  const mib = (n: number) => n / 2 ** 20;
  console.log(
    `state ${mib(SIZE).toFixed(0)} MiB; compressed: ours ${mib(storedBytes).toFixed(1)} MiB ` +
      `(${(SIZE / storedBytes).toFixed(2)}:1), zstd -3 ${mib(cliBytes).toFixed(1)} MiB; ` +
      `median of ${RUNS} runs`,
  );
  table([
    ["measure", "compute_ctl", "floor", "ratio"],
    ["compress ms (streaming zstd, overlapping the query, vs zstd -3)", z, fz, z / fz],
    ["upload ms (fetch PUT vs curl -T)", u, fu, u / fu],
    ["compress + upload ms (target ratio <= 1.2)", zu, fzu, zu / fzu],
    ["state query ms (1 MiB rows, binary COPY: postgres.js vs psql)", q, fq, q / fq],
    ["whole offload ms", q + zu, fq + fzu, (q + zu) / (fq + fzu)],
    [
      "peak RSS MiB of the offloading process (max)",
      Math.max(...ours.map((r) => r.hwmMiB)),
      Number.NaN,
      Number.NaN,
    ],
  ]);
  fake.kill("SIGTERM");
  await pg.stop();
}

if (process.argv[2] === "--child") {
  await child(process.argv[3]!, process.argv[4]!);
} else {
  try {
    await main();
  } finally {
    await cleanup();
  }
}
