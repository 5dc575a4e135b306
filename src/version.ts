// Build-time constants. build.ts replaces these `process.env.*` reads with literals through
// `define`; when running from source they fall back to the environment or to defaults.
export const VERSION: string = process.env.COMPUTE_CTL_VERSION ?? "0.1.0-dev";
/** The reference's compile-time BUILD_TAG: used in metrics and in remote-extension paths. */
export const BUILD_TAG: string = process.env.BUILD_TAG ?? "latest";
/** The target the binary was built for, e.g. `bun-linux-x64`; `source` when not compiled. */
export const BUILD_TARGET: string = process.env.COMPUTE_CTL_TARGET ?? "source";
