// Failpoints as the reference's testing builds have them (the `fail` crate plus Neon's `exit`),
// here behind the runtime testing switch COMPUTE_CTL_TESTING=1 instead of a build feature.
// Syntax: FAILPOINTS="name=actions;…", actions = `action[->action…]`,
// action = `[p%][cnt*]task[(arg)]`. Evaluated: `off`, `return[(arg)]`, `print[(msg)]`,
// `panic[(msg)]` (thrown as an Error) and `exit`; `sleep`, `delay`, `pause` and `yield` parse but do
// nothing, since no failpoint here can block.
import type { FailpointConfig } from "./api/requests.ts";
import { log } from "./log.ts";

type Task =
  | { kind: "off" }
  | { kind: "return"; arg: string | null }
  | { kind: "print"; arg: string | null }
  | { kind: "panic"; arg: string | null }
  | { kind: "inert"; name: string }
  | { kind: "exit" };

interface Action {
  task: Task;
  /** Probability, 1 = always (the crate accepts >100% too). */
  freq: number;
  /** Remaining triggers, or null for unlimited. */
  remaining: number | null;
}

const registry = new Map<string, Action[]>();
let enabled = false;

function parseTimeout(arg: string | null): void {
  if (arg === null) throw new Error("sleep require timeout");
  if (!/^\d+$/.test(arg)) throw new Error(`failed to parse timeout: invalid digit found in string`);
}

/** The fail crate's `Action::from_str`, with its error texts. */
function parseAction(text: string): Action {
  let remain = text.trim();
  let arg: string | null = null;
  const paren = remain.indexOf("(");
  if (paren !== -1) {
    const rest = remain.slice(paren + 1);
    if (!rest.endsWith(")")) throw new Error("parentheses do not match");
    arg = rest.slice(0, -1);
    remain = remain.slice(0, paren);
  }
  let freq = 1;
  const pct = remain.indexOf("%");
  if (pct !== -1) {
    const f = remain.slice(0, pct);
    if (!/^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(f)) {
      throw new Error("failed to parse frequency: invalid float literal");
    }
    freq = Number(f) / 100;
    remain = remain.slice(pct + 1);
  }
  let remaining: number | null = null;
  const star = remain.indexOf("*");
  if (star !== -1) {
    const c = remain.slice(0, star);
    if (!/^\d+$/.test(c)) throw new Error("failed to parse count: invalid digit found in string");
    remaining = Number(c);
    remain = remain.slice(star + 1);
  }
  let task: Task;
  switch (remain) {
    case "off":
      task = { kind: "off" };
      break;
    case "return":
    case "print":
    case "panic":
      task = { kind: remain, arg };
      break;
    case "sleep":
    case "delay":
      parseTimeout(arg);
      task = { kind: "inert", name: remain };
      break;
    case "pause":
    case "yield":
      task = { kind: "inert", name: remain };
      break;
    default:
      throw new Error(`unrecognized command ${JSON.stringify(remain)}`);
  }
  return { task, freq, remaining };
}

/** Neon's `apply_failpoint`: `exit` is a special action; anything else is fail-crate syntax. */
function applyFailpoint(name: string, actions: string): void {
  if (actions === "exit") {
    registry.set(name, [{ task: { kind: "exit" }, freq: 1, remaining: null }]);
    return;
  }
  const parsed = actions.split("->").map(parseAction);
  for (const a of parsed) {
    if (a.task.kind === "inert") {
      log.warn(`failpoint ${name}: action ${a.task.name} is accepted but does nothing here`);
    }
  }
  registry.set(name, parsed);
}

/** Whether failpoints can be configured at all (the /failpoints route answers 412 otherwise). */
export function failpointsEnabled(): boolean {
  return enabled;
}

/**
 * Reads FAILPOINTS at start. Only with COMPUTE_CTL_TESTING=1; otherwise a set FAILPOINTS is
 * ignored with a warning (a production compute must not be steerable by its environment).
 * Throws on a malformed value, as the reference panics at start.
 */
export function initFailpoints(env: Record<string, string | undefined>): void {
  enabled = env.COMPUTE_CTL_TESTING === "1";
  registry.clear();
  const value = env.FAILPOINTS;
  if (value === undefined) return;
  if (!enabled) {
    log.warn("FAILPOINTS is set but ignored: failpoints need COMPUTE_CTL_TESTING=1");
    return;
  }
  value.split(";").forEach((entry, i) => {
    // Empty entries (a trailing `;`) are skipped; the reference panics on them.
    if (entry.trim() === "") return;
    const eq = entry.indexOf("=");
    if (eq === -1) {
      throw new Error(
        `startup failpoints: missing action on the ${i + 1}th failpoint; try \`${entry}=return\``,
      );
    }
    const name = entry.slice(0, eq);
    const actions = entry.slice(eq + 1);
    try {
      applyFailpoint(name, actions);
    } catch (err) {
      throw new Error(
        `startup failpoints: failed to apply failpoint ${name}=${actions}: ${(err as Error).message}`,
      );
    }
    log.info(`failpoint ${name} set to ${actions}`);
  });
}

/**
 * For POST /failpoints: applies every entry in order, stopping at the first bad one (earlier ones
 * stay applied, as in the reference). Throws `failed to configure failpoints: …` (the route's
 * 400 text), or a plain error when failpoints are disabled (the route's 412).
 */
export function configureFailpoints(configs: FailpointConfig[]): void {
  if (!enabled) {
    throw new Error(
      "Cannot manage failpoints because neon was compiled without failpoints support",
    );
  }
  for (const fp of configs) {
    log.info(`cfg failpoint: ${fp.name} ${fp.actions}`);
    try {
      applyFailpoint(fp.name, fp.actions);
    } catch (err) {
      throw new Error(`failed to configure failpoints: ${(err as Error).message}`);
    }
  }
}

/**
 * Evaluates failpoint `name`: the first action that triggers decides. Returns `{ arg }` when it
 * says `return`, null otherwise (unset, `off`, or nothing triggered).
 */
export function evalFailpoint(name: string): { arg: string | null } | null {
  const actions = registry.get(name);
  if (!actions) return null;
  for (const a of actions) {
    if (a.remaining === 0) continue;
    if (a.freq < 1 && Math.random() >= a.freq) continue;
    if (a.remaining !== null) a.remaining--;
    const t = a.task;
    switch (t.kind) {
      case "return":
        return { arg: t.arg };
      case "print":
        log.info(t.arg ?? `failpoint ${name} executed.`);
        return null;
      case "panic":
        throw new Error(t.arg ?? `failpoint ${name} panic`);
      case "exit":
        log.info("Exit requested by failpoint");
        process.exit(1);
        break;
      default:
        return null;
    }
  }
  return null;
}

/** Whether failpoint `name` is set to `return` right now (`fail_point!(name, |_| …)`). */
export function failpoint(name: string): boolean {
  return evalFailpoint(name) !== null;
}

/** Clears every failpoint and the switch (tests). */
export function resetFailpoints(): void {
  registry.clear();
  enabled = false;
}
