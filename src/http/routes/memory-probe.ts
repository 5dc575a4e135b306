// GET /testing/memory (internal), registered only with COMPUTE_CTL_TESTING_MEMORY_PROBE=1: full
// garbage collections, then the process's memory figures and the live objects by type. The soak
// bench reads it to tell garbage (gone after the collection) from memory that is still referenced.
import type { BytecodeOrderStats } from "bun:jsc";
import { Elysia } from "elysia";
import { operation } from "../route-doc.ts";

const GET_MEMORY_DOC = operation({
  operationId: "testingMemory",
  summary: "Memory after a full garbage collection (only with COMPUTE_CTL_TESTING_MEMORY_PROBE=1).",
  responses: { 200: { description: "Byte counts and live objects by type (JSON)." } },
});

/** The figures the route answers: bytes, and live object counts after the collection. */
export interface MemoryProbe {
  rss_before_gc: number;
  rss: number;
  heap_used: number;
  heap_total: number;
  external: number;
  array_buffers: number;
  object_count: number;
  protected_object_count: number;
  /** The 20 most numerous live object types. */
  object_types: Record<string, number>;
  /**
   * How many of the functions loaded so far the executable's bytecode profile (build.ts) had
   * placed among the used ones (`hot`) or not (`cold`); null when not run from an executable built
   * with a profile.
   */
  bytecode_order: BytecodeOrderStats | null;
}

export async function memoryProbe(): Promise<MemoryProbe> {
  const { heapStats, bytecodeOrderStats } = await import("bun:jsc");
  const rssBefore = process.memoryUsage.rss();
  // Twice, a moment apart: objects freed by finalizers in the first collection (sockets, native
  // buffers) are reclaimed by the second.
  Bun.gc(true);
  await Bun.sleep(100);
  Bun.gc(true);
  const m = process.memoryUsage();
  const h = heapStats();
  const types = Object.entries(h.objectTypeCounts)
    .sort((a, b) => b[1] - a[1])
    .slice(0, 20);
  return {
    rss_before_gc: rssBefore,
    rss: m.rss,
    heap_used: m.heapUsed,
    heap_total: m.heapTotal,
    external: m.external,
    array_buffers: m.arrayBuffers,
    object_count: h.objectCount,
    protected_object_count: h.protectedObjectCount,
    object_types: Object.fromEntries(types),
    bytecode_order: bytecodeOrderStats(),
  };
}

export const memoryProbeRoutes = (enabled: boolean) => {
  const app = new Elysia({ name: "routes:memory-probe" });
  if (!enabled) return app;
  return app.get("/testing/memory", async () => Response.json(await memoryProbe()), {
    detail: GET_MEMORY_DOC,
  });
};
