import { loadConfig } from '../config';
import { ensureSchedulesAt } from '../temporal/schedules';
import { loadTopology } from '../topology/topology';
import { registerDefaultSddcsAt, startServices, servicesStatus, stopServices, type ServiceStatus } from './embedded';
import { agentVcenterEnv } from './vcsim';

/** `npm run services -- start|stop|status` */
function print(rows: ServiceStatus[]): void {
  if (rows.length === 0) console.log('no embedded services');
  for (const r of rows)
    console.log(`${r.name.padEnd(22)} ${r.state.padEnd(9)} ${r.pid ? `pid ${r.pid}`.padEnd(11) : ''.padEnd(11)} ${r.url}`);
}

/** How to start each default SDDC's agent with its own vCenter: an agent reads it from its environment, not the catalog. */
function printAgentCommands(): void {
  const config = loadConfig();
  for (const sddc of loadTopology(config.topologyPath).sddcs) {
    const env = Object.entries(agentVcenterEnv(config, sddc.name)).map(([k, v]) => `${k}=${v}`);
    if (env.length > 0) console.log(`agent ${sddc.name.padEnd(16)} ${env.join(' ')} npm run agent -- ${sddc.name}`);
  }
}

async function main(): Promise<void> {
  const command = process.argv[2] ?? 'status';
  if (command === 'start') {
    print(await startServices());
    const config = loadConfig();
    if (config.signingKeyFile) console.log(`signing key            ${config.signingKeyFile} (workers here sign with it)`);
    if (config.trustedKeys) console.log(`trusted keys           ${config.trustedKeys} (agents here trust these)`);
    const sddcs = await registerDefaultSddcsAt().catch((err: Error) => {
      console.log(`default SDDCs          not registered (${err.message.split('\n')[0]})`);
      return [];
    });
    const added = sddcs.filter((s) => s.created).map((s) => s.name);
    const kept = sddcs.filter((s) => !s.created).map((s) => s.name);
    if (added.length > 0) console.log(`default SDDCs          registered ${added.join(', ')}`);
    if (kept.length > 0) console.log(`default SDDCs          already registered (left as they are): ${kept.join(', ')}`);
    // The lifecycle schedules exist from the start; they start work once a control worker polls.
    const schedules = await ensureSchedulesAt(loadConfig()).catch((err: Error) => {
      console.log(`schedules              not created (${err.message.split('\n')[0]}); the control worker creates them`);
      return [];
    });
    if (schedules.length > 0) console.log(`schedules              ${schedules.join(', ')}`);
    printAgentCommands();
  } else if (command === 'stop') print(await stopServices());
  else if (command === 'status') print(await servicesStatus());
  else throw new Error(`unknown services command "${command}": use start, stop or status`);
}

main().catch((err: Error) => {
  console.error(`vmhub services: ${err.message}`);
  process.exit(1);
});
