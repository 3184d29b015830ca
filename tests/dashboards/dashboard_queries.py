#!/usr/bin/env python3
"""The PromQL of dashboards/*.json: extracted, linted, made concrete, and run.

Used by scripts/check-dashboards.sh (`lint`, `rules-file`: static, no Prometheus needed) and by
scripts/check-dashboard-queries.sh (`live`: against a Prometheus filled by real runs).
Only the Python standard library, so it runs wherever Debian's python3 does.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEFAULT_DASHBOARDS = sorted((REPO / "dashboards").glob("*.json"))


@functools.cache
def contract_metrics(source: Path = REPO / "src" / "samples.rs") -> frozenset[str]:
    """The metric contract of the job: the names of the `metrics! { ... }` table in
    src/samples.rs, the code's one list (`ALL_METRICS`; tests/contracts.rs checks that this reads
    all of it). A dashboard or rule naming anything else is a typo that PromQL would happily
    parse and answer with nothing."""
    text = source.read_text(encoding="utf-8")
    table = re.search(r"^metrics! \{\n(.*?)^\}", text, re.M | re.S)
    names = re.findall(r'^\s*[A-Z][A-Z0-9_]* = "(iperf3_[a-z0-9_]+)"', table.group(1), re.M) if table else []
    if not names:
        raise CheckError(f"no metrics! {{ NAME = \"iperf3_...\", ... }} table in {source}")
    return frozenset(names)


METRIC_NAME = re.compile(r"\biperf3_[a-z0-9_]*[a-z0-9]")

# Queries a healthy run may leave empty: (pattern in the query, why).
MAY_BE_EMPTY = (
    (re.compile(r"\biperf3_test_failure\b"), "iperf3_test_failure exists only for failed tests"),
    (re.compile(r"\biperf3_test_cpu_bound\{[^}]*\}\[[^\]]*\]\)\)\s*==\s*1"), "it lists CPU-bound tests only, and a run may have none"),
    (re.compile(r'network="pod"'), "the CNI-cost matrix needs both networks measured (server.podNetwork.enabled); pass --cni-cost to require it"),
)

# The overview's CNI-cost matrix (dashboards/src/overview.ts CNI_COST_TITLE): each pair's
# pod-network throughput / its host-network throughput, the recording rule iperf3:pod_network_ratio.
CNI_COST_TITLE_PREFIX = "CNI cost:"

# Metrics of one protocol only: a run without that protocol leaves queries on them empty.
PROTOCOL_OF_METRIC = {
    "iperf3_retransmits": "tcp",
    "iperf3_rtt_seconds": "tcp",
    "iperf3_jitter_seconds": "udp",
    "iperf3_lost_packets": "udp",
    "iperf3_packets": "udp",
    "iperf3_loss_ratio": "udp",
}
PROTOCOL_MATCHER = re.compile(r'\bprotocol="(\w+)"')

# Grafana's own variables, with the values a static check uses.
BUILTIN_VALUES = {
    "__interval": "1m",
    "__interval_ms": "60000",
    "__rate_interval": "5m",
    "__range": "1h",
    "__range_s": "3600",
    "__range_ms": "3600000",
}

VARIABLE_REF = re.compile(
    r"\$\{(?P<braced>\w+)(?::(?P<format>[\w]+))?\}|\[\[(?P<old>\w+)(?::\w+)?\]\]|\$(?P<plain>\w+)"
)
LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(?P<selector>.+?)\s*,\s*)?(?P<label>[a-zA-Z_]\w*)\s*\)\s*$", re.S)


class CheckError(Exception):
    """A dashboard or a query broke an expectation; the message names which."""


@dataclass(frozen=True)
class Query:
    """One Prometheus query of one panel, as Grafana would run it."""

    dashboard: str
    panel_id: int
    panel_title: str
    ref_id: str
    expr: str
    instant: bool
    repeat: str | None
    matrix: dict | None  # options of a groupingToMatrix transformation

    @property
    def name(self) -> str:
        return f"{self.dashboard} / panel {self.panel_id} \"{self.panel_title}\" [{self.ref_id}]"


@dataclass(frozen=True)
class Variable:
    name: str
    type: str
    query: str
    current: str | None
    include_all: bool
    all_value: str | None
    multi: bool


def load(path: Path) -> dict:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def panels(dashboard: dict) -> list[dict]:
    """Every panel, rows' nested panels included; rows themselves left out."""
    out = []
    for panel in dashboard.get("panels", []):
        if panel.get("type") == "row":
            out.extend(panel.get("panels", []))
        else:
            out.append(panel)
    return out


def queries(path: Path, dashboard: dict) -> list[Query]:
    out = []
    for panel in panels(dashboard):
        matrix = next(
            (t["options"] for t in panel.get("transformations", []) if t.get("id") == "groupingToMatrix"),
            None,
        )
        for target in panel.get("targets", []):
            if target.get("hide"):
                continue
            out.append(
                Query(
                    dashboard=path.name,
                    panel_id=panel["id"],
                    panel_title=panel.get("title", ""),
                    ref_id=target["refId"],
                    expr=target["expr"],
                    instant=bool(target.get("instant")) and not target.get("range"),
                    repeat=panel.get("repeat"),
                    matrix=matrix,
                )
            )
    return out


def variables(dashboard: dict) -> list[Variable]:
    out = []
    for v in dashboard.get("templating", {}).get("list", []):
        query = v.get("query", "")
        if isinstance(query, dict):
            query = query.get("query", "")
        current = v.get("current", {}).get("value")
        out.append(
            Variable(
                name=v["name"],
                type=v["type"],
                query=query,
                current=current if isinstance(current, str) else None,
                include_all=bool(v.get("includeAll")),
                all_value=v.get("allValue"),
                multi=bool(v.get("multi")),
            )
        )
    return out


def parse_label_values(query: str) -> tuple[str | None, str]:
    m = LABEL_VALUES.match(query)
    if not m:
        raise CheckError(f"variable query {query!r} is not label_values(selector, label)")
    return m.group("selector"), m.group("label")


def substitute(text: str, values: dict[str, str]) -> str:
    """Replaces $var, ${var}, ${var:format} and [[var]] like Grafana; unknown variables are errors."""

    def replace(m: re.Match) -> str:
        name = m.group("braced") or m.group("old") or m.group("plain")
        if name not in values:
            raise CheckError(f"undefined variable ${name} in {text!r}")
        return values[name]

    return VARIABLE_REF.sub(replace, text)


def regex_of(values: list[str]) -> str:
    """How Grafana formats several values of a variable for a Prometheus regex matcher."""
    escaped = [re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


# ------------------------------------------------------------------------------------ static


def static_values(dashboard: dict) -> dict[str, str]:
    """Sample values: a custom variable's current value, a query variable's All value or a name."""
    values = dict(BUILTIN_VALUES)
    for v in variables(dashboard):
        if v.type in ("custom", "constant", "textbox", "interval"):
            if v.current is None:
                raise CheckError(f"variable {v.name} has no current value")
            values[v.name] = v.current
        elif v.type == "query":
            values[v.name] = v.all_value if v.include_all and v.all_value else f"sample-{v.name}"
        else:
            values[v.name] = f"sample-{v.name}"
    return values


def lint(paths: list[Path]) -> list[str]:
    """Checks what the type check cannot see; returns the problems found."""
    problems = []
    matrices = 0
    for path in paths:
        dashboard = load(path)
        top = dashboard.get("panels", [])
        ids = [p["id"] for p in top] + [n["id"] for p in top for n in p.get("panels", [])]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            problems.append(f"{path.name}: panel ids used twice: {dupes}")
        names = {v.name for v in variables(dashboard)}
        try:
            values = static_values(dashboard)
        except CheckError as e:
            problems.append(f"{path.name}: {e}")
            continue
        for panel in panels(dashboard):
            repeat = panel.get("repeat")
            if repeat and repeat not in names:
                problems.append(f"{path.name}: panel {panel['id']} repeats over undefined variable {repeat}")
        for q in queries(path, dashboard):
            matrices += q.matrix is not None
            panel_type = next(p["type"] for p in panels(dashboard) if p["id"] == q.panel_id)
            want_instant = panel_type in ("stat", "table", "bargauge", "gauge")
            if q.instant != want_instant:
                problems.append(f"{q.name}: a {panel_type} panel needs {'an instant' if want_instant else 'a range'} query")
            problems.extend(f"{q.name}: {m} is not a metric of iperf3-monitor" for m in unknown_metrics(q.expr))
            try:
                substitute(q.expr, values)
            except CheckError as e:
                problems.append(f"{q.name}: {e}")
        for v in variables(dashboard):
            if v.type != "query":
                continue
            try:
                selector, _ = parse_label_values(v.query)
                substitute(selector or "", values)
            except CheckError as e:
                problems.append(f"{path.name}: variable {v.name}: {e}")
                continue
            problems.extend(f"{path.name}: variable {v.name}: {m} is not a metric of iperf3-monitor" for m in unknown_metrics(v.query))
    if matrices == 0:
        problems.append("no panel has a groupingToMatrix transformation: the source x destination matrix is gone")
    return problems


def unknown_metrics(text: str) -> list[str]:
    contract = contract_metrics()
    return sorted({m for m in METRIC_NAME.findall(text) if m not in contract})


def rules_file(paths: list[Path]) -> dict:
    """Every query and variable selector as a recording rule, so that promtool parses them."""
    groups = []
    n = 0
    for path in paths:
        dashboard = load(path)
        values = static_values(dashboard)
        for q in queries(path, dashboard):
            n += 1
            groups.append({"name": q.name, "rules": [{"record": f"dashboard_query:{n}", "expr": substitute(q.expr, values)}]})
        for v in variables(dashboard):
            if v.type == "query":
                selector, _ = parse_label_values(v.query)
                if selector:
                    n += 1
                    groups.append(
                        {"name": f"{path.name} / variable {v.name}", "rules": [{"record": f"dashboard_query:{n}", "expr": substitute(selector, values)}]}
                    )
    return {"groups": groups}


# ------------------------------------------------------------------------------------ live


class Prometheus:
    def __init__(self, url: str, timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.timeout = timeout

    def get(self, path: str, params: list[tuple[str, str]]) -> object:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = json.load(response)
        except urllib.error.HTTPError as e:
            detail = e.read().decode(errors="replace")
            raise CheckError(f"GET {path} answered {e.code}: {detail}") from None
        except (urllib.error.URLError, OSError) as e:
            raise CheckError(f"cannot reach Prometheus at {self.url}: {e}; is it running?") from None
        if body.get("status") != "success":
            raise CheckError(f"GET {path} failed: {body}")
        return body["data"]

    def label_values(self, label: str, selector: str | None, start: float, end: float) -> list[str]:
        params = [("start", f"{start:.3f}"), ("end", f"{end:.3f}")]
        if selector:
            params.append(("match[]", selector))
        return sorted(self.get(f"/api/v1/label/{label}/values", params), key=natural_key)


def natural_key(s: str) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", s)]


def parse_relative(expr: str) -> float:
    """Seconds in a Grafana `now-6h` time; only the relative form the dashboards use."""
    m = re.fullmatch(r"now-(\d+)([smhdw])", expr)
    if not m:
        raise CheckError(f"time {expr!r} is not of the form now-<N><s|m|h|d|w>")
    return int(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}[m.group(2)]


def resolve_variables(prom: Prometheus, dashboard: dict, now: float, range_s: float, protocols: list[str] | None) -> tuple[dict[str, str], dict[str, list[str]]]:
    """Values as Grafana would pick them, in dashboard order (later variables read earlier ones).

    Returns the value of each variable (All and multi values formatted as a regex) and, for
    query variables, each single value, for panels repeated over them."""
    values = dict(BUILTIN_VALUES)
    values.update({"__range": f"{int(range_s)}s", "__range_s": str(int(range_s)), "__range_ms": str(int(range_s * 1000))})
    singles: dict[str, list[str]] = {}
    for v in variables(dashboard):
        if v.type == "datasource":
            values[v.name] = "unused"
        elif v.type == "query":
            selector, label = parse_label_values(v.query)
            found = prom.label_values(label, substitute(selector, values) if selector else None, now - range_s, now)
            if v.name == "protocol" and protocols:
                missing = [p for p in protocols if p not in found]
                if missing:
                    raise CheckError(f"variable protocol: no results for {', '.join(missing)} (found {found or 'none'})")
                found = protocols
            if not found and not (v.include_all and v.all_value):
                raise CheckError(f"variable {v.name}: {v.query} returned nothing")
            singles[v.name] = found
            if v.include_all:
                values[v.name] = v.all_value if v.all_value else regex_of(found)
            else:
                values[v.name] = found[0]
        else:
            if v.current is None:
                raise CheckError(f"variable {v.name} has no current value")
            values[v.name] = v.current
    return values, singles


def protocols_needed(expr: str) -> set[str]:
    """Protocols a query can only have data for: named in a matcher or implied by a metric."""
    needed = set(PROTOCOL_MATCHER.findall(expr))
    needed |= {p for m, p in PROTOCOL_OF_METRIC.items() if re.search(rf"\b{m}\b", expr)}
    return needed


def series_count(result: dict) -> int:
    if result["resultType"] == "matrix":
        return sum(1 for s in result["result"] if s["values"])
    if result["resultType"] == "vector":
        return len(result["result"])
    return 1  # scalar or string


def check_matrix(q: Query, result: dict, nodes: int | None) -> str:
    row, col = q.matrix["rowField"], q.matrix["columnField"]
    cells = set()
    for s in result["result"]:
        labels = s["metric"]
        if row not in labels or col not in labels:
            raise CheckError(f"matrix cell without {row}/{col}: {labels}")
        if labels[row] == labels[col]:
            raise CheckError(f"matrix cell on the diagonal: {labels}")
        cells.add((labels[row], labels[col]))
    if len(cells) != len(result["result"]):
        raise CheckError(f"{len(result['result'])} series for {len(cells)} cells: a cell would show one of several values")
    if nodes is not None and len(cells) != nodes * (nodes - 1):
        sources = sorted({c[0] for c in cells} | {c[1] for c in cells}, key=natural_key)
        raise CheckError(f"{len(cells)} cells, expected {nodes}x{nodes - 1} = {nodes * (nodes - 1)} (nodes seen: {', '.join(sources)})")
    return f"{len(cells)} cells"


def is_cni_cost(q: Query) -> bool:
    return q.panel_title.startswith(CNI_COST_TITLE_PREFIX)


def check_cni_cost(result: dict, expected: float, tolerance: float) -> str:
    """Every cell of the CNI-cost matrix within `tolerance` (relative) of `expected`."""
    cells = [(s["metric"]["source_node"], s["metric"]["destination_node"], float(s["value"][1])) for s in result["result"]]
    if not cells:
        raise CheckError(f"no cell, expected a ratio of {expected} on every pair: are both networks measured?")
    off = [f"{src} -> {dst} {value:.3f}" for src, dst, value in cells if abs(value - expected) > tolerance * expected]
    if off:
        raise CheckError(f"{len(off)} of {len(cells)} cells off {expected} by more than {tolerance:.0%}: {', '.join(sorted(off, key=natural_key))}")
    values = [value for _, _, value in cells]
    return f"ratio {min(values):.3f}..{max(values):.3f}, expected {expected} ± {tolerance:.0%}"


def live(
    prom_url: str,
    paths: list[Path],
    nodes: int | None,
    protocols: list[str] | None,
    now: float,
    step: int,
    cni_cost: dict[str, float] | None = None,
    cni_tolerance: float = 0.1,
) -> int:
    """`cni_cost`: protocol -> the ratio every cell of the CNI-cost matrix must show."""
    prom = Prometheus(prom_url)
    cni_cost = cni_cost or {}
    passed = failed = skipped = 0
    matrix_runs = 0
    cni_checked: set[str] = set()
    for path in paths:
        dashboard = load(path)
        range_s = parse_relative(dashboard.get("time", {}).get("from", "now-6h"))
        try:
            values, singles = resolve_variables(prom, dashboard, now, range_s, protocols)
        except CheckError as e:
            print(f"FAIL {path.name}: {e}")
            failed += 1
            continue
        measured = set(protocols or singles.get("protocol", []))
        shown = ", ".join(f"{k}={v}" for k, v in values.items() if not k.startswith("__") and k != "datasource")
        print(f"     {path.name}: {shown}")
        for q in queries(path, dashboard):
            for repeat_value in singles.get(q.repeat, [None]) if q.repeat else [None]:
                vals = dict(values)
                label = q.name
                if repeat_value is not None:
                    vals[q.repeat] = repeat_value
                    label += f" {q.repeat}={repeat_value}"
                try:
                    expr = substitute(q.expr, vals)
                    absent = protocols_needed(expr) - measured
                    if absent:
                        print(f"skip {label}: needs {', '.join(sorted(absent))}, which the run did not measure")
                        skipped += 1
                        continue
                    if q.instant:
                        result = prom.get("/api/v1/query", [("query", expr), ("time", f"{now:.3f}")])
                    else:
                        result = prom.get(
                            "/api/v1/query_range",
                            [("query", expr), ("start", f"{now - range_s:.3f}"), ("end", f"{now:.3f}"), ("step", str(step))],
                        )
                    count = series_count(result)
                    cni_expected = cni_cost.get(repeat_value or "") if is_cni_cost(q) else None
                    if cni_expected is not None:
                        detail = check_matrix(q, result, nodes) + ", " + check_cni_cost(result, cni_expected, cni_tolerance)
                        cni_checked.add(repeat_value)
                        matrix_runs += 1
                        print(f"ok   {label}: {detail}")
                        passed += 1
                        continue
                    if count == 0:
                        why = next((why for pattern, why in MAY_BE_EMPTY if pattern.search(q.expr)), None)
                        if why:
                            print(f"ok   {label}: empty, allowed: {why}")
                            passed += 1
                            continue
                        raise CheckError("no data")
                    detail = f"{count} series"
                    if q.matrix is not None:
                        matrix_runs += 1
                        detail = check_matrix(q, result, nodes)
                    print(f"ok   {label}: {detail}")
                    passed += 1
                except CheckError as e:
                    print(f"FAIL {label}: {e}")
                    failed += 1
    if matrix_runs == 0:
        print("FAIL no matrix panel was checked")
        failed += 1
    for protocol in sorted(set(cni_cost) - cni_checked):
        print(f"FAIL --cni-cost {protocol}: no \"{CNI_COST_TITLE_PREFIX} ...\" panel was checked for {protocol}")
        failed += 1
    print(f"dashboard-queries: {passed} passed, {failed} failed, {skipped} skipped")
    return 1 if failed else 0


# ------------------------------------------------------------------------------------ cli


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_lint = sub.add_parser("lint", help="check metric names, variables and query kinds of the dashboards")
    p_lint.add_argument("dashboards", nargs="*", type=Path)
    p_rules = sub.add_parser("rules-file", help="print every query as a recording rule (JSON, which promtool reads as YAML)")
    p_rules.add_argument("dashboards", nargs="*", type=Path)
    p_names = sub.add_parser("metric-names", help="check that files (e.g. rules) name only metrics of the contract")
    p_names.add_argument("files", nargs="+", type=Path)
    sub.add_parser("contract-metrics", help="print the metric names of the job's contract, as read from src/samples.rs")
    p_live = sub.add_parser("live", help="run every query against a Prometheus and check the answers")
    p_live.add_argument("prom_url")
    p_live.add_argument("--nodes", type=int, help="nodes of the run: the matrix must have nodes x (nodes-1) cells per protocol")
    p_live.add_argument("--protocols", help="comma-separated protocols the run measured, e.g. tcp,udp [default: what the data has]")
    p_live.add_argument("--time", type=float, help="unix time to evaluate at [default: now]")
    p_live.add_argument("--step", type=int, default=60, help="step of range queries in seconds [default: 60]")
    p_live.add_argument("--cni-cost", action="append", metavar="PROTOCOL=RATIO", default=[],
                        help="every cell of the CNI-cost matrix of PROTOCOL must show RATIO (pod ÷ host network), repeatable")
    p_live.add_argument("--cni-cost-tolerance", type=float, default=0.1, metavar="FRACTION",
                        help="relative tolerance of --cni-cost [default: 0.1]")
    p_live.add_argument("--dashboard", dest="dashboards", action="append", type=Path, metavar="FILE",
                        help="a dashboard to check, repeatable [default: dashboards/*.json]")
    args = parser.parse_args(argv)

    try:
        if args.command == "lint":
            paths = args.dashboards or DEFAULT_DASHBOARDS
            problems = lint(paths)
            for problem in problems:
                print(f"FAIL {problem}")
            n = sum(len(queries(p, load(p))) for p in paths)
            print(f"{n} queries in {len(paths)} dashboards, {len(problems)} problems")
            return 1 if problems else 0
        if args.command == "rules-file":
            json.dump(rules_file(args.dashboards or DEFAULT_DASHBOARDS), sys.stdout, indent=1)
            print()
            return 0
        if args.command == "metric-names":
            bad = [(f, m) for f in args.files for m in unknown_metrics(f.read_text(encoding="utf-8"))]
            for f, m in bad:
                print(f"FAIL {f}: {m} is not a metric of iperf3-monitor")
            return 1 if bad else 0
        if args.command == "contract-metrics":
            print("\n".join(sorted(contract_metrics())))
            return 0
        if args.command == "live":
            if args.nodes is not None and args.nodes < 2:
                parser.error("--nodes must be at least 2")
            protocols = [p for p in args.protocols.split(",") if p] if args.protocols else None
            cni_cost = {}
            for item in args.cni_cost:
                protocol, _, ratio = item.partition("=")
                try:
                    cni_cost[protocol] = float(ratio)
                except ValueError:
                    parser.error(f"--cni-cost {item!r}: expected PROTOCOL=RATIO, e.g. tcp=0.5")
            return live(
                args.prom_url,
                args.dashboards or DEFAULT_DASHBOARDS,
                args.nodes,
                protocols,
                args.time or time.time(),
                args.step,
                cni_cost,
                args.cni_cost_tolerance,
            )
    except CheckError as e:
        print(f"FAIL {e}")
        return 1
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
