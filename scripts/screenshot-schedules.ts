import { chromium } from 'playwright-core';
import { loadConfig, type Config } from '../src/config';
import { ensureSchedulesAt, lifecycleSchedules } from '../src/temporal/schedules';

/**
 * `npx tsx scripts/screenshot-schedules.ts [out.png]`: the Temporal Web UI's Schedules page for vmhub's
 * namespace, taken by headless Chromium once it lists both lifecycle schedules (made sure of first) and
 * saved as a PNG (default /tmp/web-ui-schedules.png). Needs the services (`npm run services -- start`).
 */

/** The embedded Web UI: TEMPORAL_UI_PORT, else the dev server's gRPC port + 1000, as the services start it. */
export function webUiUrl(config: Config, env: NodeJS.ProcessEnv = process.env): string {
  const port = env.TEMPORAL_UI_PORT ?? String(Number(config.temporal.address.split(':').at(-1) ?? 7233) + 1000);
  return `http://127.0.0.1:${port}`;
}

/** Opens the Schedules page, waits until every vmhub schedule ID is shown, saves the screenshot; returns the IDs shown. */
export async function screenshotSchedules(options: { webUi: string; namespace: string; out: string }): Promise<string[]> {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM_PATH ?? '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update'],
  });
  try {
    const page = await browser.newPage({ viewport: { width: 1400, height: 800 } });
    await page.goto(`${options.webUi}/namespaces/${encodeURIComponent(options.namespace)}/schedules`);
    const shown: string[] = [];
    for (const { scheduleId } of lifecycleSchedules()) {
      await page.getByText(scheduleId, { exact: true }).first().waitFor({ timeout: 30_000 });
      shown.push(scheduleId);
    }
    await page.screenshot({ path: options.out, fullPage: true });
    return shown;
  } finally {
    await browser.close();
  }
}

async function main(): Promise<void> {
  const config = loadConfig();
  const out = process.argv[2] ?? '/tmp/web-ui-schedules.png';
  await ensureSchedulesAt(config);
  const shown = await screenshotSchedules({ webUi: webUiUrl(config), namespace: config.temporal.namespace, out });
  console.log(`${out}: the Schedules page lists ${shown.join(', ')}`);
}

if (require.main === module) {
  main().catch((err: Error) => {
    console.error(`screenshot-schedules: ${err.message}`);
    process.exit(1);
  });
}
