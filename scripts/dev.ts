#!/usr/bin/env bun
// The README's "main job": builds compute_ctl for this machine and runs it locally against an
// embedded default configuration, then shows its /status and how to call its API. As root it
// runs compute_ctl as the `postgres` user (Postgres refuses root); otherwise as you.
//
// Until the start path lands this is an Empty compute: it waits for POST /configure.
import { join } from "node:path";
import { compiledBinary } from "../test/support/binary.ts";
import { emptyConfig, PGBIN, writeUserFile } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { freePort } from "../test/support/ports.ts";
import { cleanup, makeUserDir, spawnAs, waitFor } from "../test/support/proc.ts";

const COMPUTE_ID = "local-compute";

async function portOr(preferred: number): Promise<number> {
  try {
    const s = Bun.serve({ hostname: "::", port: preferred, fetch: () => new Response() });
    s.stop(true);
    return preferred;
  } catch {
    return freePort();
  }
}

const bin = await compiledBinary();
const dir = await makeUserDir("dev-");
const key = await ed25519Key();
const token = await key.sign({ compute_id: COMPUTE_ID });
const configPath = join(dir, "config.json");
await writeUserFile(configPath, JSON.stringify(emptyConfig(jwks(key)), null, 2));
const externalPort = await portOr(3080);
const internalPort = await portOr(3081);

const args = [
  "-D",
  join(dir, "pgdata"),
  "-C",
  "postgresql://cloud_admin@127.0.0.1:55432/postgres",
  "-b",
  process.env.PGBIN ?? PGBIN,
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
const child = spawnAs([bin, ...args], { stdout: "inherit", stderr: "inherit" });

let stopping = false;
async function stop(code: number): Promise<never> {
  if (!stopping) {
    stopping = true;
    child.kill("SIGTERM");
    await child.exited;
    await cleanup();
  }
  process.exit(code);
}
process.on("SIGINT", () => void stop(0));
process.on("SIGTERM", () => void stop(0));
void child.exited.then(async (code) => {
  if (!stopping) {
    console.error(`compute_ctl exited with ${code}`);
    await cleanup();
    process.exit(code ?? 1);
  }
});

const url = `http://127.0.0.1:${externalPort}`;
const status = await waitFor(
  async () => {
    const r = await fetch(`${url}/status`, { headers: { authorization: `Bearer ${token}` } });
    return r.ok ? r.text() : undefined;
  },
  { what: "compute_ctl's /status", timeoutMs: 15_000 },
);

console.log(`
compute_ctl is running (pid ${child.pid}), waiting for a spec.

  GET /status  → ${status}

  external API   ${url}          (JWT; /metrics is open)
  internal API   http://127.0.0.1:${internalPort}
  config         ${configPath}

  export TOKEN=${token}
  curl -s -H "Authorization: Bearer $TOKEN" ${url}/status
  curl -s ${url}/metrics
  curl -s -XPOST -H "Authorization: Bearer $TOKEN" '${url}/terminate?mode=immediate'

Ctrl-C stops it.`);
await new Promise(() => {});
