// The PromQL of the dashboards, built from a few shapes (dashboards/README.md, "How results are
// read"): a pair's latest value within the result window, kept only while its latest test is
// recent, always aggregated by the pair labels so that series delivered by remote-write and by
// the Pushgateway count once. The line breaks and indents are part of the output: Grafana shows
// the query as written.

/** The labels that name two nodes' path in one protocol and family, on either network. */
export const NODE_PAIR_LABELS = 'cluster, source_node, destination_node, protocol, ip_family';

/** The labels that name a pair; every pair query aggregates and matches on them. `network`
 * (host or pod) is one of them, so that a pair's two networks never merge in a `max by`. */
export const PAIR_LABELS = `${NODE_PAIR_LABELS}, network`;

/** One label matcher of a selector, e.g. `cluster=~"$cluster"`. */
export type Matcher = `${string}=${string}`;

/** The matchers of a pair query's selectors: which pairs a panel shows. */
export type PairFilter = readonly Matcher[];

/** The matchers every pair query of both dashboards starts with, then the dashboard's own:
 * a variable that every pair query filters on (like `cluster`) goes here. */
export const pairScope = (...rest: Matcher[]): PairFilter => [
  re('cluster', '$cluster'),
  re('ip_family', '$ip_family'),
  re('network', '$network'),
  ...rest,
];

/** A filter on one network instead of the dashboard's `$network`: the CNI-cost query reads both. */
export const onNetwork = (filter: PairFilter, network: 'host' | 'pod'): PairFilter => [
  ...filter.filter((m) => !m.startsWith('network=')),
  eq('network', network),
];

export const eq = (label: string, value: string): Matcher => `${label}="${value}"`;
export const re = (label: string, value: string): Matcher => `${label}=~"${value}"`;

/** A `[${run_window}s]` range: the result window, a dashboard variable in seconds. */
const RESULT_WINDOW = '[${run_window}s]';

const selector = (metric: string, filter: readonly Matcher[]): string => `${metric}{${filter.join(', ')}}`;

/** A pair's latest value of `metric` within the result window. */
export function latest(metric: string, filter: PairFilter, extraLabels: readonly string[] = []): string {
  const by = [PAIR_LABELS, ...extraLabels].join(', ');
  return `max by (${by}) (last_over_time(${selector(metric, filter)}${RESULT_WINDOW}))`;
}

/** True for pairs whose latest test ended within the result window (by its end time's value,
 * which is what makes a stale Pushgateway value drop out). */
export function fresh(filter: PairFilter): string {
  return `(time() - ${latest('iperf3_test_timestamp_seconds', filter)} < $run_window)`;
}

/** `a and on (pair) b and on (pair) c`, one operand a line, each line indented by `indent`. */
export function andOnPair(operands: readonly string[], indent = ''): string {
  return operands.join(`\n${indent}and on (${PAIR_LABELS})\n${indent}`);
}

/** `value` for pairs whose latest test is recent. */
export const ifFresh = (value: string, filter: PairFilter): string => andOnPair([value, fresh(filter)]);

/** `value` (a latest, or a multiple of one) for fresh pairs, inside an aggregation opened by
 * `head`, e.g. `min by (protocol) (` or `quantile by (protocol) (0.5,`. */
export const aggregateFresh = (head: string, value: string, filter: PairFilter): string =>
  `${head}\n  ${ifFresh(value, filter)}\n)`;

/** A pair's latest received throughput in bit/s. */
export const bitsPerSecond = (filter: PairFilter): string => `8 * ${latest('iperf3_received_bytes_per_second', filter)}`;

/** 0 for fresh pairs whose latest test failed: what a matrix shows as "failed". */
export function failedAsZero(filter: PairFilter): string {
  const failed = `0 * (${latest('iperf3_test_success', filter)} == 0)`;
  return `(\n  ${andOnPair([failed, fresh(filter)], '  ')}\n)`;
}

/** Fresh pairs whose latest test succeeded, with their received throughput (bytes/s): what the
 * diagnosis ratios are computed from. */
export function succeededPairs(filter: PairFilter): string {
  const received = latest('iperf3_received_bytes_per_second', filter);
  const succeeded = `(${latest('iperf3_test_success', filter)} == 1)`;
  return `(\n  (${andOnPair([received, succeeded], '  ')})\n  and on (${PAIR_LABELS})\n  ${fresh(filter)}\n)`;
}

/** The side of a pair a node ratio is about. */
export type Node = 'source_node' | 'destination_node';

/** The labels of a mesh (whose median the ratios divide by), or of one node's pairs in it. Like
 * PAIR_LABELS, a label that tells meshes apart goes here. */
const meshLabels = (node?: Node): string =>
  node === undefined ? 'cluster, protocol, ip_family, network' : `cluster, ${node}, protocol, ip_family, network`;

/** The median of the succeeded pairs' throughput, by `by`. */
export const medianOfSucceeded = (by: string, filter: PairFilter): string =>
  `quantile by (${by}) (0.5, ${succeededPairs(filter)})`;

/** A node's send (`source_node`) or receive (`destination_node`) ratio: the median of its pairs
 * ÷ the median of all pairs (the recording rules iperf3:node_send_ratio, node_receive_ratio). */
export const nodeRatio = (node: Node, filter: PairFilter): string =>
  `${medianOfSucceeded(meshLabels(node), filter)}\n/ on (${meshLabels()}) group_left ()\n` +
  medianOfSucceeded(meshLabels(), filter);

/** A pair's throughput ÷ the lower of its source's and its destination's median (the recording
 * rule iperf3:path_ratio): the larger of the two quotients, each tagged with its endpoint. */
export function pathRatio(filter: PairFilter): string {
  const over = (node: Node, endpoint: string) =>
    `label_replace(\n ${succeededPairs(filter)}\n / on (${meshLabels(node)}) group_left ()\n ` +
    `${medianOfSucceeded(meshLabels(node), filter)},\n "endpoint", "${endpoint}", "", "")`;
  return `max by (${PAIR_LABELS}) (\n${over('source_node', 'source')}\nor\n${over('destination_node', 'destination')}\n)`;
}

/** The CNI's cost of each pair: its pod-network throughput ÷ its host-network throughput, both
 * the latest successful and recent result (the recording rule iperf3:pod_network_ratio). 1 = the
 * CNI costs nothing; 0.6 = the pod network carries 60 % of what the node network does. Labelled
 * by NODE_PAIR_LABELS (no `network`); empty unless both networks are measured. */
export const podNetworkRatio = (filter: PairFilter): string =>
  `${succeededPairs(onNetwork(filter, 'pod'))}\n/ ignoring (network)\n${succeededPairs(onNetwork(filter, 'host'))}`;

/** 0 for fresh pairs measured on both networks whose latest test failed on either, by
 * NODE_PAIR_LABELS: what the CNI-cost matrix shows as "failed" (a single-network install's
 * failures are not the CNI's). */
export function failedOnEitherNetworkAsZero(filter: PairFilter): string {
  const both = filter.filter((m) => !m.startsWith('network='));
  return (
    `max by (${NODE_PAIR_LABELS}) ${failedAsZero(both)}\nand on (${NODE_PAIR_LABELS})\n` +
    `(count by (${NODE_PAIR_LABELS}) ${fresh(both)} > 1)`
  );
}

/** A run-level metric's latest value within the result window, by `by` (cluster first). */
export const runLatest = (metric: string, by: string, filter: readonly Matcher[]): string =>
  `max by (${by}) (last_over_time(${selector(metric, filter)}${RESULT_WINDOW}))`;

/** The run-level `runLatest` summed over clusters (`sum by (...)` when `by` is given). */
export const runSum = (metric: string, filter: readonly Matcher[], by?: string): string =>
  by === undefined
    ? `sum(${runLatest(metric, 'cluster', filter)})`
    : `sum by (${by}) (${runLatest(metric, `cluster, ${by}`, filter)})`;

/** Any `[1d]`-style range for queries that must look further back than the result window. */
export const lastOver = (metric: string, filter: readonly Matcher[], range: string): string =>
  `last_over_time(${selector(metric, filter)}[${range}])`;
