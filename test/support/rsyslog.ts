// A real rsyslogd (Debian's 8.2302) for tests: a main config like the compute image's (imuxsock
// on a private socket, everything else dropped, /etc/rsyslog.d/*.conf included from a directory
// of the test's), run in the foreground with its own pid file, and TCP listeners to receive what
// it forwards. The audit file sets workDirectory=/var/log/rsyslog, which must exist.
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { collectStream, trackProcess, waitFor } from "./proc.ts";

export function mainConfig(opts: { socket: string; includeDir: string }): string {
  return [
    'module(load="imuxsock" SysSock.Use="off")',
    `input(type="imuxsock" Socket="${opts.socket}")`,
    `include(file="${opts.includeDir}/*.conf" mode="optional")`,
    "*.* /dev/null",
    "",
  ].join("\n");
}

/** Debian's rsyslogd: on PATH, or in /usr/sbin, which a normal user's PATH leaves out. */
const RSYSLOGD =
  Bun.which("rsyslogd") ?? ["/usr/sbin/rsyslogd", "/sbin/rsyslogd"].find((p) => existsSync(p));

/** Why the real rsyslogd cannot run here (the tests skip with it), or null when it can. */
export function rsyslogdUnavailable(): string | null {
  if (!RSYSLOGD) return "rsyslogd is not installed (apt-get install rsyslog)";
  try {
    mkdirSync("/var/log/rsyslog", { recursive: true });
  } catch {
    return "/var/log/rsyslog (the audit file's workDirectory) is missing and this user cannot create it";
  }
  return null;
}

function rsyslogd(): string {
  const why = rsyslogdUnavailable();
  if (why || !RSYSLOGD) throw new Error(why ?? "rsyslogd is not installed");
  return RSYSLOGD;
}

/** `rsyslogd -N1 -f <conf>`: the config check. Resolves with the exit code and output. */
export async function checkConfig(conf: string): Promise<{ code: number; output: string }> {
  const p = Bun.spawn([rsyslogd(), "-N1", "-f", conf], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = [
    await new Response(p.stdout).text(),
    await new Response(p.stderr).text(),
    await p.exited,
  ];
  return { code, output: out + err };
}

export function startRsyslogd(conf: string, pidfile: string): Subprocess {
  const p = trackProcess(
    Bun.spawn([rsyslogd(), "-n", "-f", conf, "-i", pidfile], { stdout: "pipe", stderr: "pipe" }),
  );
  collectStream(p.stderr, { prefix: "[rsyslogd] " });
  collectStream(p.stdout, { prefix: "[rsyslogd stdout] " });
  return p;
}

export interface Collector {
  port: number;
  text(): string;
  lines(): string[];
  waitFor(pred: (line: string) => boolean, what: string, timeoutMs?: number): Promise<string>;
  stop(): void;
}

/** A TCP listener on 127.0.0.1 that keeps everything it receives. */
export function startCollector(): Collector {
  let buf = "";
  const server = Bun.listen({
    hostname: "127.0.0.1",
    port: 0,
    socket: {
      data(_s, data) {
        buf += new TextDecoder().decode(data);
      },
    },
  });
  const lines = () => buf.split("\n").filter((l) => l !== "");
  return {
    port: server.port,
    text: () => buf,
    lines,
    async waitFor(pred, what, timeoutMs = 20_000) {
      return waitFor(() => lines().find(pred), { what, timeoutMs });
    },
    stop: () => server.stop(true),
  };
}

export const rsyslogDir = (dir: string) => join(dir, "rsyslog.d");
