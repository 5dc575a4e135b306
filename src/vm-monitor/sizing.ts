// The vm-monitor's arithmetic: the memory threshold above which it asks for more memory, and the
// file cache size it gives a VM of a given size. Pure functions over byte counts.

export const MiB = 1024 * 1024;

/** Memory the kernel keeps for itself; subtracted from sizes the agent reports, never from MemTotal. */
export const SYS_BUFFER_BYTES = 100 * MiB;
/** At least this fraction of memory stays above the threshold: threshold = 85% of the total. */
export const CGROUP_MIN_OVERHEAD_FRACTION = 0.15;
/** A downscale must leave this much room between the current usage and the new threshold. */
export const DOWNSCALE_THRESHOLD_BUFFER_BYTES = 100 * MiB;

/** The file cache takes at most this fraction of memory... */
const LFC_RESOURCE_MULTIPLIER = 0.75;
/** ...and leaves at least this much memory to everything else... */
const LFC_MIN_REMAINING_BYTES = 256 * MiB;
/** ...plus this fraction of the cache size on top. */
const LFC_SPREAD_FACTOR = 0.1;

/** The threshold for `totalBytes` of memory: floor(0.85 × total). */
export function cgroupThreshold(totalBytes: number): number {
  return Math.floor(totalBytes * (1 - CGROUP_MIN_OVERHEAD_FRACTION));
}

/**
 * The file cache size for `totalBytes` of memory, in whole MiB (as bytes), before the
 * `neon.max_file_cache_size` cap: the smaller of 75% of the total and what remains after 256 MiB
 * once that remainder also covers a 10% spread; 0 when the total is 256 MiB or less.
 */
export function lfcSize(totalBytes: number): number {
  const available = Math.max(0, totalBytes - LFC_MIN_REMAINING_BYTES);
  if (available === 0) return 0;
  const fromSpread = Math.max(0, Math.trunc(available / (1 + LFC_SPREAD_FACTOR)));
  const fromNormal = Math.trunc(totalBytes * LFC_RESOURCE_MULTIPLIER);
  const bytes = Math.min(fromSpread, fromNormal);
  return Math.floor(bytes / MiB) * MiB;
}

/** Memory usable by Postgres when the agent says the VM has `memBytes`: mem − 100 MiB, at least 0. */
export function usableMemory(memBytes: number): number {
  return Math.max(0, memBytes - SYS_BUFFER_BYTES);
}

/** Bytes as MiB for messages: at most one decimal, no trailing `.0` (6878.2, 3996). */
export function mib(bytes: number): string {
  return String(Math.round((bytes / MiB) * 10) / 10);
}
