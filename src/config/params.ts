// The validated settings compute_ctl runs with: what the command line (cli.ts) produces and
// every layer below reads.
import type { LogFormat, LogLevelName } from "../log.ts";

export interface Params {
  pgbin: string;
  pgdata: string;
  connstr: URL;
  remoteExtBaseUrl: string | null;
  externalHttpPort: number;
  internalHttpPort: number;
  httpPort: number | null;
  privilegedRoleName: string;
  cgroup: string;
  filecacheConnstr: string;
  vmMonitorAddr: string;
  resizeSwapOnBind: boolean;
  setDiskQuotaForFs: string | null;
  configPath: string | null;
  specPath: string | null;
  controlPlaneUri: string | null;
  computeId: string;
  installedExtensionsCollectionInterval: number;
  dev: boolean;
  pgInitTimeout: number | null;
  lakebaseMode: boolean;
  logLevel: LogLevelName;
  logFormat: LogFormat;
}
