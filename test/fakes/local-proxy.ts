// A stand-in for local_proxy's pid-file behaviour: `bun local-proxy.ts <pidfile> <countfile>`
// takes an exclusive flock on <pidfile> (as local_proxy does, via flock(2), held for its life),
// writes its pid with no newline, and counts SIGHUPs into <countfile>. SIGTERM writes
// "terminated" to <countfile>.term and exits 0. Without the lock it exits 3.

import { dlopen, FFIType } from "bun:ffi";
import { ftruncateSync, openSync, writeFileSync, writeSync } from "node:fs";

const [pidfile, countfile] = process.argv.slice(2);
if (!pidfile || !countfile) {
  console.error("usage: local-proxy.ts <pidfile> <countfile>");
  process.exit(2);
}
const libc = dlopen("libc.so.6", {
  flock: { args: [FFIType.i32, FFIType.i32], returns: FFIType.i32 },
});
const fd = openSync(pidfile, "w");
if (libc.symbols.flock(fd, 2 | 4) !== 0) {
  console.error(`could not lock ${pidfile}`);
  process.exit(3);
}
ftruncateSync(fd, 0);
writeSync(fd, String(process.pid));
let hups = 0;
writeFileSync(countfile, "0");
process.on("SIGHUP", () => {
  hups++;
  writeFileSync(countfile, String(hups));
});
process.on("SIGTERM", () => {
  writeFileSync(`${countfile}.term`, "terminated");
  process.exit(0);
});
// Stay alive (the descriptor, and with it the lock, lives as long as the process).
setInterval(() => {}, 1 << 30);
