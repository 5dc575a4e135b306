// The floor for the early-signal test: a compiled Bun program whose first statement installs the
// handlers. A signal that ends it by the signal arrived before Bun ran any JavaScript, which no
// program can change; compute_ctl should do no worse.
for (const s of ["SIGINT", "SIGTERM", "SIGQUIT"] as const) process.on(s, () => process.exit(1));
setInterval(() => {}, 1000);
