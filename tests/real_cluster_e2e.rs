//! End-to-end on a real Kubernetes control plane (scripts/kube-lab.sh): the chart installed
//! with helm as its README says, the servers started by the real DaemonSet controller and run
//! for real in the lab's namespaces, the job started with `kubectl create job --from=cronjob/…`,
//! acting as the chart's ServiceAccount through the real authorizer and pods/exec, and its
//! results read back from a real Prometheus. Pod Security Admission is the real admission
//! plugin. Needs root (the lab); the first run builds the control plane (scripts/k8s/build.sh).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod real_cluster;

use std::time::Duration;

use common::{Prometheus, all_pairs, lab_lock, repo};
use real_cluster::KubeLab;

const RELEASE: &str = "r";
const CRONJOB: &str = "r-iperf3-monitor";
const SERVERS: &str = "r-iperf3-monitor-server";
const SA: &str = "r-iperf3-monitor";
const JOB_TIMEOUT: Duration = Duration::from_secs(240);

/// The namespace as the chart's README tells users to make it: the servers are on the host
/// network, which only the Pod Security level `privileged` admits.
fn create_namespace(lab: &KubeLab, namespace: &str, level: &str) {
    lab.kubectl_ok(&["create", "namespace", namespace]);
    lab.kubectl_ok(&["label", "namespace", namespace, &format!("pod-security.kubernetes.io/enforce={level}")]);
}

/// `helm upgrade --install` of the chart with `sets`; panics on failure; helm's stdout (NOTES).
fn helm_install(lab: &KubeLab, namespace: &str, sets: &[String]) -> String {
    let mut args = vec!["upgrade", "--install", RELEASE, chart_path(), "--namespace", namespace];
    let set_args: Vec<String> = sets.iter().flat_map(|s| ["--set".to_string(), s.clone()]).collect();
    args.extend(set_args.iter().map(String::as_str));
    let output = lab.helm(&args);
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "helm {args:?}: {}{}", stdout, String::from_utf8_lossy(&output.stderr));
    stdout
}

fn chart_path() -> &'static str {
    static CHART: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    CHART.get_or_init(|| repo().join("chart").display().to_string())
}

/// Every directed pair of `pairs` has a successful TCP sample with `cluster` and `family` in
/// Prometheus, each within the tolerance of its path's shaped rate.
fn assert_tcp_rates(prom: &Prometheus, lab: &KubeLab, cluster: &str, family: &str, pairs: &[(String, String)]) {
    let selector = format!("protocol=\"tcp\",cluster=\"{cluster}\",ip_family=\"{family}\"");
    let errors = prom.assert_tcp_rates(&selector, pairs, |src, dst| lab.path_rate_bits(src, dst));
    let worst = errors.iter().map(|e| e.abs()).fold(0.0, f64::max);
    eprintln!("{cluster}: {} pairs, worst error {:.1}%", errors.len(), worst * 100.0);
}

/// Mesh mode (clients through the real pods/exec, as the chart's ServiceAccount), star mode
/// from every node, and mesh mode again with pods/exec taken out of the chart's Role.
#[test]
fn chart_measures_every_pair_on_a_real_cluster() {
    let _lock = lab_lock();
    // Dual-stack: the mesh run measures both families; star and the run without exec IPv4 alone.
    let lab = KubeLab::up("rce", 160, &[50, 100, 150, 200], &["--ipv6"]);
    let prom = Prometheus::start_on(&lab.host, &[]);
    let ns = "iperf3-monitor";
    create_namespace(&lab, ns, "privileged");
    let base = [
        format!("push.remoteWrite.url={}", prom.remote_write_url()),
        "job.protocols={tcp}".to_string(),
        // Runs are started by hand here; the schedule must not start one in between.
        "job.suspend=true".to_string(),
    ];
    let with = |extra: &[&str]| base.iter().cloned().chain(extra.iter().map(|s| s.to_string())).collect::<Vec<_>>();

    let notes = helm_install(&lab, ns, &with(&["cluster=mesh"]));
    assert!(notes.contains("pod-security.kubernetes.io/enforce=privileged"), "NOTES name the label: {notes}");
    assert!(!notes.contains("WARNING"), "{notes}");
    lab.wait_for("server DaemonSet Ready", Duration::from_secs(90), || lab.daemonset_ready(ns, SERVERS));

    // RBAC, by the real authorizer, for a token of the chart's own ServiceAccount.
    let sa = lab.service_account_kubeconfig(ns, SA);
    assert!(lab.can_i(&sa, &["list", "pods", "-n", ns]));
    assert!(lab.can_i(&sa, &["create", "pods", "--subresource=exec", "-n", ns]));
    assert!(lab.can_i(&sa, &["get", "pods", "--subresource=exec", "-n", ns]));
    assert!(!lab.can_i(&sa, &["list", "pods", "-n", "default"]), "pods of other namespaces");
    assert!(!lab.can_i(&sa, &["create", "pods", "--subresource=exec", "-n", "default"]));
    assert!(!lab.can_i(&sa, &["list", "nodes"]), "nodes without job.discovery.nodeLabelKeys");
    assert!(!lab.can_i(&sa, &["delete", "pods", "-n", ns]));

    // Mesh: every directed pair, each client exec'd into its source node's server pod.
    let (ok, code, log, seconds) = lab.run_job(ns, CRONJOB, "mesh-1", JOB_TIMEOUT);
    eprintln!("--- mesh job ({seconds:.1} s) ---\n{log}");
    assert!(ok && code == 0, "mesh job: exit {code}");
    for family in ["ipv4", "ipv6"] {
        assert_tcp_rates(&prom, &lab, "mesh", family, &all_pairs(&lab.node_names(), &lab.node_names()));
    }

    // Star: the clients run in the job's pod; one run from each node covers every pair.
    let mut star_pairs = Vec::new();
    for node in lab.node_names() {
        let selector = format!("job.nodeSelector.kubernetes\\.io/hostname={node}");
        helm_install(&lab, ns, &with(&["cluster=star", "job.mode=star", "job.ipFamilies={ipv4}", &selector]));
        if node == "n1" {
            let sa = lab.service_account_kubeconfig(ns, SA);
            assert!(
                !lab.can_i(&sa, &["create", "pods", "--subresource=exec", "-n", ns]),
                "star mode needs no pods/exec"
            );
        }
        let (ok, code, log, seconds) = lab.run_job(ns, CRONJOB, &format!("star-{node}"), JOB_TIMEOUT);
        eprintln!("--- star job from {node} ({seconds:.1} s) ---\n{log}");
        assert!(ok && code == 0, "star job from {node}: exit {code}");
        star_pairs.extend(lab.node_names().into_iter().filter(|d| *d != node).map(|d| (node.clone(), d)));
    }
    star_pairs.sort();
    assert_tcp_rates(&prom, &lab, "star", "ipv4", &star_pairs);
    assert!(prom.query("iperf3_test_success{cluster=\"star\",ip_family=\"ipv6\"}").is_empty(), "job.ipFamilies");

    // Mesh without pods/exec in the Role: every test fails, naming the permission.
    helm_install(&lab, ns, &with(&["cluster=noexec", "job.ipFamilies={ipv4}"]));
    let rules = lab.kubectl_ok(&["-n", ns, "get", "role", CRONJOB, "-o", "jsonpath={.rules[1].resources}"]);
    assert!(rules.contains("pods/exec"), "the Role's second rule: {rules}");
    lab.kubectl_ok(&[
        "-n",
        ns,
        "patch",
        "role",
        CRONJOB,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/rules/1"}]"#,
    ]);
    let (ok, code, log, seconds) = lab.run_job(ns, CRONJOB, "noexec-1", JOB_TIMEOUT);
    eprintln!("--- mesh job without pods/exec ({seconds:.1} s) ---\n{log}");
    assert!(!ok && code == 1, "without pods/exec the run fails its tests (exit 1), not exit {code}");
    let success = prom.by_pair("iperf3_test_success{cluster=\"noexec\",protocol=\"tcp\"}");
    assert_eq!(success.len(), 12, "every pair has a failed test: {success:?}");
    assert!(success.values().all(|v| *v == 0.0), "{success:?}");
    let failures: Vec<&str> =
        log.lines().filter(|l| l.contains("\"level\":\"WARN\"") && l.contains("test failed")).collect();
    assert!(!failures.is_empty(), "the job logs its failed tests");
    for line in &failures {
        assert!(line.contains("pods/exec") || line.contains("pods\\\"/exec"), "the failure names pods/exec: {line}");
    }
}

/// server.podNetwork.enabled: the chart's second DaemonSet, on the pod network (the harness's
/// per-node pod namespace, shaped to FRACTION of the node's rate: a CNI of known cost), found
/// by the chart's set-based selector beside the host-network one; one job measures both meshes.
#[test]
fn chart_with_pod_network_measures_both_meshes() {
    const FRACTION: f64 = 0.5;
    let _lock = lab_lock();
    let lab = KubeLab::up("rcpod", 162, &[50, 100, 150], &["--pod-network", &FRACTION.to_string()]);
    let prom = Prometheus::start_on(&lab.host, &[]);
    let ns = "iperf3-monitor";
    create_namespace(&lab, ns, "privileged");
    helm_install(
        &lab,
        ns,
        &[
            format!("push.remoteWrite.url={}", prom.remote_write_url()),
            "job.protocols={tcp}".to_string(),
            "job.duration=3".to_string(),
            "job.suspend=true".to_string(),
            "cluster=pods".to_string(),
            "server.podNetwork.enabled=true".to_string(),
        ],
    );
    let pod_servers = format!("{SERVERS}-pod");
    lab.wait_for("both server DaemonSets Ready", Duration::from_secs(90), || {
        lab.daemonset_ready(ns, SERVERS) && lab.daemonset_ready(ns, &pod_servers)
    });
    // The pod-network servers have addresses of their own; their hostIP is the node's.
    let server_pods = |extra: &[&str], jsonpath: &str| {
        let mut args = vec!["-n", ns, "get", "pods", "-l", "app.kubernetes.io/component=server-pod", "-o", jsonpath];
        args.extend_from_slice(extra);
        lab.kubectl_ok(&args)
    };
    let addresses =
        server_pods(&[], "jsonpath={range .items[*]}{.spec.nodeName}={.status.podIP}={.status.hostIP} {end}");
    let mut seen: Vec<&str> = addresses.split_whitespace().collect();
    seen.sort_unstable();
    let expected: Vec<String> = (1..=3).map(|i| format!("n{i}=198.18.162.{}=198.18.162.{i}", 100 + i)).collect();
    assert_eq!(seen, expected, "pod-network server pods: {addresses}");
    // pods/exec into a pod-network pod runs in its namespace, as into a container of it.
    let pod = server_pods(&["--field-selector", "spec.nodeName=n1"], "jsonpath={.items[0].metadata.name}");
    let inside = lab.kubectl_ok(&["-n", ns, "exec", pod.trim(), "--", "ip", "-4", "-o", "addr", "show", "dev", "eth0"]);
    assert!(inside.contains(" 198.18.162.101/"), "exec into {pod}: {inside}");

    let (ok, code, log, seconds) = lab.run_job(ns, CRONJOB, "both-1", JOB_TIMEOUT);
    eprintln!("--- job over both networks ({seconds:.1} s) ---\n{log}");
    assert!(ok && code == 0, "job over both networks: exit {code}");
    let pairs = all_pairs(&lab.node_names(), &lab.node_names());
    let selector = |network: &str| format!("protocol=\"tcp\",cluster=\"pods\",network=\"{network}\"");
    prom.assert_tcp_rates(&selector("host"), &pairs, |src, dst| lab.path_rate_bits(src, dst));
    prom.assert_tcp_rates(&selector("pod"), &pairs, |src, dst| lab.path_rate_bits(src, dst) * FRACTION);
    let received = |network: &str| prom.by_pair(&format!("iperf3_received_bytes_per_second{{{}}}", selector(network)));
    let (host, pod) = (received("host"), received("pod"));
    assert_eq!((host.len(), pod.len()), (6, 6), "{host:?} {pod:?}");
    for (pair, pod_bytes) in &pod {
        let ratio = pod_bytes / host[pair];
        eprintln!(
            "{}→{}: host {:.1}, pod {:.1} Mbit/s, pod/host {ratio:.3}",
            pair.0,
            pair.1,
            host[pair] * 8e-6,
            pod_bytes * 8e-6
        );
        assert!((ratio / FRACTION - 1.0).abs() <= 0.10, "{pair:?}: pod/host {ratio}, shaped {FRACTION}");
    }
}

/// What the real Pod Security Admission makes of the chart's pods, and the chart's check of
/// the release namespace; the ClusterRole only with the values that need it.
#[test]
fn pod_security_levels_and_cluster_scope() {
    let _lock = lab_lock();
    let lab = KubeLab::up("rcpsa", 161, &[100, 100], &[]);
    let dry_run = ["job.dryRun=true".to_string(), "job.suspend=true".to_string()];

    // baseline: the chart refuses to install hostNetwork servers, saying which label to set.
    create_namespace(&lab, "psa-baseline", "baseline");
    let args = ["install", RELEASE, chart_path(), "--namespace", "psa-baseline", "--set", "job.dryRun=true"];
    let output = lab.helm(&args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "helm install into a baseline namespace must fail");
    assert!(
        stderr.contains("enforces the Pod Security level \"baseline\"")
            && stderr.contains(
                "kubectl label namespace psa-baseline --overwrite pod-security.kubernetes.io/enforce=privileged"
            ),
        "{stderr}"
    );
    // With the check only warning: the NOTES say why, and the real admission refuses the pods.
    let notes = helm_install(&lab, "psa-baseline", &[dry_run.to_vec(), vec!["podSecurity.check=warn".into()]].concat());
    assert!(notes.contains("WARNING: namespace psa-baseline enforces the Pod Security level \"baseline\""), "{notes}");
    lab.wait_for("FailedCreate events of the DaemonSet", Duration::from_secs(30), || {
        let events = lab.kubectl_ok(&[
            "-n",
            "psa-baseline",
            "get",
            "events",
            "--field-selector",
            "reason=FailedCreate",
            "-o",
            "jsonpath={.items[*].message}",
        ]);
        events.contains("violates PodSecurity \"baseline:latest\": host namespaces (hostNetwork=true), hostPort")
    });
    // Desired 2, current 0: the DaemonSet is there and has no pods.
    lab.wait_for("DaemonSet status 2 desired, 0 scheduled", Duration::from_secs(30), || {
        let status = lab.kubectl_ok(&[
            "-n",
            "psa-baseline",
            "get",
            "daemonset",
            SERVERS,
            "-o",
            "jsonpath={.status.desiredNumberScheduled}/{.status.currentNumberScheduled}",
        ]);
        status.trim() == "2/0"
    });

    // restricted, servers on the pod network: every pod of the chart is admitted and runs.
    create_namespace(&lab, "psa-restricted", "restricted");
    helm_install(
        &lab,
        "psa-restricted",
        &[dry_run.to_vec(), vec!["server.hostNetwork=false".into(), "port=5301".into()]].concat(),
    );
    lab.wait_for("pod-network servers Ready under restricted", Duration::from_secs(60), || {
        lab.daemonset_ready("psa-restricted", SERVERS)
    });
    let (ok, code, log, _) = lab.run_job("psa-restricted", CRONJOB, "dry-1", JOB_TIMEOUT);
    assert!(ok && code == 0, "the job's pod under restricted: exit {code}\n{log}");
    assert!(log.contains("round 1 (tcp)"), "a dry run prints its plan: {log}");

    // privileged, the default values: all run; which levels would the running pods pass?
    create_namespace(&lab, "psa-privileged", "privileged");
    helm_install(&lab, "psa-privileged", &dry_run);
    lab.wait_for("servers Ready under privileged", Duration::from_secs(60), || {
        lab.daemonset_ready("psa-privileged", SERVERS)
    });
    let (ok, code, _, _) = lab.run_job("psa-privileged", CRONJOB, "dry-1", JOB_TIMEOUT);
    assert!(ok && code == 0, "exit {code}");
    for level in ["baseline", "restricted"] {
        let output = lab.kubectl(&[
            "label",
            "--dry-run=server",
            "--overwrite",
            "namespace",
            "psa-privileged",
            &format!("pod-security.kubernetes.io/enforce={level}"),
        ]);
        let warnings = String::from_utf8_lossy(&output.stderr);
        eprintln!("{level}: {warnings}");
        // The two servers violate it (host namespaces, hostPort); the job's pod does not.
        assert!(
            warnings.contains(&format!("violate the new PodSecurity enforce level \"{level}:latest\"")),
            "{warnings}"
        );
        assert!(
            warnings.contains(&format!("{SERVERS}-"))
                && warnings.contains("(and 1 other pod): host namespaces, hostPort"),
            "{warnings}"
        );
        assert!(!warnings.contains("dry-1"), "the job's pod passes {level}: {warnings}");
    }

    // The ClusterRole: nodes only with nodeLabelKeys, other namespaces only with allNamespaces.
    let sa = lab.service_account_kubeconfig("psa-privileged", SA);
    assert!(!lab.can_i(&sa, &["list", "nodes"]));
    assert!(!lab.can_i(&sa, &["list", "pods", "-n", "default"]));
    helm_install(
        &lab,
        "psa-privileged",
        &[dry_run.to_vec(), vec!["job.discovery.nodeLabelKeys={kubernetes.io/hostname}".into()]].concat(),
    );
    assert!(lab.can_i(&sa, &["list", "nodes"]), "nodes with job.discovery.nodeLabelKeys");
    assert!(!lab.can_i(&sa, &["list", "pods", "-n", "default"]));
    let (ok, code, log, _) = lab.run_job("psa-privileged", CRONJOB, "dry-nodes", JOB_TIMEOUT);
    assert!(ok && code == 0, "discovery with node labels, as the ServiceAccount: exit {code}\n{log}");
    helm_install(&lab, "psa-privileged", &[dry_run.to_vec(), vec!["job.discovery.allNamespaces=true".into()]].concat());
    assert!(!lab.can_i(&sa, &["list", "nodes"]));
    assert!(lab.can_i(&sa, &["list", "pods", "-n", "default"]), "every namespace with job.discovery.allNamespaces");
    assert!(lab.can_i(&sa, &["create", "pods", "--subresource=exec", "-n", "default"]));
    let (ok, code, log, _) = lab.run_job("psa-privileged", CRONJOB, "dry-all", JOB_TIMEOUT);
    assert!(ok && code == 0, "discovery in every namespace, as the ServiceAccount: exit {code}\n{log}");
    // Servers of the restricted namespace's release match the selector too (same release name).
    assert!(log.contains("discovered iperf3 server pods"), "{log}");
}
