/** How the embedded services start one service. */
export interface ServiceSpec {
  name: string;
  port: number;
  command: string;
  args: string[];
  url: string;
  /** Folders the service writes to, created before it starts. */
  dirs: string[];
  /** Variables added to the service's environment. */
  env?: NodeJS.ProcessEnv;
}
