// Types for the three prom-client modules imported one by one (registry.ts says why): each file
// exports its class as module.exports, the same class the package's index types describe.
declare module "prom-client/lib/registry" {
  export { Registry as default } from "prom-client";
}
declare module "prom-client/lib/counter" {
  export { Counter as default } from "prom-client";
}
declare module "prom-client/lib/gauge" {
  export { Gauge as default } from "prom-client";
}
