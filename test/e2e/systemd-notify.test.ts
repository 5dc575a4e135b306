// systemd readiness (Type=notify) through the compiled binary: a datagram listener stands in for
// systemd on NOTIFY_SOCKET, a path or an abstract name, and sees every message with its sender.
import { afterAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { jsonOf } from "../support/compute.ts";
import { type NotifyListener, startNotifyListener } from "../support/notify-listener.ts";
import { cleanup, makeUserDir } from "../support/proc.ts";
import {
  expectNothingLeft,
  type Started,
  start,
  statusOf,
  terminate,
  waitStatus,
} from "../support/started.ts";

setDefaultTimeout(90_000);
afterAll(cleanup);

async function postmasterPid(s: Started): Promise<number> {
  const pid = await readFile(join(s.stack.pgdata, "postmaster.pid"), "utf8");
  return Number(pid.split("\n")[0]);
}

/** The environment a running process was started with. */
async function environOf(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/environ`, "utf8")).split("\0").filter(Boolean);
}

/** Every datagram came from compute_ctl itself, none from Postgres or another child. */
function expectOnlyFrom(listener: NotifyListener, s: Started): void {
  expect(listener.received.length).toBeGreaterThan(0);
  expect(listener.received.filter((r) => r.pid !== s.compute.proc.pid)).toEqual([]);
}

describe("NOTIFY_SOCKET", () => {
  test("a path socket: STATUS per change, READY=1 at running, STOPPING=1 at /terminate; children never see it", async () => {
    const dir = await makeUserDir("notify-");
    const listener = await startNotifyListener(join(dir, "notify.sock"));
    try {
      const s = await start({ mode: "Replica", env: { NOTIFY_SOCKET: listener.address } });
      await waitStatus(s, "running");
      await listener.waitFor((m) => m.some((x) => x.includes("READY=1")));
      const pg = await postmasterPid(s);
      expect((await environOf(pg)).filter((e) => e.startsWith("NOTIFY_SOCKET="))).toEqual([]);
      expect(await environOf(s.compute.proc.pid)).toContain(`NOTIFY_SOCKET=${listener.address}`);

      expect((await terminate(s, "fast")).code).toBe(200);
      expect(await s.compute.exited).toBe(0);
      await expectNothingLeft(s);
      await Bun.sleep(200);
      expect(listener.messages()).toEqual([
        "STATUS=empty",
        "STATUS=init",
        "READY=1\nSTATUS=running",
        "STOPPING=1\nSTATUS=termination_pending_fast",
        "STATUS=terminated",
      ]);
      expectOnlyFrom(listener, s);
    } finally {
      await listener.stop();
    }
  });

  test("an abstract socket (@name) and an Empty compute: READY=1 only once /configure has it running", async () => {
    const listener = await startNotifyListener(`@compute_ctl-e2e-${process.pid}-${Date.now()}`);
    try {
      const s = await start({
        mode: "Replica",
        viaConfigure: true,
        env: { NOTIFY_SOCKET: listener.address },
      });
      expect((await statusOf(s)).status).toBe("empty");
      await listener.waitFor((m) => m.length >= 1);
      await Bun.sleep(300);
      expect(listener.messages()).toEqual(["STATUS=empty"]);
      const r = await s.compute.post("/configure", s.token, {
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ spec: s.stack.spec, compute_ctl_config: { jwks: { keys: [] } } }),
      });
      expect(r.status).toBe(200);
      expect((await jsonOf(r)).status).toBe("running");
      await listener.waitFor((m) => m.some((x) => x.includes("READY=1")));
      expect(listener.messages()).toEqual([
        "STATUS=empty",
        "STATUS=configuration_pending",
        "STATUS=init",
        "READY=1\nSTATUS=running",
      ]);

      // systemd stops a service with SIGTERM: compute_ctl says it is stopping, then exits.
      s.compute.proc.kill("SIGTERM");
      expect(await s.compute.exited).toBe(1);
      await expectNothingLeft(s);
      await Bun.sleep(200);
      expect(listener.messages().slice(4)).toEqual(["STOPPING=1"]);
      expectOnlyFrom(listener, s);
    } finally {
      await listener.stop();
    }
  });

  test("a socket nobody listens on costs a WARN, never the start", async () => {
    const dir = await makeUserDir("notify-absent-");
    const s = await start({ mode: "Replica", env: { NOTIFY_SOCKET: join(dir, "absent.sock") } });
    await waitStatus(s, "running");
    expect((await terminate(s, "immediate")).code).toBe(200);
    expect(await s.compute.exited).toBe(0);
    await expectNothingLeft(s);
    expect(s.compute.stderr.text).toMatch(/WARN could not notify systemd at .*absent\.sock: /);
  });
});
