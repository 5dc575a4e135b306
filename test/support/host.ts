// A fake host for compute_ctl under COMPUTE_CTL_TESTING_HOST_ROOT: the directories the compute
// image has (/etc/local_proxy, /etc/rsyslog.d, /neonvm/bin, /usr/bin, /tmp, pgbouncer's), owned by
// the test user, and a directory of shims put first on PATH for the commands compute_ctl runs by
// name (cgexec, pkill, pgrep).
import { chmodSync, chownSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { writeUserFile } from "./compute.ts";
import { makeUserDir, RUN_AS } from "./proc.ts";

const DIRS = [
  "etc/local_proxy",
  "etc/rsyslog.d",
  "neonvm/bin",
  "usr/bin",
  "tmp",
  "var/db/postgres/pgbouncer",
  "shims",
];

export interface FakeHost {
  root: string;
  /** `p` (absolute) under the root. */
  path(p: string): string;
  shims: string;
  /** PATH with the shims first. */
  PATH: string;
  /** The environment compute_ctl needs to use this host. */
  env: Record<string, string>;
  /** Writes an executable script at `p` (absolute, under the root). */
  script(p: string, body: string): Promise<string>;
  /** Writes an executable shim called `name` on PATH. */
  shim(name: string, body: string): Promise<string>;
}

export async function makeFakeHost(): Promise<FakeHost> {
  const root = await makeUserDir("host-");
  for (const d of DIRS) {
    const full = join(root, d);
    mkdirSync(full, { recursive: true });
    chmodSync(full, 0o777);
    if (RUN_AS) chownSync(full, RUN_AS.uid, RUN_AS.gid);
  }
  const shims = join(root, "shims");
  const PATH = `${shims}:${process.env.PATH ?? "/usr/bin:/bin"}`;
  const exe = async (full: string, body: string) => {
    await writeUserFile(full, body.startsWith("#!") ? body : `#!/bin/sh\n${body}`);
    chmodSync(full, 0o755);
    return full;
  };
  const host: FakeHost = {
    root,
    path: (p) => join(root, p),
    shims,
    PATH,
    env: { COMPUTE_CTL_TESTING_HOST_ROOT: root, PATH },
    script: (p, body) => exe(join(root, p), body),
    shim: (name, body) => exe(join(shims, name), body),
  };
  // cgexec -g <controllers>:<path> <cmd...>: run the command in place (no cgroups in tests).
  await host.shim("cgexec", 'shift 2\nexec "$@"\n');
  // sudo <cmd...>: the test user may run anything.
  await host.script("/usr/bin/sudo", 'exec "$@"\n');
  return host;
}
