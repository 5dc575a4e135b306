// The sd_notify sender against a real unix datagram socket (a Python listener), path and
// abstract addresses alike, and the sockaddr_un it builds.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { openSdNotify, sockaddrUn } from "../../../src/util/sd-notify.ts";
import { startNotifyListener } from "../../support/notify-listener.ts";

const dir = mkdtempSync(join(tmpdir(), "sd-notify-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe("sockaddr_un", () => {
  test("a path ends with a NUL; an abstract name starts with one and has no terminator", () => {
    const p = sockaddrUn("/run/x");
    expect(p.len).toBe(2 + 6 + 1);
    expect([...p.addr.subarray(0, p.len)]).toEqual([1, 0, ...Buffer.from("/run/x"), 0]);
    const a = sockaddrUn("@name");
    expect(a.len).toBe(2 + 1 + 4);
    expect([...a.addr.subarray(0, a.len)]).toEqual([1, 0, 0, ...Buffer.from("name")]);
  });

  test("too long or empty addresses are refused", () => {
    expect(() => sockaddrUn(`/${"x".repeat(107)}`)).toThrow("longer than 107 bytes");
    expect(() => sockaddrUn(`/${"x".repeat(106)}`)).not.toThrow();
    expect(() => sockaddrUn("@")).toThrow("empty");
  });
});

describe("sending", () => {
  for (const kind of ["path", "abstract"] as const) {
    test(`datagrams arrive whole at a ${kind} socket`, async () => {
      const address =
        kind === "path"
          ? join(dir, "notify.sock")
          : `@compute_ctl-test-${process.pid}-${Date.now()}`;
      const listener = await startNotifyListener(address);
      try {
        const errors: string[] = [];
        const n = openSdNotify(address, (m) => errors.push(m));
        expect(n.send("READY=1\nSTATUS=running")).toBe(true);
        expect(n.send("STOPPING=1")).toBe(true);
        n.close();
        expect(n.send("STATUS=late")).toBe(false);
        expect(await listener.waitFor((ms) => ms.length >= 2)).toEqual([
          "READY=1\nSTATUS=running",
          "STOPPING=1",
        ]);
        expect(errors).toEqual([]);
      } finally {
        await listener.stop();
      }
    });
  }

  test("nobody listening: false and one clear message per failed send, no throw", () => {
    const errors: string[] = [];
    const n = openSdNotify(join(dir, "absent.sock"), (m) => errors.push(m));
    expect(n.send("READY=1")).toBe(false);
    n.close();
    expect(errors).toHaveLength(1);
    expect(errors[0]).toContain("No such file or directory");
  });

  test("addresses that are not unix sockets are refused", () => {
    expect(() => openSdNotify("vsock:2:1234", () => {})).toThrow("unsupported NOTIFY_SOCKET");
    expect(() => openSdNotify("relative.sock", () => {})).toThrow("unsupported NOTIFY_SOCKET");
  });
});
