// Dynamic ports for tests. A port is free when it can be bound on 127.0.0.1 and on :: (compute_ctl
// listens on :: for both families). Between closing our probe and the caller binding it another
// process may take it; that race is accepted.
import { createServer } from "node:net";

// Ports already handed out in this process: two callers asking back to back must not get the same
// one just because the first has not bound it yet.
const handedOut = new Set<number>();

function tryListen(host: string, port: number, ipv6Only = false): Promise<number | Error> {
  return new Promise((resolve) => {
    const server = createServer();
    server.unref();
    server.once("error", (err) => resolve(err));
    server.listen({ host, port, ipv6Only, exclusive: true }, () => {
      const addr = server.address();
      const bound = typeof addr === "object" && addr ? addr.port : 0;
      server.close(() => resolve(bound));
    });
  });
}

function code(err: Error): string | undefined {
  return (err as NodeJS.ErrnoException).code;
}

/** A TCP port that is currently free on both 127.0.0.1 and ::. */
export async function freePort(): Promise<number> {
  let lastError: Error | undefined;
  for (let attempt = 0; attempt < 50; attempt++) {
    const v4 = await tryListen("127.0.0.1", 0);
    if (v4 instanceof Error) throw new Error("cannot bind 127.0.0.1:0", { cause: v4 });
    if (handedOut.has(v4)) continue;
    const v6 = await tryListen("::", v4, true);
    if (v6 instanceof Error) {
      // No IPv6 on this host: the IPv4 check is all there is.
      if (code(v6) === "EAFNOSUPPORT" || code(v6) === "EADDRNOTAVAIL") {
        handedOut.add(v4);
        return v4;
      }
      lastError = v6;
      continue;
    }
    handedOut.add(v4);
    return v4;
  }
  throw new Error("no port free on both 127.0.0.1 and :: after 50 attempts", { cause: lastError });
}
