#!/usr/bin/env bun
// The README's "main job": a compute started on this machine with no Neon installation. A local
// stack (the test fakes, run as a small dev stack) stands in for Neon's storage: a pageserver
// serving a basebackup made by initdb, and a pgbin wrapper that answers --sync-safekeepers and
// runs the real Postgres 15 otherwise. Then compute_ctl, built for this machine, runs against it
// with an embedded default spec. As root it runs compute_ctl as the `postgres` user (Postgres
// refuses root); otherwise as you. Ctrl-C stops everything.
//
//   bash scripts/dev.sh [--mode Primary|Replica|Static]
import { join } from "node:path";
import { compiledBinary } from "../test/support/binary.ts";
import { writeUserFile } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { freePort } from "../test/support/ports.ts";
import { cleanup, spawnAs, waitFor } from "../test/support/proc.ts";
import { type StackMode, startLocalStack } from "../test/support/stack.ts";

const COMPUTE_ID = "local-compute";
const modeArg = process.argv.indexOf("--mode");
const mode = (modeArg > 0 ? process.argv[modeArg + 1] : "Primary") as StackMode;
if (!["Primary", "Replica", "Static"].includes(mode)) {
  console.error(`error: --mode must be Primary, Replica or Static, not ${mode}`);
  process.exit(2);
}

async function portOr(preferred: number): Promise<number> {
  try {
    Bun.serve({ hostname: "::", port: preferred, fetch: () => new Response() }).stop(true);
    return preferred;
  } catch {
    return freePort();
  }
}

console.error("building compute_ctl and a basebackup template (first run: a few seconds)…");
const bin = await compiledBinary();
const stack = await startLocalStack({ mode, safekeepers: "absent" });
const key = await ed25519Key();
const token = await key.sign({ compute_id: COMPUTE_ID });
const configPath = join(stack.dir, "config.json");
await writeUserFile(
  configPath,
  JSON.stringify({ spec: stack.spec, compute_ctl_config: { jwks: jwks(key) } }, null, 2),
);
const externalPort = await portOr(3080);
const internalPort = await portOr(3081);

const args = [
  "-D",
  stack.pgdata,
  "-C",
  stack.connstr,
  "-b",
  stack.pgbin.pgbin,
  "-c",
  configPath,
  "--compute-id",
  COMPUTE_ID,
  "--external-http-port",
  String(externalPort),
  "--internal-http-port",
  String(internalPort),
];
console.error(`$ ${bin} ${args.join(" ")}`);
const child = spawnAs([bin, ...args], { stdout: "inherit", stderr: "inherit", detached: false });

let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    child.kill("SIGTERM");
    await child.exited;
    await stack.stop();
    await cleanup();
  }
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
void child.exited.then(async (code) => {
  if (!stopping) {
    console.error(`compute_ctl exited with ${code}`);
    await stack.stop();
    await cleanup();
    process.exit(code ?? 1);
  }
});

const url = `http://127.0.0.1:${externalPort}`;
const status = await waitFor(
  async () => {
    const r = await fetch(`${url}/status`, { headers: { authorization: `Bearer ${token}` } });
    const body = (await r.json()) as { status: string; error: string | null };
    if (body.status === "failed") throw new Error(`the compute failed to start: ${body.error}`);
    return body.status === "running" ? JSON.stringify(body) : undefined;
  },
  { what: "the compute to be running", timeoutMs: 60_000 },
).catch(async (err) => {
  console.error(String(err));
  return stop(1);
});

console.log(`
A ${mode} compute is running (compute_ctl pid ${child.pid}).

  psql "postgresql://cloud_admin@127.0.0.1:${stack.pgPort}/postgres"

  external API   ${url}          (JWT; /metrics is open)
  internal API   http://127.0.0.1:${internalPort}
  PGDATA         ${stack.pgdata}
  config         ${configPath}
  GET /status →  ${status}

  export TOKEN=${token}
  curl -s -H "Authorization: Bearer $TOKEN" ${url}/status
  curl -s -H "Authorization: Bearer $TOKEN" ${url}/metrics.json
  curl -s ${url}/metrics
  curl -s -XPOST -H "Authorization: Bearer $TOKEN" '${url}/terminate?mode=immediate'

Ctrl-C stops it.`);
await new Promise(() => {});
