// Proves the dashboard type is strict: every `@ts-expect-error` below must meet an error, or
// tsc fails with "Unused '@ts-expect-error' directive". A schema upgrade that loosens a check
// therefore fails the dashboard check instead of silently accepting broken dashboards.
import type { CheckedDashboard, CheckedPanel } from './dashboard-types';

const datasource = { type: 'prometheus', uid: '${datasource}' } as const;

const stat: CheckedPanel = {
  type: 'stat',
  title: 'A valid stat panel',
  datasource,
  gridPos: { h: 4, w: 6, x: 0, y: 0 },
  targets: [{ datasource, refId: 'A', expr: 'vector(1)', instant: true }],
  fieldConfig: { defaults: { unit: 'bps' }, overrides: [] },
  options: {
    reduceOptions: { calcs: ['lastNotNull'] },
    orientation: 'auto',
    textMode: 'value',
    colorMode: 'value',
    graphMode: 'none',
    justifyMode: 'auto',
    wideLayout: true,
    showPercentChange: false,
    percentChangeColorMode: 'standard',
  },
};

export const valid: CheckedDashboard = {
  uid: 'valid',
  title: 'valid',
  schemaVersion: 39,
  templating: { list: [{ name: 'datasource', type: 'datasource', query: 'prometheus' }] },
  panels: [stat],
};

export const wrongFieldType: CheckedPanel = {
  ...stat,
  // @ts-expect-error gridPos.h is a number
  gridPos: { h: '4', w: 6, x: 0, y: 0 },
};

export const misspelledPanelField: CheckedPanel = {
  ...stat,
  // @ts-expect-error no such panel field
  gridpos: { h: 4, w: 6, x: 0, y: 0 },
};

export const unknownPanelType: CheckedPanel = {
  ...stat,
  // @ts-expect-error the old singlestat panel is gone
  type: 'singlestat',
};

export const badStatOption: CheckedPanel = {
  ...stat,
  // @ts-expect-error textMode is an enum of the stat panel's schema
  options: { ...stat.options, textMode: 'value_and_nam' },
};

export const hardCodedDatasource: CheckedPanel = {
  ...stat,
  // @ts-expect-error panels use the ${datasource} variable
  datasource: { type: 'prometheus', uid: 'P1809F7CD0C75ACF3' },
};

export const queryWithoutRefId: CheckedPanel = {
  ...stat,
  // @ts-expect-error every query needs a refId
  targets: [{ datasource, expr: 'vector(1)' }],
};

export const badThresholdsMode: CheckedPanel = {
  ...stat,
  // @ts-expect-error thresholds mode is absolute or percentage
  fieldConfig: { defaults: { thresholds: { mode: 'absolut', steps: [] } }, overrides: [] },
};

export const variableOnOtherDatasource: CheckedDashboard = {
  ...valid,
  templating: {
    list: [
      // @ts-expect-error query variables use the ${datasource} variable
      {
        name: 'source_node',
        type: 'query',
        datasource: { type: 'loki', uid: '${datasource}' },
        query: { query: 'label_values(iperf3_test_success, source_node)', refId: 'A' },
      },
    ],
  },
};

// @ts-expect-error schemaVersion is required
export const noSchemaVersion: CheckedDashboard = { uid: 'x', title: 'x', templating: { list: [] }, panels: [] };
