#!/usr/bin/env bun
// The README's "main job": a compute started on this machine with no Neon installation. A local
// stack (the test fakes, run as a small dev stack) stands in for Neon's storage: a pageserver
// serving a basebackup made by initdb, three safekeepers that agree on where the timeline ends
// (the start's fast path), and a pgbin wrapper that runs a Postgres 15 whose extension directory
// holds a stand-in for the neon extension, so the spec is applied as on Neon. Then compute_ctl,
// built for this machine into dist/, runs against it. As root it runs compute_ctl as the
// `postgres` user (Postgres refuses root); otherwise as you.
//
// The terminal shows one progress line, the banner (last, ending with how to stop), and one line
// when it stops. compute_ctl and Postgres write to the log file the banner names.
import { closeSync, openSync, writeSync } from "node:fs";
import { join } from "node:path";
import { compiledBinary } from "../test/support/binary.ts";
import { writeUserFile } from "../test/support/compute.ts";
import { ed25519Key, jwks } from "../test/support/jwt.ts";
import { neonStubTree } from "../test/support/neon-stub.ts";
import { freePort } from "../test/support/ports.ts";
import { cleanup, spawnAs, userTmpDir, waitFor } from "../test/support/proc.ts";
import { type StackMode, startLocalStack } from "../test/support/stack.ts";

const USAGE = `Usage: bash scripts/dev.sh [--mode Primary|Replica|Static] [--help]

Starts a compute on this machine: compute_ctl built from this checkout (into dist/), run against
a local stand-in for Neon's storage, with Postgres 15 from ${"/usr/lib/postgresql/15/bin"}.
Prints how to connect and what to try, then runs until Ctrl-C.

Options:
  --mode MODE   Primary (default), Replica or Static
  -h, --help    Print this help

Environment:
  PG_BINDIR     where Postgres 15 is (default /usr/lib/postgresql/15/bin)
  OTEL_SDK_DISABLED
                left as you set it; unset, it is set to true (no trace export)
`;

const COMPUTE_ID = "local-compute";
const MODES: StackMode[] = ["Primary", "Replica", "Static"];

function parseArgs(argv: string[]): { mode: StackMode } {
  let mode: StackMode = "Primary";
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === "-h" || a === "--help") {
      process.stdout.write(USAGE);
      process.exit(0);
    }
    const value = a.startsWith("--mode=") ? a.slice(7) : a === "--mode" ? argv[++i] : undefined;
    if (value === undefined) {
      process.stderr.write(`error: unexpected argument '${a}'; see 'bash scripts/dev.sh --help'\n`);
      process.exit(2);
    }
    if (!MODES.includes(value as StackMode)) {
      process.stderr.write(
        `error: --mode must be Primary, Replica or Static, not '${value}'; see 'bash scripts/dev.sh --help'\n`,
      );
      process.exit(2);
    }
    mode = value as StackMode;
  }
  return { mode };
}

const { mode } = parseArgs(process.argv.slice(2));

async function portOr(preferred: number): Promise<number> {
  try {
    Bun.serve({ hostname: "::", port: preferred, fetch: () => new Response() }).stop(true);
    return preferred;
  } catch {
    return freePort();
  }
}

/** The control plane's md5 form of a password: md5(password || user) in hex. */
function md5Password(password: string, user: string): string {
  return new Bun.CryptoHasher("md5").update(password + user).digest("hex");
}

process.stderr.write(
  `starting a local ${mode} compute (the first run builds compute_ctl and a basebackup: about 15 s)…\n`,
);
/** A failure before compute_ctl runs: one line (the build's output follows it), no stack trace. */
async function orFail<T>(what: string, p: Promise<T>): Promise<T> {
  try {
    return await p;
  } catch (err) {
    process.stderr.write(`error: ${what}: ${(err as Error).message}\n`);
    await cleanup();
    process.exit(1);
  }
}

const bin = await orFail("cannot build compute_ctl", compiledBinary());
const stack = await orFail(
  "cannot start the local stack",
  (async () =>
    startLocalStack({
      mode,
      safekeepers: "agree",
      realBindir: neonStubTree(process.env.PG_BINDIR),
      skipCatalogUpdates: false,
      // The wrapper's sync-safekeepers prints nothing (its sample log records are for tests).
      sync: { stderrLines: [] },
    }))(),
);
const key = await ed25519Key();
const token = await key.sign({ compute_id: COMPUTE_ID });
const computeCtlConfig = { jwks: jwks(key) };
const configPath = join(stack.dir, "config.json");
await writeUserFile(
  configPath,
  JSON.stringify({ spec: stack.spec, compute_ctl_config: computeCtlConfig }, null, 2),
);
// What the banner's /configure sends: the same spec with a role and a database added.
const configurePath = join(stack.dir, "configure.json");
await writeUserFile(
  configurePath,
  JSON.stringify(
    {
      spec: {
        ...stack.spec,
        cluster: {
          ...stack.spec.cluster,
          roles: [{ name: "alice", encrypted_password: md5Password("alice-secret", "alice") }],
          databases: [{ name: "shop", owner: "alice" }],
        },
      },
      compute_ctl_config: computeCtlConfig,
    },
    null,
    2,
  ),
);
const externalPort = await portOr(3080);
const internalPort = await portOr(3081);
const logPath = join(userTmpDir(), `dev-${externalPort}.log`);

const args = [
  ...["-D", stack.pgdata, "-C", stack.connstr, "-b", stack.pgbin.pgbin, "-c", configPath],
  ...["--compute-id", COMPUTE_ID],
  ...["--external-http-port", String(externalPort), "--internal-http-port", String(internalPort)],
];
const logFd = openSync(logPath, "w", 0o644);
writeSync(logFd, `$ ${bin} ${args.join(" ")}\n`);
const child = spawnAs([bin, ...args], {
  stdout: logFd,
  stderr: logFd,
  // Its own process group: Ctrl-C reaches this script, which stops compute_ctl in order.
  detached: true,
  env: { OTEL_SDK_DISABLED: process.env.OTEL_SDK_DISABLED ?? "true" },
});
closeSync(logFd);

let stopping = false;
async function stop(code: number, line: string): Promise<never> {
  if (!stopping) {
    stopping = true;
    if (child.exitCode === null) child.kill("SIGTERM");
    await child.exited;
    await stack.stop();
    await cleanup();
    process.stderr.write(`${line}\n`);
  }
  process.exit(code);
}
process.on("SIGINT", () => void stop(0, `stopped (the log stays at ${logPath})`));
process.on("SIGTERM", () => void stop(0, `stopped (the log stays at ${logPath})`));
process.on("SIGHUP", () => void stop(0, `stopped (the log stays at ${logPath})`));
void child.exited.then((code) => {
  if (!stopping) void stop(code || 1, `compute_ctl exited with ${code}; see ${logPath}`);
});

// Readiness from the log rather than by polling /status, so the access log holds only what
// you send.
await waitFor(
  async () => {
    const text = await Bun.file(logPath).text();
    if (/Changing compute status from \S+ to failed/.test(text)) {
      throw new Error("the compute failed to start");
    }
    return /Changing compute status from \S+ to running/.test(text);
  },
  { what: "the compute to be running", timeoutMs: 120_000, intervalMs: 100 },
).catch(async (err) => {
  return stop(1, `${(err as Error).message}; see ${logPath}`);
});

const url = `http://127.0.0.1:${externalPort}`;
const pg = `postgresql://cloud_admin@127.0.0.1:${stack.pgPort}/postgres`;
const primaryOnly =
  mode === "Primary"
    ? `
  # create the role alice and her database shop (the body is the spec plus both):
  curl -s -w '\\n' -XPOST -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' \\
       -d @${configurePath} ${url}/configure
  psql "postgresql://alice:alice-secret@127.0.0.1:${stack.pgPort}/shop" -c 'select current_user, current_database()'
`
    : "";
process.stdout.write(`
A local ${mode} compute is running.

  psql "${pg}"

  export TOKEN=${token}
  curl -s -w '\\n' -H "Authorization: Bearer $TOKEN" ${url}/status
${primaryOnly}
  external API  ${url}  (JWT; /metrics open)
  internal API  http://127.0.0.1:${internalPort}
  PGDATA        ${stack.pgdata}
  log           ${logPath}  (compute_ctl and Postgres)

Ctrl-C stops it.
`);
await new Promise(() => {});
