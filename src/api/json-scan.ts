// What serde_json refuses but JSON.parse accepts, found in one pass over the text before it is
// parsed: a byte order mark, nesting 128 levels deep, lone surrogate escapes (all syntax errors,
// 400) and duplicate object keys, which are recorded so that the decoder can refuse them where
// serde refuses them (struct fields; a map keeps the last value).

/** serde_json's recursion limit: the 128th nested array or object is an error. */
export const MAX_DEPTH = 128;

export class JsonScanError extends Error {
  override name = "JsonSyntaxError";
}

type Seg = string | number;

interface Frame {
  kind: "object" | "array";
  /** Object: the keys seen so far. */
  keys: Set<string>;
  /** Object: the key whose value comes next; array: the index of the next item. */
  at: Seg;
  expectKey: boolean;
}

export interface ScanResult {
  /** `<object path>\0<key>` for every key that occurs more than once in its object. */
  duplicates: Set<string>;
}

/** A key for the duplicates set: the path of the object and the repeated key. */
export function duplicateKey(path: readonly Seg[], key: string): string {
  return `${JSON.stringify(path)}\0${key}`;
}

function position(text: string, i: number): string {
  let line = 1;
  let col = 1;
  for (let k = 0; k < i && k < text.length; k++) {
    if (text.charCodeAt(k) === 10) {
      line++;
      col = 1;
    } else col++;
  }
  return `at line ${line} column ${col}`;
}

const isHex = (c: number) => (c >= 48 && c <= 57) || (c >= 65 && c <= 70) || (c >= 97 && c <= 102);

/**
 * Scans JSON text. Throws JsonScanError for what serde_json refuses as syntax; anything else
 * malformed is left to JSON.parse to report (the scan then stops early).
 */
export function scanJson(text: string): ScanResult {
  const duplicates = new Set<string>();
  if (text.charCodeAt(0) === 0xfeff) {
    throw new JsonScanError(`expected value ${position(text, 0)}`);
  }
  const stack: Frame[] = [];
  const path = (): Seg[] => stack.slice(0, -1).map((f) => f.at);
  const n = text.length;
  let i = 0;
  while (i < n) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */ || c === 0x5b /* [ */) {
      if (stack.length + 1 >= MAX_DEPTH) {
        throw new JsonScanError(`recursion limit exceeded ${position(text, i + 1)}`);
      }
      stack.push({
        kind: c === 0x7b ? "object" : "array",
        keys: new Set(),
        at: 0,
        expectKey: c === 0x7b,
      });
      i++;
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      stack.pop();
      i++;
    } else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.kind === "object") top.expectKey = true;
      else if (top) top.at = (top.at as number) + 1;
      i++;
    } else if (c === 0x22 /* " */) {
      const start = i + 1;
      let hasEscape = false;
      i++;
      while (i < n) {
        const d = text.charCodeAt(i);
        if (d === 0x22) break;
        if (d !== 0x5c) {
          i++;
          continue;
        }
        hasEscape = true;
        if (text.charCodeAt(i + 1) !== 0x75 /* u */) {
          i += 2;
          continue;
        }
        const hex = text.slice(i + 2, i + 6);
        if (hex.length < 4 || ![...hex].every((h) => isHex(h.charCodeAt(0)))) return { duplicates };
        const unit = Number.parseInt(hex, 16);
        if (unit >= 0xdc00 && unit <= 0xdfff) {
          throw new JsonScanError(`lone leading surrogate in hex escape ${position(text, i + 6)}`);
        }
        if (unit >= 0xd800 && unit <= 0xdbff) {
          const next = text.slice(i + 6, i + 12);
          const low = /^\\u[0-9A-Fa-f]{4}$/.test(next) ? Number.parseInt(next.slice(2), 16) : -1;
          if (low < 0xdc00 || low > 0xdfff) {
            throw new JsonScanError(
              `lone leading surrogate in hex escape ${position(text, i + 6)}`,
            );
          }
          i += 12;
          continue;
        }
        i += 6;
      }
      if (i >= n) return { duplicates }; // unterminated: JSON.parse reports it
      const top = stack[stack.length - 1];
      if (top?.kind === "object" && top.expectKey) {
        const raw = text.slice(start, i);
        let key = raw;
        if (hasEscape) {
          try {
            key = JSON.parse(`"${raw}"`);
          } catch {
            return { duplicates };
          }
        }
        if (top.keys.has(key)) duplicates.add(duplicateKey(path(), key));
        top.keys.add(key);
        top.at = key;
        top.expectKey = false;
      }
      i++;
    } else {
      i++;
    }
  }
  return { duplicates };
}
