// What both dashboards share: the data source, the variables, the dashboard settings and link,
// the look of each panel kind, and the link that opens a pair in the drill-down.
import * as cog from '@grafana/grafana-foundation-sdk/cog';
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as prometheus from '@grafana/grafana-foundation-sdk/prometheus';
import * as stat from '@grafana/grafana-foundation-sdk/stat';
import * as table from '@grafana/grafana-foundation-sdk/table';
import * as timeseries from '@grafana/grafana-foundation-sdk/timeseries';

/** Every panel, query and query variable reads from the dashboard's data source variable; nothing
 * names a data source by uid. */
export const DATASOURCE = { type: 'prometheus', uid: '${datasource}' } as const;

// ------------------------------------------------------------------------------- dashboard

/** A dashboard with the settings and the variables both share (`sharedVariables`); its own
 * variables come after those. */
export function newDashboard(uid: string, title: string, description: string, from: string): dashboard.DashboardBuilder {
  return new dashboard.DashboardBuilder(title)
    .uid(uid)
    .description(description)
    .tags(['iperf3-monitor', 'network'])
    .editable()
    .tooltip(dashboard.DashboardCursorSync.Crosshair)
    .fiscalYearStartMonth(0)
    .liveNow(false)
    .refresh('1m')
    .version(1)
    .timezone('')
    .time({ from, to: 'now' })
    .annotation(
      new dashboard.AnnotationQueryBuilder()
        .builtIn(1)
        .datasource({ type: 'grafana', uid: '-- Grafana --' })
        .enable(true)
        .hide(true)
        .iconColor('rgba(0, 211, 255, 1)')
        .name('Annotations & Alerts')
        .type('dashboard'),
    )
    .link(
      new dashboard.DashboardLinkBuilder('iperf3-monitor')
        .type(dashboard.DashboardLinkType.Dashboards)
        .asDropdown(false)
        .icon('dashboard')
        .includeVars(true)
        .keepTime(true)
        .tags(['iperf3-monitor'])
        .targetBlank(false)
        .tooltip('')
        .url(''),
    )
    .variables(sharedVariables());
}

// ------------------------------------------------------------------------------- variables

export const datasourceVariable = () =>
  new dashboard.DatasourceVariableBuilder('datasource')
    .label('Data source')
    .type('prometheus')
    .hide(dashboard.VariableHide.DontHide)
    .regex('')
    .multi(false)
    .includeAll(false);

const RUN_WINDOWS = [
  ['15m', '900'],
  ['30m', '1800'],
  ['1h', '3600'],
  ['2h', '7200'],
  ['6h', '21600'],
] as const;

/** The result window, in seconds: PromQL needs it as a range (`[${run_window}s]`) and as a number. */
export const runWindowVariable = () =>
  new dashboard.CustomVariableBuilder('run_window')
    .label('Result window')
    .description(
      'How long a result stays on the dashboard after its test. At least the CronJob interval times ' +
        'iperf3_monitor_cycle_runs, plus one interval of slack (default schedule: 5m x 1 run + slack = 15m). ' +
        'The value is in seconds; the text is what the picker shows.',
    )
    .values(RUN_WINDOWS.map(([text, value]) => `${text} : ${value}`).join(', '))
    .current({ selected: true, text: RUN_WINDOWS[0][0], value: RUN_WINDOWS[0][1] })
    .options(RUN_WINDOWS.map(([text, value], i) => ({ selected: i === 0, text, value })))
    .hide(dashboard.VariableHide.DontHide)
    .includeAll(false)
    .multi(false);

/** The variables of both dashboards, first in each. A variable that every pair query filters on
 * goes here, and its matcher into `pairScope` (promql.ts). */
export const sharedVariables = () => [
  datasourceVariable(),
  runWindowVariable(),
  clusterVariable(),
  ipFamilyVariable(),
  networkVariable(),
  zoneVariable(),
];

/** A `label_values(selector, label)` variable, refreshed with the time range, sorted naturally. */
export function labelValuesVariable(name: string, label: string, query: string): dashboard.QueryVariableBuilder {
  return new dashboard.QueryVariableBuilder(name)
    .label(label)
    .datasource(DATASOURCE)
    .query({ query, refId: 'PrometheusVariableQueryEditor-VariableQuery', qryType: 1 })
    .hide(dashboard.VariableHide.DontHide)
    .includeAll(false)
    .multi(false)
    .options([])
    .refresh(dashboard.VariableRefresh.OnTimeRangeChanged)
    .regex('')
    .sort(dashboard.VariableSort.NaturalAsc);
}

/** All = `.*`, so that All also matches series without the label. */
export const clusterVariable = () =>
  labelValuesVariable('cluster', 'Cluster', 'label_values(iperf3_test_success, cluster)')
    .includeAll(true)
    .allValue('.*')
    .description("The job's --cluster label. All matches series without the label too.");

/** One family at a time: a pair has a series per family, and a matrix shows one cell per pair. */
export const ipFamilyVariable = () =>
  labelValuesVariable('ip_family', 'IP family', 'label_values(iperf3_test_success{cluster=~"$cluster"}, ip_family)')
    .description(
      'IP family of the tests shown (--ip-families): each family of a dual-stack cluster is measured in rounds ' +
        'of its own. A single-stack cluster has one.',
    );

/** One network at a time, like the family: with server.podNetwork.enabled a pair has a series on
 * the host network and one on the pod network. The CNI-cost matrix reads both, whatever this is. */
export const networkVariable = () =>
  labelValuesVariable('network', 'Network', 'label_values(iperf3_test_success{cluster=~"$cluster"}, network)').description(
    'Network of the tests shown (--networks): host = the iperf3 servers on the node network (server.hostNetwork), ' +
      'pod = on the pod network, through the CNI. With server.podNetwork.enabled each is measured as a mesh of its own; ' +
      'a single-network install has one.',
  );

export const zoneVariable = () =>
  labelValuesVariable('zone', 'Source zone', 'label_values(iperf3_test_success{cluster=~"$cluster"}, source_zone)')
    .includeAll(true)
    .allValue('.*')
    .description('Zone of the source node, when the job labels zones. All matches series without the label too.');

/** Multi-valued; the overview repeats its matrices for each selected protocol. */
export const protocolVariable = (selector: string) =>
  labelValuesVariable('protocol', 'Protocol', `label_values(${selector}, protocol)`).includeAll(true).multi(true);

// ------------------------------------------------------------------------------- queries

/** An instant query (stat and table panels). */
export const instant = (refId: string, expr: string) =>
  new prometheus.DataqueryBuilder()
    .datasource(DATASOURCE)
    .refId(refId)
    .expr(expr)
    .editorMode(prometheus.QueryEditorMode.Code)
    .instant();

/** An instant query whose result is a table (one row per series). */
export const tableQuery = (expr: string) => instant('A', expr).format(prometheus.PromQueryFormat.Table);

/** A range query (graphs). */
export const range = (refId: string, expr: string, legend: string) =>
  new prometheus.DataqueryBuilder()
    .datasource(DATASOURCE)
    .refId(refId)
    .expr(expr)
    .editorMode(prometheus.QueryEditorMode.Code)
    .range()
    .legendFormat(legend);

// ------------------------------------------------------------------------------- panels

/** Threshold steps: the first colour from -∞, then `[value, colour]` from each value up. */
export function thresholds(base: string, ...steps: Array<[number, string]>): dashboard.ThresholdsConfigBuilder {
  return new dashboard.ThresholdsConfigBuilder()
    .mode(dashboard.ThresholdsMode.Absolute)
    .steps([{ color: base, value: null }, ...steps.map(([value, color]) => ({ color, value }))]);
}

export const colorMode = (mode: dashboard.FieldColorModeId, fixedColor?: string) => {
  const color = new dashboard.FieldColorBuilder().mode(mode);
  return fixedColor === undefined ? color : color.fixedColor(fixedColor);
};

/** Value → text (and colour) mappings, e.g. `{ 0: ['failed', 'red'] }`. */
export function valueText(map: Record<number, readonly [text: string, color: string]>): dashboard.ValueMapping[] {
  const options: Record<string, dashboard.ValueMappingResult> = {};
  Object.entries(map).forEach(([value, [text, color]], index) => (options[value] = { text, color, index }));
  return [{ type: dashboard.MappingType.ValueToText, options }];
}

/** A stat panel showing the last value of each series of one instant query. */
export function statPanel(id: number, title: string, description: string, unit: string, expr: string, legend: string) {
  return new stat.PanelBuilder()
    .id(id)
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .withTarget(instant('A', expr).legendFormat(legend))
    .unit(unit)
    .colorScheme(colorMode(dashboard.FieldColorModeId.Thresholds))
    .thresholds(thresholds('blue'))
    .mappings([])
    .overrides([])
    .reduceOptions(new common.ReduceDataOptionsBuilder().calcs(['lastNotNull']).fields('').values(false))
    .orientation(common.VizOrientation.Auto)
    .textMode(common.BigValueTextMode.ValueAndName)
    .colorMode(common.BigValueColorMode.Value)
    .graphMode(common.BigValueGraphMode.None)
    .justifyMode(common.BigValueJustifyMode.Auto)
    .wideLayout(true)
    .showPercentChange(false)
    .percentChangeColorMode(common.PercentChangeColorMode.Standard);
}

/** A table panel of one instant table query. */
export function tablePanel(id: number, title: string, description: string, expr: string) {
  return new table.PanelBuilder()
    .id(id)
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .withTarget(tableQuery(expr))
    .mappings([])
    .align(common.FieldTextAlignment.Auto)
    .cellOptions({ type: common.TableCellDisplayMode.Auto })
    .inspect(false)
    .overrides([])
    .showHeader(true)
    .cellHeight(common.TableCellHeight.Sm)
    .frameIndex(0)
    .footer(new common.TableFooterOptionsBuilder().show(false).reducer(['sum']).countRows(false));
}

/** A graph of range queries: one step per test (a value holds until the next test). */
export function graphPanel(id: number, title: string, description: string, unit: string) {
  return new timeseries.PanelBuilder()
    .id(id)
    .title(title)
    .description(description)
    .datasource(DATASOURCE)
    .unit(unit)
    .colorScheme(colorMode(dashboard.FieldColorModeId.PaletteClassic))
    .drawStyle(common.GraphDrawStyle.Line)
    .lineInterpolation(common.LineInterpolation.StepAfter)
    .lineWidth(1)
    .fillOpacity(10)
    .pointSize(4)
    .showPoints(common.VisibilityMode.Never)
    .spanNulls(false)
    .axisPlacement(common.AxisPlacement.Auto)
    .axisSoftMin(0)
    .thresholds(thresholds('green'))
    .mappings([])
    .min(0)
    .overrides([])
    .legend(
      new common.VizLegendOptionsBuilder()
        .calcs(['lastNotNull', 'min', 'max'])
        .displayMode(common.LegendDisplayMode.Table)
        .placement(common.LegendPlacement.Bottom)
        .showLegend(true),
    )
    .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Multi).sort(common.SortOrder.Descending));
}

/** A row that is open: the panels after it, up to the next row, are its own. */
export const row = (id: number, title: string) => new dashboard.RowBuilder(title).id(id).collapsed(false);

/** A field override's property. */
export const property = (id: string, value: unknown): dashboard.DynamicConfigValue => ({ id, value });

// ------------------------------------------------------------------------------- links

/** A data link of a field: the foundation SDK 0.0.21 types `fieldConfig.defaults.links` as
 * dashboard links, but Grafana stores data links there (`title` and `url` only). */
export class DataLinkBuilder implements cog.Builder<dashboard.DashboardLink> {
  constructor(
    private readonly title: string,
    private readonly url: string,
  ) {}

  build(): dashboard.DashboardLink {
    return { title: this.title, url: this.url } as unknown as dashboard.DashboardLink;
  }
}

/** Opens the drill-down on one pair, keeping the data source, cluster, result window and time
 * range; the arguments are Grafana expressions for the source, destination and protocol. */
export function drilldownLink(source: string, destination: string, protocol: string): DataLinkBuilder {
  const keep = ['datasource', 'cluster', 'ip_family', 'network', 'run_window'].map((v) => `\${${v}:queryparam}`).join('&');
  return new DataLinkBuilder(
    `Open ${source} → ${destination}`,
    `/d/iperf3-monitor-drilldown/iperf3-monitor-pair-drill-down?var-source_node=${source}&var-destination_node=${destination}` +
      `&var-protocol=${protocol}&${keep}&\${__url_time_range}`,
  );
}

/** The link of a table row that names a pair in its `source_node`, `destination_node` and
 * `protocol` fields. */
export const rowDrilldownLink = () =>
  drilldownLink('${__data.fields.source_node}', '${__data.fields.destination_node}', '${__data.fields.protocol}');
