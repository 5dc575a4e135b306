// The basebackup child's side (see basebackup-child.ts): read the job from stdin, run one attempt,
// report on stdout, exit. EOF on stdin at any moment (compute_ctl gone, SIGKILL included) ends
// the process at once, mid-extraction too: the extraction awaits every write, so the event loop
// sees the EOF between two chunks. The process also carries the kernel's parent-death signal
// (util/spawn.ts).
import { configureLogging, type Fields } from "../log.ts";
import { textLines } from "../util/streams.ts";
import { sourceOfJob, tryGetBasebackup } from "./basebackup.ts";
import {
  encodeError,
  PARENT_GONE_EXIT,
  type WorkerEvent,
  type WorkerJob,
} from "./basebackup-child.ts";

const PROGRESS_EVERY_MS = 100;

let outbox: Promise<unknown> = Promise.resolve();

/** Queues `ev` on stdout, in order; resolves once it (and all before it) has been written. */
function send(ev: WorkerEvent): Promise<unknown> {
  const line = `${JSON.stringify(ev)}\n`;
  outbox = outbox.then(() => Bun.write(Bun.stdout, line)).catch(() => undefined);
  return outbox;
}

/** Log fields as JSON keeps them: an Error by its message. */
function plainFields(fields: Fields | undefined): Fields | undefined {
  if (!fields) return undefined;
  const out: Fields = {};
  for (const k in fields) {
    const v = fields[k];
    out[k] = v instanceof Error ? v.message : v;
  }
  return out;
}

/** The child's whole life; returns its exit code. */
export async function runBasebackupWorker(): Promise<number> {
  configureLogging({
    level: "trace",
    forward: (level, message, fields) => {
      void send({ t: "log", level, message, fields: plainFields(fields) });
    },
  });
  const input = textLines(Bun.stdin.stream(), "drop");
  const first = await input.next();
  if (first.done) return PARENT_GONE_EXIT;
  const job = JSON.parse(first.value) as WorkerJob;
  const deadline = new AbortController();
  void (async () => {
    try {
      for (let r = await input.next(); !r.done; r = await input.next()) {
        if (r.value === "abort") {
          deadline.abort(new Error(`deadline of ${job.timeoutMs} ms has elapsed`));
        }
      }
    } catch {
      // a broken stdin is a gone parent too
    }
    process.exit(PARENT_GONE_EXIT);
  })();

  let lastProgress = 0;
  try {
    const m = await tryGetBasebackup(sourceOfJob(job.source), job.pgdata, {
      timeoutMs: job.timeoutMs,
      deadline: deadline.signal,
      onConnected: (connectMicros) => void send({ t: "connected", connectMicros }),
      onFirstByte: () => void send({ t: "first" }),
      onBytes: (n) => {
        const now = performance.now();
        if (now - lastProgress < PROGRESS_EVERY_MS) return;
        lastProgress = now;
        void send({ t: "bytes", n });
      },
    });
    await send({ t: "done", ...m });
    return 0;
  } catch (err) {
    await send({ t: "error", chain: encodeError(err) });
    return 1;
  }
}
