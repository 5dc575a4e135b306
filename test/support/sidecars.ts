// Starting a compute for the sidecar e2e tests: like started.ts's start(), plus a hook to change
// the spec the stack made (its cluster settings, say) and more compute_ctl_config (TLS).
import { startCompute } from "./compute.ts";
import { ed25519Key, jwks } from "./jwt.ts";
import { type StackOptions, startLocalStack } from "./stack.ts";
import { FAST, type Started } from "./started.ts";

export async function startWith(
  opts: StackOptions & {
    env?: Record<string, string>;
    extraArgs?: string[];
    mutateSpec?: (spec: Record<string, unknown> & { cluster: { settings: unknown[] } }) => void;
    computeCtlConfig?: Record<string, unknown>;
    waitReady?: boolean;
  } = {},
): Promise<Started> {
  const stack = await startLocalStack(opts);
  opts.mutateSpec?.(stack.spec as Parameters<NonNullable<typeof opts.mutateSpec>>[0]);
  const key = await ed25519Key();
  const compute = await startCompute({
    config: { spec: stack.spec, compute_ctl_config: { jwks: jwks(key), ...opts.computeCtlConfig } },
    connstr: stack.connstr,
    pgbin: stack.pgbin.pgbin,
    pgdata: stack.pgdata,
    env: { ...FAST, ...opts.env },
    args: opts.extraArgs,
    waitReady: opts.waitReady,
  });
  const token = await key.sign({ compute_id: compute.computeId });
  return { stack, compute, key, token };
}

/** A cluster setting as the spec carries it. */
export const setting = (name: string, value: string, vartype = "string") => ({
  name,
  value,
  vartype,
});
