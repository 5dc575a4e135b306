// Helpers for e2e tests of a compute started against the local stack (test/support/stack.ts).
import { jsonOf, type RunningCompute, startCompute } from "./compute.ts";
import { ed25519Key, jwks, type SigningKey } from "./jwt.ts";
import { processesUsing } from "./leftovers.ts";
import { waitFor } from "./proc.ts";
import { type StackOptions, startLocalStack } from "./stack.ts";

export const FAST = {
  COMPUTE_CTL_TESTING_FAST_LINGER_MS: "300",
  COMPUTE_CTL_TESTING_FAILED_EXIT_DELAY_MS: "300",
  COMPUTE_CTL_TESTING_SYNC_SK_BACKOFF_SCALE: "0.01",
  NEON_COMPUTE_TESTING_BASEBACKUP_RETRIES: "0",
};

export interface Started {
  stack: Awaited<ReturnType<typeof startLocalStack>>;
  compute: RunningCompute;
  key: SigningKey;
  token: string;
}

export async function start(
  opts: StackOptions & {
    env?: Record<string, string>;
    viaConfigure?: boolean;
    /** More compute_ctl arguments. */
    extraArgs?: string[];
    /** Wait until the external server answers (default true). */
    waitReady?: boolean;
    /** Keep only about the last this many characters of compute_ctl's stderr. */
    stderrTailChars?: number;
    /** Another compute_ctl executable than this checkout's build. */
    binary?: string;
    computeId?: string;
    /** false: none of FAST's testing knobs, the reference's delays (a bench's compute). */
    fast?: boolean;
  } = {},
): Promise<Started> {
  const stack = await startLocalStack(opts);
  const key = await ed25519Key();
  const compute = await startCompute({
    config: {
      spec: opts.viaConfigure ? null : stack.spec,
      compute_ctl_config: { jwks: jwks(key) },
    },
    connstr: stack.connstr,
    pgbin: stack.pgbin.pgbin,
    pgdata: stack.pgdata,
    env: { ...(opts.fast === false ? {} : FAST), ...opts.env },
    binary: opts.binary,
    computeId: opts.computeId,
    args: opts.extraArgs,
    waitReady: opts.waitReady,
    stderrTailChars: opts.stderrTailChars,
  });
  const token = await key.sign({ compute_id: compute.computeId });
  return { stack, compute, key, token };
}

export async function statusOf(s: Started) {
  return jsonOf(s.compute.get("/status", s.token));
}

export async function waitStatus(s: Started, want: string, timeoutMs = 30_000) {
  return waitFor(
    async () => {
      const st = await statusOf(s);
      if (st.status === "failed" && want !== "failed") {
        throw new Error(`compute failed: ${st.error}`);
      }
      return st.status === want ? st : undefined;
    },
    { what: `status ${want}`, timeoutMs },
  );
}

/** `query` through psql as cloud_admin, in `database` (postgres unless given). */
export async function psql(s: Started, query: string, database = "postgres"): Promise<string> {
  const p = Bun.spawn(
    [
      "psql",
      "-X",
      "-At",
      "-h",
      "127.0.0.1",
      "-p",
      String(s.stack.pgPort),
      "-U",
      "cloud_admin",
      "-d",
      database,
      "-c",
      query,
    ],
    { stdout: "pipe", stderr: "pipe" },
  );
  const [out, err] = [await new Response(p.stdout).text(), await new Response(p.stderr).text()];
  if ((await p.exited) !== 0) throw new Error(`psql: ${err}`);
  return out.trim();
}

export async function terminate(s: Started, mode: "fast" | "immediate") {
  const r = await s.compute.post(`/terminate?mode=${mode}`, s.token);
  return { code: r.status, body: await jsonOf(r) };
}

export async function expectNothingLeft(s: Started) {
  await waitFor(() => processesUsing(s.stack.pgdata).length === 0, {
    what: `no process left using ${s.stack.pgdata}`,
    timeoutMs: 5000,
  }).catch((err) => {
    throw new Error(`${err.message}: ${JSON.stringify(processesUsing(s.stack.pgdata))}`);
  });
}
