// Runs the fake local_proxy (test/fakes/local-proxy.ts) as the test user, holding the lock on
// `pidfile`, and reads how many SIGHUPs it got and whether SIGTERM came.
import { join } from "node:path";
import type { Subprocess } from "bun";
import { collectStream, scriptForChild, spawnAs, waitFor } from "./proc.ts";

const FAKE = join(import.meta.dir, "../fakes/local-proxy.ts");

export interface FakeLocalProxy {
  proc: Subprocess;
  hups(): Promise<number>;
  terminated(): Promise<boolean>;
  stop(): Promise<void>;
}

export async function startFakeLocalProxy(pidfile: string): Promise<FakeLocalProxy> {
  const countfile = `${pidfile}.hups`;
  const proc = spawnAs([process.execPath, await scriptForChild(FAKE), pidfile, countfile]);
  collectStream(proc.stderr, { prefix: "[local_proxy] " });
  await waitFor(
    async () => {
      if (proc.exitCode !== null) throw new Error(`fake local_proxy exited with ${proc.exitCode}`);
      const pid = await Bun.file(pidfile)
        .text()
        .catch(() => "");
      return pid === String(proc.pid) && (await Bun.file(countfile).exists());
    },
    { what: "the fake local_proxy's pid file", timeoutMs: 10_000 },
  );
  return {
    proc,
    hups: async () => Number(await Bun.file(countfile).text()),
    terminated: () => Bun.file(`${countfile}.term`).exists(),
    async stop() {
      proc.kill("SIGKILL");
      await proc.exited;
    },
  };
}
