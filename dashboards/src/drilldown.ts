// iperf3-monitor / Pair drill-down: every measurement between two nodes on one timeline.
import * as common from '@grafana/grafana-foundation-sdk/common';
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as statetimeline from '@grafana/grafana-foundation-sdk/statetimeline';
import {
  DATASOURCE,
  colorMode,
  graphPanel,
  labelValuesVariable,
  newDashboard,
  property,
  protocolVariable,
  range,
  row,
  thresholds,
  valueText,
} from './common';
import { type Matcher, type PairFilter, bitsPerSecond, eq, ifFresh, latest, pairScope, re } from './promql';

const PROTOCOLS = re('protocol', '$protocol');

/** The pair of the dashboard's variables, in one protocol or the selected ones. */
const pair = (protocol: Matcher = PROTOCOLS): PairFilter =>
  pairScope(eq('source_node', '$source_node'), eq('destination_node', '$destination_node'), protocol);
/** The same two nodes the other way round. */
const REVERSE = pairScope(eq('source_node', '$destination_node'), eq('destination_node', '$source_node'), PROTOCOLS);
const TCP = pair(eq('protocol', 'tcp'));
const UDP = pair(eq('protocol', 'udp'));

/** A pair metric's latest value at each step, while its test is recent. */
const pairValue = (metric: string, filter: PairFilter = pair()) => ifFresh(latest(metric, filter), filter);

const graph = (id: number, title: string, description: string, unit: string) =>
  graphPanel(id, title, description, unit).height(8).span(12);

/** A graph of one pair metric; the description names the metric. */
const pairGraph = (id: number, title: string, what: string, unit: string, metric: string, filter: PairFilter, legend: string) =>
  graph(id, title, `${what} (${metric}).`, unit).withTarget(range('A', pairValue(metric, filter), legend));

const throughput = graphPanel(
  1,
  'Throughput $source_node → $destination_node',
  'Received and sent throughput of each test of the pair, and the received throughput of the reverse direction for comparison.',
  'bps',
)
  .height(9)
  .span(24)
  .withTarget(range('A', ifFresh(bitsPerSecond(pair()), pair()), '{{protocol}} received'))
  .withTarget(range('B', ifFresh(`8 * ${latest('iperf3_sent_bytes_per_second', pair())}`, pair()), '{{protocol}} sent'))
  .withTarget(range('C', ifFresh(bitsPerSecond(REVERSE), REVERSE), '{{protocol}} received, reverse ($destination_node → $source_node)'))
  .overrideByQuery('C', [property('custom.lineStyle', { fill: 'dash', dash: [10, 10] })]);

const testResult = new statetimeline.PanelBuilder()
  .id(2)
  .title('Test result')
  .description(
    'Outcome of each test of the pair (iperf3_test_success) and, for failed tests, the reason (iperf3_test_failure). "skipped" means not tried: one of the two nodes had already failed slowly (timeout, unreachable) from two good peers in that run; the next run tries again.',
  )
  .datasource(DATASOURCE)
  .height(5)
  .span(24)
  .withTarget(range('A', pairValue('iperf3_test_success'), '{{protocol}}'))
  .withTarget(range('B', ifFresh(latest('iperf3_test_failure', pair(), ['reason']), pair()), '{{protocol}} failure: {{reason}}'))
  .colorScheme(colorMode(dashboard.FieldColorModeId.Thresholds))
  .thresholds(thresholds('red', [1, 'green']))
  .mappings(valueText({ 0: ['failed', 'red'], 1: ['ok', 'green'] }))
  .fillOpacity(70)
  .lineWidth(0)
  // iperf3_test_failure is 1 for a failure.
  .overrideByQuery('B', [property('mappings', valueText({ 1: ['failed', 'red'] }))])
  .showValue(common.VisibilityMode.Auto)
  .rowHeight(0.9)
  .mergeValues(true)
  .alignValue(common.TimelineValueAlignment.Left)
  .legend(
    new common.VizLegendOptionsBuilder()
      .displayMode(common.LegendDisplayMode.List)
      .placement(common.LegendPlacement.Bottom)
      .showLegend(false)
      .calcs([]),
  )
  .tooltip(new common.VizTooltipOptionsBuilder().mode(common.TooltipDisplayMode.Single).sort(common.SortOrder.None));

export function drilldown(): dashboard.DashboardBuilder {
  return newDashboard(
    'iperf3-monitor-drilldown',
    'iperf3-monitor / Pair drill-down',
    'Every measurement between two nodes, on one timeline.',
    'now-24h',
  )
    .withVariable(
      labelValuesVariable('source_node', 'Source', 'label_values(iperf3_test_success{cluster=~"$cluster", source_zone=~"$zone"}, source_node)'),
    )
    .withVariable(
      // Only the destinations the source measured.
      labelValuesVariable(
        'destination_node',
        'Destination',
        'label_values(iperf3_test_success{cluster=~"$cluster", source_node="$source_node"}, destination_node)',
      ),
    )
    .withVariable(
      protocolVariable('iperf3_test_success{cluster=~"$cluster", source_node="$source_node", destination_node="$destination_node"}'),
    )
    .withPanel(throughput)
    .withPanel(testResult)
    .withRow(row(3, 'TCP'))
    .withPanel(pairGraph(4, 'Retransmits (TCP)', 'TCP retransmits during each test', 'none', 'iperf3_retransmits', TCP, 'retransmits'))
    .withPanel(pairGraph(5, 'Round-trip time (TCP)', 'Mean TCP round-trip time of each test', 's', 'iperf3_rtt_seconds', TCP, 'rtt'))
    .withRow(row(6, 'UDP'))
    .withPanel(pairGraph(7, 'Jitter (UDP)', 'UDP jitter of each test', 's', 'iperf3_jitter_seconds', UDP, 'jitter'))
    .withPanel(pairGraph(8, 'Packet loss (UDP)', 'Share of UDP packets lost in each test', 'percentunit', 'iperf3_loss_ratio', UDP, 'loss'))
    .withRow(row(9, 'Test'))
    .withPanel(
      graph(
        10,
        'CPU utilization',
        'CPU used by iperf3 on the sending and on the receiving node during each test. A test whose sender or receiver used nearly all the CPU its node had is CPU-bound (iperf3_test_cpu_bound; the overview\'s "CPU-bound pairs" table): its throughput is what the iperf3 server pods\' CPU allowed, not what the path carries; raise server.resources.limits.cpu (README "Fast links").',
        'percentunit',
      )
        .withTarget(range('A', pairValue('iperf3_sender_cpu_utilization_ratio'), '{{protocol}} sender'))
        .withTarget(range('B', pairValue('iperf3_receiver_cpu_utilization_ratio'), '{{protocol}} receiver')),
    )
    .withPanel(
      pairGraph(11, 'Test duration', 'Wall time of each test', 's', 'iperf3_test_duration_seconds', pair(), '{{protocol}}'),
    );
}
