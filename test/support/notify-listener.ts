// A systemd-style notification listener for tests: a unix datagram socket (a path, or `@name` in
// the abstract namespace) bound by a small Python program that reports every datagram with the
// sender's pid (SO_PASSCRED), as systemd itself sees it.
import { chmodSync } from "node:fs";

const LISTENER = `
import json, os, socket, struct, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
if addr.startswith("@"):
    s.bind("\\0" + addr[1:])
else:
    s.bind(addr)
    os.chmod(addr, 0o777)
print(json.dumps({"listening": True}), flush=True)
while True:
    data, anc, _flags, _addr = s.recvmsg(65536, socket.CMSG_SPACE(12))
    pid = None
    for level, kind, payload in anc:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iii", payload[:12])[0]
    print(json.dumps({"message": data.decode(), "pid": pid}), flush=True)
`;

export interface Notification {
  message: string;
  /** The sending process, from the kernel's credentials. */
  pid: number | null;
}

export interface NotifyListener {
  address: string;
  received: Notification[];
  /** Messages in arrival order. */
  messages(): string[];
  /** Resolves with the messages once `done(messages)` holds (10 s at most). */
  waitFor(done: (messages: string[]) => boolean, timeoutMs?: number): Promise<string[]>;
  stop(): Promise<void>;
}

export async function startNotifyListener(address: string): Promise<NotifyListener> {
  const proc = Bun.spawn(["python3", "-c", LISTENER, address], {
    stdout: "pipe",
    stderr: "inherit",
  });
  const received: Notification[] = [];
  let listening: () => void = () => {};
  const ready = new Promise<void>((r) => {
    listening = r;
  });
  void (async () => {
    let buf = "";
    for await (const chunk of proc.stdout as AsyncIterable<Uint8Array>) {
      buf += new TextDecoder().decode(chunk);
      for (let nl = buf.indexOf("\n"); nl !== -1; nl = buf.indexOf("\n")) {
        const line = JSON.parse(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
        if (line.listening) listening();
        else received.push(line);
      }
    }
  })();
  const timeout = setTimeout(() => proc.kill(), 10_000);
  await Promise.race([
    ready,
    proc.exited.then((code) => {
      throw new Error(`notification listener exited with ${code} before listening`);
    }),
  ]);
  clearTimeout(timeout);
  if (!address.startsWith("@")) chmodSync(address, 0o777);
  const messages = () => received.map((r) => r.message);
  return {
    address,
    received,
    messages,
    async waitFor(done, timeoutMs = 10_000) {
      const deadline = performance.now() + timeoutMs;
      while (!done(messages())) {
        if (performance.now() > deadline) {
          throw new Error(`notifications so far: ${JSON.stringify(messages())}`);
        }
        await Bun.sleep(20);
      }
      return messages();
    },
    async stop() {
      proc.kill();
      await proc.exited;
    },
  };
}
