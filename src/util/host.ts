// Every fixed host path compute_ctl touches outside PGDATA and the --pgbin tree (cgroup files,
// /proc/meminfo, /etc/..., /neonvm/bin, /usr/bin/sudo, /tmp/pgbouncer.pid) goes through hostPath,
// so a test can lay out a fake host under COMPUTE_CTL_TESTING_HOST_ROOT. Paths that come from
// flags, the config or the spec are used as given and never pass through here.
import { join } from "node:path";
import { hostRoot } from "../testing-knobs.ts";

/** `p` (absolute) under the testing host root when one is set, else `p` itself. */
export function hostPath(p: string, root: string | undefined = hostRoot): string {
  return root ? join(root, p) : p;
}
