// iperf3-monitor / Overview: the throughput matrix, cluster-wide stats, the diagnosis, the
// problem pairs and the run history. dashboards/README.md explains each query.
import * as dashboard from '@grafana/grafana-foundation-sdk/dashboard';
import * as common from '@grafana/grafana-foundation-sdk/common';
import type * as table from '@grafana/grafana-foundation-sdk/table';
import {
  colorMode,
  drilldownLink,
  graphPanel,
  newDashboard,
  property,
  protocolVariable,
  range,
  row,
  rowDrilldownLink,
  statPanel,
  tablePanel,
  thresholds,
  valueText,
} from './common';
import {
  type Matcher,
  type Node,
  type PairFilter,
  aggregateFresh,
  andOnPair,
  bitsPerSecond,
  eq,
  failedAsZero,
  failedOnEitherNetworkAsZero,
  fresh,
  lastOver,
  latest,
  nodeRatio,
  pairScope,
  pathRatio,
  podNetworkRatio,
  re,
  runLatest,
  runSum,
} from './promql';

const CLUSTER = re('cluster', '$cluster');
const PROTOCOLS = re('protocol', '$protocol');
/** The run-level series of pairs (iperf3_monitor_run_pairs_covered, iperf3_monitor_mesh_pairs)
 * carry the family and the network as the pair series do. */
const RUN_PAIRS: Matcher[] = [CLUSTER, re('ip_family', '$ip_family'), re('network', '$network'), PROTOCOLS];

/** The pairs a panel shows: the cluster, the source zone and the protocol(s). */
const pairs = (protocol: Matcher = PROTOCOLS): PairFilter => pairScope(re('source_zone', '$zone'), protocol);
const UDP = pairs(eq('protocol', 'udp'));
/** A matrix panel is repeated for each selected protocol, so it shows one. */
const ONE_PROTOCOL = pairs(eq('protocol', '$protocol'));

/** Shows the pair columns first, named for people, and drops the time. */
const PAIR_COLUMNS: dashboard.DataTransformerConfig = {
  id: 'organize',
  options: {
    excludeByName: { Time: true },
    indexByName: { source_node: 0, destination_node: 1, protocol: 2, cluster: 3 },
    renameByName: { source_node: 'Source', destination_node: 'Destination', protocol: 'Protocol', cluster: 'Cluster' },
  },
};

const sortByValue = (desc: boolean): dashboard.DataTransformerConfig => ({
  id: 'sortBy',
  options: { fields: {}, sort: [{ field: 'Value', desc }] },
});

/** A gauge bar in the Value column, behind the number. */
const gaugeCell = (mode: common.BarGaugeDisplayMode) => ({
  type: common.TableCellDisplayMode.Gauge,
  mode,
  valueDisplayMode: common.BarGaugeValueMode.Text,
});

/** A ratio: 1 = as good as its peers; red below 0.5, where the diagnosis alerts fire. */
const asRatio = (panel: table.PanelBuilder) =>
  panel
    .unit('suffix:×')
    .decimals(2)
    .min(0)
    .colorScheme(colorMode(dashboard.FieldColorModeId.Thresholds))
    .thresholds(thresholds('red', [0.5, 'orange'], [0.8, 'yellow'], [0.9, 'green']));

/** A ratio in the Value column, named, as a gauge bar up to 1.2. */
const ratioColumn = (panel: table.PanelBuilder, name: string) =>
  asRatio(panel).overrideByName('Value', [
    property('displayName', name),
    property('max', 1.2),
    property('custom.cellOptions', gaugeCell(common.BarGaugeDisplayMode.Basic)),
  ]);

/** A source × destination matrix of one value per pair, repeated per protocol; a click on a
 * cell opens the pair. The caller sets the value's unit and colours. */
function matrixPanel(id: number, title: string, description: string, expr: string) {
  return tablePanel(id, title, description, expr)
    .height(12)
    .span(12)
    .repeat('protocol')
    .repeatDirection('h')
    .maxPerRow(2)
    .withTransformation({
      id: 'groupingToMatrix',
      options: { columnField: 'destination_node', rowField: 'source_node', valueField: 'Value' },
    })
    .min(0)
    .mappings(valueText({ 0: ['failed', 'red'] }))
    .align(common.FieldTextAlignment.Center)
    .cellOptions({ type: common.TableCellDisplayMode.ColorBackground, mode: common.TableCellBackgroundDisplayMode.Gradient })
    .dataLinks([drilldownLink('${__data.fields[0]}', '${__field.name}', '$protocol')])
    .overrideByFieldType('string', [
      property('custom.cellOptions', { type: common.TableCellDisplayMode.Auto }),
      property('links', []),
      property('displayName', 'source \\ destination'),
    ]);
}

/** A node's send or receive ratio, worst first. */
function nodeRatioPanel(id: number, node: Node, title: string, description: string) {
  const panel = tablePanel(id, title, description, nodeRatio(node, pairs()))
    .height(10)
    .span(6)
    .withTransformation({
      id: 'organize',
      options: {
        excludeByName: { Time: true },
        indexByName: { [node]: 0, protocol: 1, cluster: 2 },
        renameByName: { [node]: 'Node', protocol: 'Protocol', cluster: 'Cluster' },
      },
    })
    .withTransformation(sortByValue(false))
    .dataLinks([]);
  return ratioColumn(panel, node === 'source_node' ? 'Send ratio' : 'Receive ratio');
}

/** A table of pairs, one row each; a click on a row opens the pair. */
const pairTable = (id: number, title: string, description: string, expr: string) =>
  tablePanel(id, title, description, expr).height(10).span(8).withTransformation(PAIR_COLUMNS).dataLinks([rowDrilldownLink()]);

const stats = [
  statPanel(
    1,
    'Median throughput',
    "Median over all pairs of each pair's latest received throughput, per protocol.",
    'bps',
    aggregateFresh('quantile by (protocol) (0.5,', bitsPerSecond(pairs()), pairs()),
    '{{protocol}}',
  ),
  statPanel(
    2,
    'Minimum throughput',
    "Slowest pair's latest received throughput, per protocol.",
    'bps',
    aggregateFresh('min by (protocol) (', bitsPerSecond(pairs()), pairs()),
    '{{protocol}}',
  ),
  statPanel(
    3,
    'Worst UDP loss',
    'Highest latest packet loss of any pair over UDP.',
    'percentunit',
    aggregateFresh('max(', latest('iperf3_loss_ratio', UDP), UDP),
    'loss',
  )
    .thresholds(thresholds('green', [0.001, 'yellow'], [0.01, 'red']))
    .decimals(2),
  statPanel(
    4,
    'Max UDP jitter',
    'Highest latest jitter of any pair over UDP.',
    's',
    aggregateFresh('max(', latest('iperf3_jitter_seconds', UDP), UDP),
    'jitter',
  ).thresholds(thresholds('green', [0.001, 'yellow'], [0.01, 'red'])),
  statPanel(
    5,
    'Failed tests (last run)',
    'Tests that failed in the latest run (iperf3_monitor_run_tests{result="failure"}).',
    'none',
    // `or 0 * ...`: 0 rather than no data when the latest run had no failure.
    `${runSum('iperf3_monitor_run_tests', [CLUSTER, eq('result', 'failure')])}\nor\n0 * ${runSum('iperf3_monitor_run_tests', [CLUSTER])}`,
    'failed',
  ).thresholds(thresholds('green', [1, 'red'])),
  statPanel(
    6,
    'Pairs covered (last run)',
    'Directed pairs measured successfully by the latest run, per protocol. Less than the mesh when a full cycle takes several runs (iperf3_monitor_cycle_runs).',
    'none',
    runSum('iperf3_monitor_run_pairs_covered', RUN_PAIRS, 'protocol'),
    '{{protocol}}',
  ),
  statPanel(
    7,
    'Mesh coverage',
    'Share of the full mesh (iperf3_monitor_mesh_pairs) whose latest test within the result window succeeded, per protocol. Ignores the zone filter.',
    'percentunit',
    `count by (protocol) (\n  ${andOnPair([`(${latest('iperf3_test_success', pairScope(PROTOCOLS))} == 1)`, fresh(pairScope(PROTOCOLS))], '  ')}\n)\n` +
      `/ on (protocol)\n${runSum('iperf3_monitor_mesh_pairs', RUN_PAIRS, 'protocol')}`,
    '{{protocol}}',
  ).thresholds(thresholds('red', [0.9, 'yellow'], [1, 'green'])),
  statPanel(
    8,
    'Last run age',
    'Time since the latest run ended (iperf3_monitor_last_run_timestamp_seconds). Above two CronJob intervals, results are missing.',
    's',
    // A day back, so that it keeps counting when runs stop.
    `time() - max(${lastOver('iperf3_monitor_last_run_timestamp_seconds', [CLUSTER], '1d')})`,
    'age',
  ).thresholds(thresholds('green', [600, 'orange'], [900, 'red'])),
];

const throughputMatrix = matrixPanel(
  10,
  'Received throughput, source → destination ($protocol)',
  'Latest received throughput of each directed pair: rows are sources, columns destinations. Colours run from red (0) to green (fastest pair), so a healthy cluster is uniformly green and a slow path stands out. A pair whose latest test failed shows "failed". A cell whose latest test was CPU-bound (iperf3_test_cpu_bound: its sender or receiver used nearly all the CPU it had) shows what the iperf3 server pods\' CPU allowed, not what the path carries; the "CPU-bound pairs" table lists them. Click a cell to open the pair.',
  `${failedAsZero(ONE_PROTOCOL)}\nor\n${aggregateFresh('(', bitsPerSecond(ONE_PROTOCOL), ONE_PROTOCOL)}`,
)
  .unit('bps')
  .decimals(1)
  .colorScheme(colorMode(dashboard.FieldColorModeId.ContinuousRdYlGr))
  .thresholds(thresholds('green'));

const WORST_PATHS =
  "The ten pairs with the lowest path ratio per protocol: the pair's latest throughput ÷ what its endpoints allow (the lower of its source's median send and its destination's median receive); the recording rule iperf3:path_ratio. 1 = the path is as good as its endpoints, so the pairs of a slow node stay near 1; low = the path itself (a cable, a switch port, a route) is at fault, and Iperf3PathSlow fires below 0.5 when both endpoints are fine. Click a row to open the pair.";
const PATH_RATIO_MATRIX =
  'Each pair\'s latest throughput ÷ what its endpoints allow (the lower of its source\'s median send and its destination\'s median receive), the recording rule iperf3:path_ratio, laid out like the throughput matrix. A slow node\'s row or column stays near 1 (its pairs are as good as it allows; the node tables name it); a single red cell between healthy nodes is a bad path. Red below 0.5 (Iperf3PathSlow), orange below 0.8, yellow below 0.9. A pair whose latest test failed shows "failed". Click a cell to open the pair.';

/** The CNI-cost matrix's title; scripts/check-dashboard-queries.sh --cni-cost finds the panel by it. */
export const CNI_COST_TITLE = 'CNI cost: pod ÷ host network, source → destination ($protocol)';
const CNI_COST_MATRIX =
  "Each pair's latest pod-network throughput ÷ its latest host-network throughput, in the selected IP family (whatever the network variable says): what the CNI (overlay, encryption, eBPF, policy) costs on that path; the recording rule iperf3:pod_network_ratio. 1.0 = the CNI costs nothing; 0.6 = the pod network carries 60 % of what the node network does. Needs both networks measured (chart value server.podNetwork.enabled); empty otherwise. A uniformly low matrix is the CNI's own cost; one low row, column or cell is a node or path where the pod network is worse than the node network. Iperf3PodNetworkSlow fires on TCP below 0.6. Red below 0.5, orange below 0.8, yellow below 0.9. A pair whose latest test failed on either network shows \"failed\". Click a cell to open the pair.";

const cniCostMatrix = asRatio(
  matrixPanel(27, CNI_COST_TITLE, CNI_COST_MATRIX, `${failedOnEitherNetworkAsZero(ONE_PROTOCOL)}\nor\n${podNetworkRatio(ONE_PROTOCOL)}`),
).max(1.2);

const diagnosis = [
  nodeRatioPanel(
    23,
    'source_node',
    'Send ratio per node',
    "Each node's median latest throughput as a source (its row of the matrix) ÷ the median of all pairs, worst first; the recording rule iperf3:node_send_ratio. 1 = the node sends like its peers; below 0.5 its send side (NIC, driver, egress shaping, CPU) is the bottleneck and Iperf3NodeSendSlow fires (TCP). Only pairs whose latest test in the result window succeeded count: a failed pair is left out, not a zero. With a zone selected, only sources of that zone count. docs/diagnosis.md explains the verdicts.",
  ),
  nodeRatioPanel(
    24,
    'destination_node',
    'Receive ratio per node',
    "Each node's median latest throughput as a destination (its column of the matrix) ÷ the median of all pairs, worst first; the recording rule iperf3:node_receive_ratio. 1 = the node receives like its peers; below 0.5 its receive side (NIC, driver, ingress shaping, CPU) is the bottleneck and Iperf3NodeReceiveSlow fires (TCP). Only pairs whose latest test in the result window succeeded count. With a zone selected, only sources of that zone count. docs/diagnosis.md explains the verdicts.",
  ),
  ratioColumn(
    pairTable(25, 'Worst paths', WORST_PATHS, `bottomk by (protocol) (10, ${pathRatio(pairs())})`)
      .span(12)
      .withTransformation(sortByValue(false)),
    'Path ratio',
  ),
  asRatio(
    matrixPanel(
      26,
      'Path ratio, source → destination ($protocol)',
      PATH_RATIO_MATRIX,
      `${failedAsZero(ONE_PROTOCOL)}\nor\n${pathRatio(ONE_PROTOCOL)}`,
    ),
  ).max(1.2),
];

const problems = [
  pairTable(
    12,
    'Slowest pairs',
    'The ten pairs with the lowest latest received throughput, per protocol. Click a row to open the pair.',
    aggregateFresh('bottomk by (protocol) (10,', bitsPerSecond(pairs()), pairs()),
  )
    .withTransformation(sortByValue(false))
    .unit('bps')
    .min(0)
    .colorScheme(colorMode(dashboard.FieldColorModeId.ContinuousRdYlGr))
    .thresholds(thresholds('green'))
    .overrideByName('Value', [
      property('displayName', 'Throughput'),
      property('custom.cellOptions', gaugeCell(common.BarGaugeDisplayMode.Gradient)),
    ]),
  pairTable(
    13,
    'Failing pairs',
    'Pairs whose latest test failed, with the failure reasons seen in the result window (iperf3_test_failure: refused, timeout, busy, unreachable, auth, interrupted, parse, spawn, error, skipped). "skipped" means the test was not tried: one of its nodes had already failed slowly (timeout, unreachable) from two good peers in the same run, so look at that node\'s other rows; the next run tries the pair again. Empty when every test passes. Click a row to open the pair.',
    andOnPair([
      latest('iperf3_test_failure', pairs(), ['reason']),
      `(${latest('iperf3_test_success', pairs())} == 0)`,
      fresh(pairs()),
    ]),
  )
    .withTransformation({ id: 'organize', options: { excludeByName: { Value: true }, renameByName: { reason: 'Reason' } } })
    .thresholds(thresholds('red'))
    .colorScheme(colorMode(dashboard.FieldColorModeId.Thresholds)),
  pairTable(
    20,
    'CPU-bound pairs',
    'Pairs whose latest test was CPU-bound (iperf3_test_cpu_bound): its sender or receiver used nearly all the CPU its node had, so the throughput shown, here and in the matrix, is what the iperf3 server pods\' CPU allowed, not what the path carries. Raise server.resources.limits.cpu (README "Fast links") until the table empties. Empty when no test is CPU-bound. Click a row to open the pair.',
    andOnPair([
      bitsPerSecond(pairs()),
      `(${latest('iperf3_test_cpu_bound', pairs())} == 1)`,
      `(${latest('iperf3_test_success', pairs())} == 1)`,
      fresh(pairs()),
    ]),
  )
    .withTransformation(sortByValue(true))
    .unit('bps')
    .min(0)
    .colorScheme(colorMode(dashboard.FieldColorModeId.Fixed, 'orange'))
    .thresholds(thresholds('green'))
    .overrideByName('Value', [
      property('displayName', 'Throughput (CPU-bound)'),
      property('custom.cellOptions', { type: common.TableCellDisplayMode.ColorText }),
    ]),
];

const history = [
  graphPanel(15, 'Cluster throughput', 'Median and minimum over pairs of the latest received throughput, per protocol.', 'bps')
    .height(8)
    .span(8)
    .withTarget(range('A', aggregateFresh('quantile by (protocol) (0.5,', bitsPerSecond(pairs()), pairs()), '{{protocol}} median'))
    .withTarget(range('B', aggregateFresh('min by (protocol) (', bitsPerSecond(pairs()), pairs()), '{{protocol}} minimum')),
  graphPanel(
    16,
    'Tests per run',
    'Successful and failed tests of each run (iperf3_monitor_run_tests), and planned tests the run did not run because it was stopped or its budget ran out (iperf3_monitor_run_tests_not_run; the rotation measures them later).',
    'none',
  )
    .height(8)
    .span(8)
    .withTarget(range('A', runSum('iperf3_monitor_run_tests', [CLUSTER], 'result'), '{{result}}'))
    .withTarget(range('B', runSum('iperf3_monitor_run_tests_not_run', [CLUSTER]), 'not run'))
    .overrideByName('failure', [property('color', { mode: 'fixed', fixedColor: 'red' })])
    .overrideByName('success', [property('color', { mode: 'fixed', fixedColor: 'green' })])
    .overrideByName('not run', [property('color', { mode: 'fixed', fixedColor: 'orange' })]),
  graphPanel(17, 'Pairs covered per run', 'Directed pairs measured successfully by each run, against the full mesh, per protocol.', 'none')
    .height(8)
    .span(8)
    .withTarget(range('A', runSum('iperf3_monitor_run_pairs_covered', RUN_PAIRS, 'protocol'), '{{protocol}} covered'))
    .withTarget(range('B', runSum('iperf3_monitor_mesh_pairs', RUN_PAIRS, 'protocol'), '{{protocol}} mesh')),
  graphPanel(18, 'Run duration', 'Wall time of each run (iperf3_monitor_run_duration_seconds); keep it below the CronJob interval.', 's')
    .height(7)
    .span(9)
    .withTarget(range('A', runLatest('iperf3_monitor_run_duration_seconds', 'cluster', [CLUSTER]), '{{cluster}}')),
  graphPanel(19, 'Nodes and rounds', 'Nodes measured, rounds in this run and in a full mesh cycle, runs per cycle.', 'none')
    .height(7)
    .span(9)
    .withTarget(range('A', runLatest('iperf3_monitor_nodes', 'cluster', [CLUSTER]), 'nodes {{cluster}}'))
    .withTarget(range('B', runLatest('iperf3_monitor_run_rounds', 'cluster', [CLUSTER]), 'rounds this run {{cluster}}'))
    .withTarget(range('C', runLatest('iperf3_monitor_cycle_rounds', 'cluster', [CLUSTER]), 'rounds per cycle {{cluster}}'))
    .withTarget(range('D', runLatest('iperf3_monitor_cycle_runs', 'cluster', [CLUSTER]), 'runs per cycle {{cluster}}')),
  statPanel(
    21,
    'Pairing switched (last run)',
    'Whether the latest run (--pairing auto) switched from duplex to exclusive pairing because duplex tests were limited by their nodes\' shared CPU (iperf3_monitor_run_pairing_switched), per cluster. A run that switches takes longer; if it happens every run, raise server.resources.limits.cpu (README "Fast links").',
    'none',
    runLatest('iperf3_monitor_run_pairing_switched', 'cluster', [CLUSTER]),
    '{{cluster}}',
  )
    .height(7)
    .span(6)
    .thresholds(thresholds('green', [1, 'orange']))
    .mappings(valueText({ 0: ['no', 'green'], 1: ['to exclusive', 'orange'] }))
    .textMode(common.BigValueTextMode.Auto),
];

export function overview(): dashboard.DashboardBuilder {
  const board = newDashboard(
    'iperf3-monitor-overview',
    'iperf3-monitor / Overview',
    'Throughput between every pair of nodes, measured by iperf3-monitor.',
    'now-6h',
  )
    .withVariable(protocolVariable('iperf3_test_success{cluster=~"$cluster"}'));
  stats.forEach((panel) => board.withPanel(panel.height(4).span(3)));
  board.withRow(row(9, 'Throughput matrix')).withPanel(throughputMatrix);
  board.withRow(row(28, 'CNI cost')).withPanel(cniCostMatrix);
  board.withRow(row(22, 'Diagnosis'));
  diagnosis.forEach((panel) => board.withPanel(panel));
  board.withRow(row(11, 'Problems'));
  problems.forEach((panel) => board.withPanel(panel));
  board.withRow(row(14, 'History'));
  history.forEach((panel) => board.withPanel(panel));
  return board;
}
