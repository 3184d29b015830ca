// The foundation SDK 0.0.21 writes Grafana 12 dashboards (schemaVersion 42) and fills in that
// version's defaults. Ours are for Grafana 10.4 and later (schemaVersion 39; Grafana migrates a
// dashboard up from its schemaVersion on load, never down) and are type-checked against
// @grafana/schema 11.6 (tests/dashboards/dashboard-types.ts), which rejects those defaults. So
// the JSON says only what the builders set: each removal below is a default the SDK adds.
import type * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';

export const SCHEMA_VERSION = 39;

/** Fields the SDK adds to every panel when they have their default value. */
function panelDefaults(panel: dashboard.Panel): void {
  if (panel.transparent === false) delete panel.transparent;
  // "h" is only read for repeated panels.
  if (panel.repeat === undefined) delete panel.repeatDirection;
  const options = panel.options as Record<string, unknown> | undefined;
  if (options?.showTypeIcons === false) delete options.showTypeIcons; // table
  if (panel.type === 'state-timeline') delete options?.perPage; // Grafana 12's pagination
}

/** `board` as Grafana 10.4 reads it. */
export function forGrafana10(board: dashboard.Dashboard): dashboard.Dashboard {
  board.schemaVersion = SCHEMA_VERSION;
  board.timepicker = {};
  // Grafana 12's "inControlsMenu" would move the link and the annotation toggle into a menu.
  board.links?.forEach((link) => delete link.placement);
  board.annotations?.list?.forEach((annotation) => delete annotation.placement);
  for (const variable of board.templating?.list ?? []) {
    delete variable.allowCustomValue; // true, Grafana's default
    if (variable.type !== 'interval') {
      delete variable.auto;
      delete variable.auto_min;
      delete variable.auto_count;
    }
    if (variable.type === 'datasource') {
      // The SDK's DatasourceVariableBuilder sets neither.
      variable.refresh = 1; // on dashboard load
      variable.options = [];
    }
  }
  for (const panel of board.panels ?? []) {
    panelDefaults(panel as dashboard.Panel);
    for (const nested of (panel as dashboard.RowPanel).panels ?? []) panelDefaults(nested);
  }
  return board;
}
