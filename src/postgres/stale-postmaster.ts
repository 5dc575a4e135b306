// A postmaster left running on PGDATA by an earlier compute_ctl (one that was SIGKILLed before
// children got a parent-death signal, say) holds the port and the shared memory, so the new
// Postgres would fail to start. Before PGDATA is wiped, such a postmaster is stopped: the pid in
// postmaster.pid must be a live process named postgres whose working directory is this PGDATA
// (a postmaster runs in its data directory), so a stale file naming a reused pid is ignored.
import { readFile, readlink, realpath } from "node:fs/promises";
import { basename, join } from "node:path";

export interface StalePostmaster {
  pid: number;
}

async function procState(pid: number): Promise<{ comm: string; state: string } | null> {
  try {
    const stat = await readFile(`/proc/${pid}/stat`, "utf8");
    const open = stat.indexOf("(");
    const close = stat.lastIndexOf(")");
    return { comm: stat.slice(open + 1, close), state: stat.slice(close + 2, close + 3) };
  } catch {
    return null;
  }
}

async function alive(pid: number): Promise<boolean> {
  const st = await procState(pid);
  return st !== null && st.state !== "Z" && st.state !== "X";
}

/** The postmaster of a previous run still serving `pgdata`, or null. Linux only. */
export async function findStalePostmaster(pgdata: string): Promise<StalePostmaster | null> {
  if (process.platform !== "linux") return null;
  let text: string;
  try {
    text = await readFile(join(pgdata, "postmaster.pid"), "utf8");
  } catch {
    return null;
  }
  const first = text.split("\n", 1)[0]?.trim() ?? "";
  if (!/^[1-9][0-9]*$/.test(first)) return null;
  const pid = Number(first);
  if (pid === process.pid) return null;
  const st = await procState(pid);
  if (st === null || st.state === "Z" || st.state === "X") return null;
  try {
    const exe = basename(await readlink(`/proc/${pid}/exe`).catch(() => ""));
    if (st.comm !== "postgres" && exe !== "postgres") return null;
    const [cwd, dir] = await Promise.all([readlink(`/proc/${pid}/cwd`), realpath(pgdata)]);
    if (cwd !== dir) return null;
  } catch {
    return null; // not ours to inspect, or gone
  }
  return { pid };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function waitGone(pid: number, ms: number): Promise<boolean> {
  const deadline = performance.now() + ms;
  while (performance.now() < deadline) {
    if (!(await alive(pid))) return true;
    await sleep(50);
  }
  return !(await alive(pid));
}

/**
 * Stops a postmaster found by findStalePostmaster: SIGQUIT (immediate shutdown: it stops its
 * children and exits), SIGKILL after `graceMs`; throws if it is still there after that.
 */
export async function stopStalePostmaster(found: StalePostmaster, graceMs = 5000): Promise<void> {
  const { pid } = found;
  try {
    process.kill(pid, "SIGQUIT");
  } catch (err) {
    if ((err as { code?: string }).code === "ESRCH") return;
    throw new Error(`cannot signal the earlier postmaster (pid ${pid})`, { cause: err });
  }
  if (await waitGone(pid, graceMs)) return;
  try {
    process.kill(pid, "SIGKILL");
  } catch {
    // gone meanwhile
  }
  if (!(await waitGone(pid, graceMs))) {
    throw new Error(`the earlier postmaster (pid ${pid}) on this PGDATA does not exit`);
  }
}
