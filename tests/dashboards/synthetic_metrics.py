#!/usr/bin/env python3
"""Synthetic iperf3-monitor results as OpenMetrics, for `promtool tsdb create-blocks-from openmetrics`.

Shaped like the metric contract and like what Prometheus stores for each delivery path:
  remote-write  one sample per test at the test's end time, one per run for run-level series;
  pushgateway   every series scraped every --scrape seconds with the last pushed value (pushes
                merge, so a series stays until pushed again), as with `honor_labels: true`.

The scenario, so that every panel has something to show and the freshness logic is exercised:
  - nodes n1..nN measure the full mesh over tcp and udp every --interval seconds, on the host
    network and on the pod network (network="host", "pod"), each a mesh of its own;
  - the pod network carries --pod-network-ratio (0.5) of what the host network does over tcp, on
    every pair (the CNI-cost matrix's known answer); over udp, paced to its bitrate, both the same;
  - n3 -> n1 is slow over tcp (a tenth of the others), n2 -> n4 loses 3% over udp;
  - n4 -> n2 over udp fails with reason "timeout" in the last two runs;
  - n1 -> n2 over tcp is CPU-bound (iperf3_test_cpu_bound 1, its sender near 100% CPU);
  - node n(N+1) took part in the first hour only, then left the cluster: its pairs must vanish
    from the dashboards (through the Pushgateway its last values are still scraped).
"""

from __future__ import annotations

import argparse
import random
import sys
from collections import defaultdict

NETWORKS = ("host", "pod")
PAIR_METRICS_TCP = ("iperf3_retransmits", "iperf3_rtt_seconds")
PAIR_METRICS_UDP = ("iperf3_jitter_seconds", "iperf3_lost_packets", "iperf3_packets", "iperf3_loss_ratio")


def labels_text(labels: dict[str, str]) -> str:
    return "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"


class Pushes:
    """Every pushed sample: (metric, labels) -> [(time, value)], in push order."""

    def __init__(self) -> None:
        self.series: dict[tuple[str, str], list[tuple[float, float]]] = defaultdict(list)

    def add(self, t: float, metric: str, labels: dict[str, str], value: float) -> None:
        self.series[(metric, labels_text(labels))].append((t, value))


def simulate(args: argparse.Namespace) -> Pushes:
    rng = random.Random(6)
    pushes = Pushes()
    nodes = [f"n{i}" for i in range(1, args.nodes + 1)]
    gone = f"n{args.nodes + 1}"
    runs = int(args.hours * 3600 // args.interval)
    # The latest run ends a minute before --end.
    first_start = args.end - 60 - args.duration_per_run - (runs - 1) * args.interval
    for run in range(runs):
        start = first_start + run * args.interval
        members = nodes + ([gone] if start < first_start + 3600 else [])
        base = {"cluster": args.cluster} if args.cluster else {}
        tests = {"success": 0, "failure": 0}
        covered: dict[tuple[str, str], int] = defaultdict(int)
        offset = 0.0
        for network, protocol in ((n, p) for n in NETWORKS for p in ("tcp", "udp")):
            for src in members:
                for dst in members:
                    if src == dst:
                        continue
                    offset += args.duration_per_run / (2 * len(NETWORKS) * len(members) * (len(members) - 1))
                    end = start + offset
                    labels = dict(base, source_node=src, destination_node=dst, protocol=protocol, ip_family="ipv4", network=network)
                    if args.zones:
                        labels.update(source_zone=zone(src), destination_zone=zone(dst))
                    failed = protocol == "udp" and (src, dst) == ("n4", "n2") and run >= runs - 2
                    pushes.add(end, "iperf3_test_success", labels, 0 if failed else 1)
                    pushes.add(end, "iperf3_test_timestamp_seconds", labels, end)
                    pushes.add(end, "iperf3_test_duration_seconds", labels, 10 + rng.random() if not failed else 15.0)
                    if failed:
                        pushes.add(end, "iperf3_test_failure", dict(labels, reason="timeout"), 1)
                        tests["failure"] += 1
                        continue
                    tests["success"] += 1
                    covered[(network, protocol)] += 1
                    if protocol == "tcp":
                        cni = args.pod_network_ratio if network == "pod" else 1
                        rate = 1.1e9 * cni * (0.1 if (src, dst) == ("n3", "n1") else 1) * (1 + rng.uniform(-0.03, 0.03))
                        pushes.add(end, "iperf3_retransmits", labels, rng.randint(0, 40))
                        pushes.add(end, "iperf3_rtt_seconds", labels, 0.0002 + rng.random() * 0.0001)
                        sent = rate * 1.001
                    else:
                        rate = 1.25e7
                        loss = 0.03 if (src, dst) == ("n2", "n4") else rng.random() * 0.0005
                        packets = 85000
                        pushes.add(end, "iperf3_jitter_seconds", labels, 0.00002 + rng.random() * 0.00002)
                        pushes.add(end, "iperf3_packets", labels, packets)
                        pushes.add(end, "iperf3_lost_packets", labels, round(packets * loss))
                        pushes.add(end, "iperf3_loss_ratio", labels, loss)
                        sent = rate
                        rate = rate * (1 - loss)
                    pushes.add(end, "iperf3_received_bytes_per_second", labels, rate)
                    pushes.add(end, "iperf3_sent_bytes_per_second", labels, sent)
                    cpu_bound = protocol == "tcp" and (src, dst) == ("n1", "n2")
                    pushes.add(end, "iperf3_test_cpu_bound", labels, 1 if cpu_bound else 0)
                    pushes.add(end, "iperf3_sender_cpu_utilization_ratio", labels, 0.97 if cpu_bound else 0.2 + rng.random() * 0.1)
                    pushes.add(end, "iperf3_receiver_cpu_utilization_ratio", labels, 0.3 + rng.random() * 0.1)
        run_end = start + args.duration_per_run + 1
        mesh = len(members) * (len(members) - 1)
        pushes.add(run_end, "iperf3_monitor_last_run_timestamp_seconds", base, run_end)
        pushes.add(run_end, "iperf3_monitor_run_duration_seconds", base, run_end - start)
        for result, count in tests.items():
            pushes.add(run_end, "iperf3_monitor_run_tests", dict(base, result=result), count)
        for network, protocol in ((n, p) for n in NETWORKS for p in ("tcp", "udp")):
            run_pair = dict(base, protocol=protocol, ip_family="ipv4", network=network)
            pushes.add(run_end, "iperf3_monitor_run_pairs_covered", run_pair, covered[(network, protocol)])
            pushes.add(run_end, "iperf3_monitor_mesh_pairs", run_pair, mesh)
        pushes.add(run_end, "iperf3_monitor_nodes", base, len(members))
        pushes.add(run_end, "iperf3_monitor_run_rounds", base, 2 * len(NETWORKS) * (len(members) - 1))
        pushes.add(run_end, "iperf3_monitor_cycle_rounds", base, 2 * len(NETWORKS) * (len(members) - 1))
        pushes.add(run_end, "iperf3_monitor_cycle_runs", base, 1)
        pushes.add(run_end, "iperf3_monitor_run_tests_not_run", base, 0)
        pushes.add(run_end, "iperf3_monitor_run_rounds_skipped", base, 0)
        pushes.add(run_end, "iperf3_monitor_run_pairing_switched", base, 0)
    return pushes


def zone(node: str) -> str:
    return "zone-a" if int(node[1:]) % 2 else "zone-b"


def stored_samples(pushes: Pushes, shape: str, scrape: float, end: float):
    """What Prometheus ends up storing for each series, in time order."""
    for key, samples in pushes.series.items():
        if shape == "remote-write":
            yield key, samples
            continue
        # Scraped from the first push to `end`, each scrape seeing the latest push before it.
        out = []
        t = samples[0][0] - samples[0][0] % scrape + scrape
        i = 0
        while t <= end:
            while i + 1 < len(samples) and samples[i + 1][0] <= t:
                i += 1
            out.append((t, samples[i][1]))
            t += scrape
        yield key, out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=("remote-write", "pushgateway"), required=True)
    parser.add_argument("--end", type=float, required=True, help="unix time of the last sample (e.g. now)")
    parser.add_argument("--nodes", type=int, default=4)
    parser.add_argument("--hours", type=float, default=3)
    parser.add_argument("--interval", type=int, default=300, help="seconds between runs")
    parser.add_argument("--duration-per-run", type=float, default=120, help="seconds one run takes")
    parser.add_argument("--scrape", type=float, default=30, help="scrape interval of the Pushgateway")
    parser.add_argument("--cluster", help="value of the cluster label [default: none]")
    parser.add_argument("--zones", action="store_true", help="add source_zone and destination_zone")
    parser.add_argument("--pod-network-ratio", type=float, default=0.5,
                        help="tcp throughput on the pod network / on the host network, every pair [default: 0.5]")
    args = parser.parse_args(argv)

    by_metric: dict[str, list[tuple[str, list[tuple[float, float]]]]] = defaultdict(list)
    for (metric, labels), samples in stored_samples(simulate(args), args.shape, args.scrape, args.end):
        by_metric[metric].append((labels, samples))
    out = sys.stdout
    for metric in sorted(by_metric):
        out.write(f"# TYPE {metric} gauge\n")
        for labels, samples in sorted(by_metric[metric]):
            for t, value in samples:
                out.write(f"{metric}{labels} {value!r} {t:.3f}\n")
    out.write("# EOF\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
