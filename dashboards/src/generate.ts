// Writes dashboards/*.json from the builders: `node out/generate.js DIR...` writes every
// dashboard into each DIR (scripts/generate-dashboards.sh passes dashboards/ and the chart's copy).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import { drilldown } from './drilldown';
import { forGrafana10 } from './grafana10';
import { overview } from './overview';

const DASHBOARDS: Record<string, () => dashboard.DashboardBuilder> = {
  'iperf3-overview.json': overview,
  'iperf3-drilldown.json': drilldown,
};

function render(board: dashboard.Dashboard): string {
  return `${JSON.stringify(board, null, 2)}\n`;
}

const dirs = process.argv.slice(2);
if (dirs.length === 0) {
  console.error('usage: node out/generate.js DIR...');
  process.exit(2);
}
for (const [file, build] of Object.entries(DASHBOARDS)) {
  const text = render(forGrafana10(build().build()));
  for (const dir of dirs) {
    writeFileSync(join(dir, file), text);
  }
}
