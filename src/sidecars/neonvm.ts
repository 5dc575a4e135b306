// The NeonVM scripts compute_ctl runs through sudo before Postgres starts: resize-swap (swap
// sized to the spec's swap_size_bytes) and set-disk-quota (the spec's disk_quota_bytes on the
// given filesystem). Both inherit compute_ctl's stdio and must finish before Postgres starts.
import { stat } from "node:fs/promises";
import { log } from "../log.ts";
import { hostPath } from "../util/host.ts";

export const SUDO = "/usr/bin/sudo";
export const RESIZE_SWAP = "/neonvm/bin/resize-swap";
export const SET_DISK_QUOTA = "/neonvm/bin/set-disk-quota";

/** Runs `argv` to its end; resolves with its exit description, or null for success. */
async function run(argv: string[]): Promise<string | null> {
  let p: ReturnType<typeof Bun.spawn>;
  try {
    p = Bun.spawn(argv, { stdin: "ignore", stdout: "inherit", stderr: "inherit" });
  } catch (err) {
    throw new Error("spawn() failed", { cause: err });
  }
  const code = await p.exited;
  if (code === 0) return null;
  return p.signalCode ? `signal ${p.signalCode}` : `exit status: ${code}`;
}

const mib = (bytes: number) => (bytes / (1 << 20)).toFixed(1);

/**
 * `sudo resize-swap --once <bytes>` (`--once` first: the script then deletes itself, so a
 * restarted compute_ctl cannot swapoff under a running Postgres). A failure with the script gone
 * is that case and is tolerated; any other failure is an error.
 */
export async function resizeSwap(sizeBytes: number): Promise<void> {
  const script = hostPath(RESIZE_SWAP);
  const what = `could not run \`${SUDO} ${RESIZE_SWAP} --once ${sizeBytes}\``;
  try {
    const failed = await run([hostPath(SUDO), script, "--once", String(sizeBytes)]);
    if (failed !== null) {
      const gone = await stat(script).then(
        () => false,
        (err: NodeJS.ErrnoException) => err.code === "ENOENT",
      );
      if (!gone) throw new Error(`process exited with ${failed}`);
      log.warn(
        'ignoring "not found" error from resize-swap to avoid swapoff while compute is running',
      );
    }
  } catch (err) {
    throw new Error("failed to resize swap", { cause: new Error(what, { cause: err }) });
  }
  log.info(`resized swap to ${sizeBytes} bytes (${mib(sizeBytes)} MiB)`);
}

/** `sudo set-disk-quota <KiB> <mountpoint>` (0 removes the quota); every failure is an error. */
export async function setDiskQuota(sizeBytes: number, mountpoint: string): Promise<void> {
  const kib = Math.floor(sizeBytes / 1024);
  try {
    const failed = await run([hostPath(SUDO), hostPath(SET_DISK_QUOTA), String(kib), mountpoint]);
    if (failed !== null) throw new Error(`process exited with ${failed}`);
  } catch (err) {
    throw new Error("failed to set disk quota", {
      cause: new Error(`could not run \`${SUDO} ${SET_DISK_QUOTA}\``, { cause: err }),
    });
  }
  log.info(`set disk quota to ${sizeBytes} bytes (${mib(sizeBytes)} MiB) on ${mountpoint}`);
}
