// Forwards a Postgres child's stderr (the postmaster or `--sync-safekeepers`) to our stderr the
// way the reference's handle_postgres_logs does: the lines of one multi-line record are joined
// with U+200B (zero width space) into ONE line prefixed `PG:`, so log shippers keep a record
// together and can tell Postgres lines from compute_ctl's.
import { log, writeRaw } from "../log.ts";

/** A line that starts a new Postgres log record (log_line_prefix begins with %m or %t). */
// \p{Nd}: the reference's Rust regex `\d` is Unicode-aware; JS `\d` is ASCII only.
const RECORD_START = /^\p{Nd}+-\p{Nd}{2}-\p{Nd}{2} \p{Nd}{2}:\p{Nd}{2}:\p{Nd}{2}/u;
const JOINER = "\u200B";
const NEWLINE = 0x0a;
const CR = 0x0d;

export interface ForwardOptions {
  /** Where a flushed record goes (default: raw on stderr through log.ts). Gets `PG:...\n`. */
  write?: (line: string) => void;
  /** Flush a buffered record after this long without a new line (default 100 ms). */
  flushMs?: number;
}

/**
 * Reads `stream` to its end and forwards it. The buffered record is flushed when the next line
 * starts a new record (timestamp), at EOF, on a read error, or after `flushMs` without a new line.
 * Resolves at EOF or after a read error (logged); never rejects.
 *
 * Unlike the reference, invalid UTF-8 is replaced (U+FFFD) instead of ending the forwarding: the
 * reference stops reading stderr then, and Postgres eventually blocks on a full pipe.
 */
export async function forwardPostgresLogs(
  stream: ReadableStream<Uint8Array>,
  opts: ForwardOptions = {},
): Promise<void> {
  const write = opts.write ?? writeRaw;
  const flushMs = opts.flushMs ?? 100;
  const decoder = new TextDecoder("utf-8", { fatal: false });

  let record: string[] = [];
  let timer: Timer | undefined;
  // Bytes of the line being received, split across chunks.
  let partial: Uint8Array[] = [];

  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (record.length === 0) return;
    const text = `PG:${record.join(JOINER)}\n`;
    record = [];
    try {
      write(text);
    } catch (err) {
      log.error("error while writing Postgres log output", { error: err });
    }
  };

  const onLine = (bytes: Uint8Array) => {
    // Like tokio's lines(): the terminator is "\n" or "\r\n".
    const end =
      bytes.length > 0 && bytes[bytes.length - 1] === CR ? bytes.length - 1 : bytes.length;
    const line = decoder.decode(bytes.subarray(0, end));
    if (RECORD_START.test(line)) flush();
    record.push(line);
    clearTimeout(timer);
    timer = setTimeout(flush, flushMs);
  };

  const takePartial = (tail?: Uint8Array): Uint8Array => {
    const parts = tail ? [...partial, tail] : partial;
    partial = [];
    if (parts.length === 1) return parts[0]!;
    return Buffer.concat(parts);
  };

  const reader = stream.getReader();
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let start = 0;
      for (let i = value.indexOf(NEWLINE); i !== -1; i = value.indexOf(NEWLINE, start)) {
        onLine(takePartial(value.subarray(start, i)));
        start = i + 1;
      }
      if (start < value.length) partial.push(value.slice(start));
    }
  } catch (err) {
    log.warn("error while reading Postgres log output", { error: err });
  } finally {
    // An unterminated last line is still a line (as tokio's lines() returns it at EOF).
    if (partial.length > 0) onLine(takePartial());
    flush();
    reader.releaseLock();
  }
}
