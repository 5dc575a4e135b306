// systemd's readiness protocol (sd_notify): newline-separated `KEY=value` assignments sent as one
// datagram to the unix socket named by NOTIFY_SOCKET, a path or, with a leading `@`, a name in
// the abstract namespace. Neither Bun's sockets nor node:dgram speak unix datagrams, so the
// socket is libc's, through bun:ffi (linux only; elsewhere systemd does not exist).
import { dlopen, FFIType, read } from "bun:ffi";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(sockaddr_un.sun_path) on linux. */
const SUN_PATH_MAX = 108;

/**
 * `struct sockaddr_un` for `address` and the length to pass with it. A path ends with a NUL; an
 * abstract name (`@name`) starts with one and the length covers only the bytes used.
 */
export function sockaddrUn(address: string): { addr: Uint8Array; len: number } {
  if (address === "" || address === "@") throw new Error("empty socket address");
  const abstract = address.startsWith("@");
  const name = new TextEncoder().encode(abstract ? address.slice(1) : address);
  // A path needs room for its terminating NUL; an abstract name for its leading one.
  if (name.length + 1 > SUN_PATH_MAX) {
    throw new Error(`socket address longer than ${SUN_PATH_MAX - 1} bytes`);
  }
  const addr = new Uint8Array(2 + SUN_PATH_MAX);
  new DataView(addr.buffer).setUint16(0, AF_UNIX, true);
  addr.set(name, abstract ? 3 : 2);
  return { addr, len: 2 + 1 + name.length };
}

export interface SdNotifier {
  /** Sends one datagram of assignments (`READY=1\nSTATUS=running`); false, and logged, on failure. */
  send(state: string): boolean;
  close(): void;
}

type Libc = ReturnType<typeof openLibc>;
let libc: Libc | null = null;

function openLibc() {
  return dlopen("libc.so.6", {
    socket: { args: [FFIType.i32, FFIType.i32, FFIType.i32], returns: FFIType.i32 },
    sendto: {
      args: [FFIType.i32, FFIType.ptr, FFIType.u64, FFIType.i32, FFIType.ptr, FFIType.u32],
      returns: FFIType.i64,
    },
    close: { args: [FFIType.i32], returns: FFIType.i32 },
    __errno_location: { args: [], returns: FFIType.ptr },
    strerror: { args: [FFIType.i32], returns: FFIType.cstring },
  }).symbols;
}

function lastError(c: Libc): string {
  const at = c.__errno_location();
  if (at === null) return "unknown error";
  const errno = read.i32(at, 0);
  return `${String(c.strerror(errno))} (errno ${errno})`;
}

/**
 * A sender for the socket `address` (NOTIFY_SOCKET's value). Throws when the address is not a
 * unix socket address this can use or the socket cannot be created.
 */
export function openSdNotify(address: string, onError: (message: string) => void): SdNotifier {
  if (process.platform !== "linux") throw new Error("NOTIFY_SOCKET is only supported on linux");
  if (!address.startsWith("/") && !address.startsWith("@")) {
    throw new Error(`unsupported NOTIFY_SOCKET address ${JSON.stringify(address)}`);
  }
  const { addr, len } = sockaddrUn(address);
  libc ??= openLibc();
  const c = libc;
  // CLOEXEC: Postgres and the other children must not inherit it.
  let fd = c.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`cannot create a unix datagram socket: ${lastError(c)}`);
  return {
    send(state) {
      if (fd < 0) return false;
      const bytes = new TextEncoder().encode(state);
      // Never block the event loop on a full receive queue.
      const n = c.sendto(fd, bytes, bytes.length, MSG_DONTWAIT | MSG_NOSIGNAL, addr, len);
      if (Number(n) === bytes.length) return true;
      onError(`could not notify systemd at ${address}: ${lastError(c)}`);
      return false;
    },
    close() {
      if (fd >= 0) c.close(fd);
      fd = -1;
    },
  };
}
