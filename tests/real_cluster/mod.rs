//! A lab cluster for the end-to-end tests: scripts/kube-lab.sh (the namespace lab as the nodes
//! of a real etcd + kube-apiserver + controller-manager + scheduler, kwok per node, and
//! tests/real_cluster/kubelet.py running the pods for real), with kubectl and helm against it.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use crate::common::{binary, repo};

/// A lab cluster, torn down on drop (also after a failed assertion).
pub struct KubeLab {
    pub name: String,
    pub subnet: u8,
    /// Shaped rate of each node in Mbit/s, n1 first.
    pub rates: Vec<f64>,
    pub kubeconfig: PathBuf,
    /// This machine's address on the lab bridge: pods reach services started there.
    pub host: String,
    pub api_server: String,
    /// Where the harness writes each pod's output: NAMESPACE_POD.log.
    pub pod_logs: PathBuf,
    bin: PathBuf,
    helm: PathBuf,
    dir: tempfile::TempDir,
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// The helm that scripts/check-chart.sh installs (pinned), installed now if it is not yet.
fn helm() -> PathBuf {
    let tools = std::env::var_os("IPERF3_MONITOR_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache/iperf3-monitor-tools"));
    let helm = tools.join("bin/helm");
    if !helm.exists() {
        let status = Command::new(repo().join("scripts/check-chart.sh")).arg("--install-tools").status().unwrap();
        assert!(status.success(), "scripts/check-chart.sh --install-tools failed");
    }
    helm
}

impl KubeLab {
    /// `scripts/kube-lab.sh up NAME --nodes N --rates ...`, with the chart's job command
    /// `iperf3-monitor` mapped to the binary under test.
    /// `extra`: more `scripts/kube-lab.sh up` flags (`--ipv6`).
    pub fn up(name: &str, subnet: u8, rates: &[u32], extra: &[&str]) -> KubeLab {
        let helm = helm();
        let started = Instant::now();
        let rates_arg = rates.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let output = Command::new(repo().join("scripts/kube-lab.sh"))
            .args(["up", name, "--nodes", &rates.len().to_string(), "--rates", &rates_arg])
            .args(["--subnet", &subnet.to_string(), "--bin", &format!("iperf3-monitor={}", binary())])
            .args(extra)
            .output()
            .expect("running scripts/kube-lab.sh");
        eprintln!("{}", text(&output.stderr));
        assert!(output.status.success(), "kube-lab.sh up failed (needs root, and Go for a first build)");
        let stdout = text(&output.stdout);
        let field = |key: &str| {
            stdout
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .unwrap_or_else(|| panic!("no {key} in kube-lab.sh's output: {stdout}"))
                .trim()
                .to_string()
        };
        let bin = Command::new(repo().join("scripts/k8s/build.sh")).output().unwrap();
        assert!(bin.status.success());
        let lab = KubeLab {
            name: name.into(),
            subnet,
            rates: rates.iter().map(|r| f64::from(*r)).collect(),
            kubeconfig: PathBuf::from(stdout.lines().last().unwrap().trim()),
            host: field("host-address:"),
            api_server: field("api-server:"),
            pod_logs: PathBuf::from(field("pod-logs:")),
            bin: PathBuf::from(text(&bin.stdout).lines().last().unwrap().trim()),
            helm,
            dir: tempfile::tempdir().unwrap(),
        };
        eprintln!("lab cluster {name} up in {:.1} s", started.elapsed().as_secs_f64());
        lab
    }

    /// The shaped rate of the path from node `src` to node `dst` (n1, n2, ...), in bit/s.
    pub fn path_rate_bits(&self, src: &str, dst: &str) -> f64 {
        let rate = |name: &str| self.rates[name[1..].parse::<usize>().unwrap() - 1];
        rate(src).min(rate(dst)) * 1e6
    }

    pub fn node_names(&self) -> Vec<String> {
        (1..=self.rates.len()).map(|i| format!("n{i}")).collect()
    }

    /// kubectl as the cluster's admin.
    pub fn kubectl(&self, args: &[&str]) -> Output {
        self.kubectl_with(&self.kubeconfig, args)
    }

    pub fn kubectl_with(&self, kubeconfig: &Path, args: &[&str]) -> Output {
        Command::new(self.bin.join("kubectl"))
            .arg(format!("--kubeconfig={}", kubeconfig.display()))
            .args(args)
            .output()
            .unwrap()
    }

    /// kubectl as the admin; panics unless it succeeds; its stdout.
    pub fn kubectl_ok(&self, args: &[&str]) -> String {
        let output = self.kubectl(args);
        assert!(output.status.success(), "kubectl {args:?}: {}{}", text(&output.stdout), text(&output.stderr));
        text(&output.stdout)
    }

    pub fn helm(&self, args: &[&str]) -> Output {
        Command::new(&self.helm).args(args).env("KUBECONFIG", &self.kubeconfig).output().unwrap()
    }

    /// A kubeconfig that authenticates with a token of ServiceAccount `sa` (TokenRequest):
    /// what the job's pod holds.
    pub fn service_account_kubeconfig(&self, namespace: &str, sa: &str) -> PathBuf {
        let token = self.kubectl_ok(&["-n", namespace, "create", "token", sa, "--duration=1h"]);
        let ca = self.kubectl_ok(&[
            "config",
            "view",
            "--raw",
            "--minify",
            "-o",
            "jsonpath={.clusters[0].cluster.certificate-authority-data}",
        ]);
        let path = self.dir.path().join(format!("{namespace}-{sa}.kubeconfig"));
        std::fs::write(
            &path,
            format!(
                "apiVersion: v1\nkind: Config\nclusters:\n- name: lab\n  cluster:\n    server: {}\n    certificate-authority-data: {}\nusers:\n- name: sa\n  user:\n    token: {}\ncontexts:\n- name: lab\n  context: {{cluster: lab, user: sa}}\ncurrent-context: lab\n",
                self.api_server,
                ca.trim(),
                token.trim()
            ),
        )
        .unwrap();
        path
    }

    /// `kubectl auth can-i VERB RESOURCE [flags]` with `kubeconfig`: true for yes.
    pub fn can_i(&self, kubeconfig: &Path, args: &[&str]) -> bool {
        let mut argv = vec!["auth", "can-i"];
        argv.extend_from_slice(args);
        let output = self.kubectl_with(kubeconfig, &argv);
        match output.status.code() {
            Some(0) => true,
            Some(1) => false,
            _ => panic!("kubectl auth can-i {args:?}: {}", text(&output.stderr)),
        }
    }

    /// Waits until `check` holds, every 0.5 s, at most `timeout`; panics with `what`.
    pub fn wait_for(&self, what: &str, timeout: Duration, mut check: impl FnMut() -> bool) {
        let deadline = Instant::now() + timeout;
        while !check() {
            assert!(Instant::now() < deadline, "{what}: not after {} s", timeout.as_secs());
            std::thread::sleep(Duration::from_millis(500));
        }
    }

    /// `kubectl create job --from=cronjob/CRONJOB JOB`, then waits for it to succeed or fail.
    /// Returns (succeeded, the exit code of its pod, its pod's output, seconds).
    pub fn run_job(&self, namespace: &str, cronjob: &str, job: &str, timeout: Duration) -> (bool, i64, String, f64) {
        let started = Instant::now();
        self.kubectl_ok(&["-n", namespace, "create", "job", &format!("--from=cronjob/{cronjob}"), job]);
        let mut outcome = None;
        self.wait_for(&format!("job {namespace}/{job} finished"), timeout, || {
            let status = self.kubectl_ok(&[
                "-n",
                namespace,
                "get",
                "job",
                job,
                "-o",
                "jsonpath={.status.succeeded}/{.status.failed}",
            ]);
            outcome = match status.trim() {
                "1/" => Some(true),
                "/1" => Some(false),
                _ => None,
            };
            outcome.is_some()
        });
        let seconds = started.elapsed().as_secs_f64();
        let pod = self.kubectl_ok(&[
            "-n",
            namespace,
            "get",
            "pods",
            "-l",
            &format!("job-name={job}"),
            "-o",
            "jsonpath={.items[0].metadata.name}",
        ]);
        let code = self.kubectl_ok(&[
            "-n",
            namespace,
            "get",
            "pod",
            pod.trim(),
            "-o",
            "jsonpath={.status.containerStatuses[0].state.terminated.exitCode}",
        ]);
        let log =
            std::fs::read_to_string(self.pod_logs.join(format!("{namespace}_{}.log", pod.trim()))).unwrap_or_default();
        (outcome.unwrap(), code.trim().parse().unwrap_or(-1), log, seconds)
    }

    /// The DaemonSet's pods are all scheduled and Ready (numberReady = desiredNumberScheduled > 0).
    pub fn daemonset_ready(&self, namespace: &str, name: &str) -> bool {
        let status = self.kubectl_ok(&[
            "-n",
            namespace,
            "get",
            "daemonset",
            name,
            "-o",
            "jsonpath={.status.desiredNumberScheduled}/{.status.numberReady}",
        ]);
        let (desired, ready) = status.trim().split_once('/').unwrap();
        !desired.is_empty() && desired != "0" && desired == ready
    }
}

impl Drop for KubeLab {
    fn drop(&mut self) {
        let _ = Command::new(repo().join("scripts/kube-lab.sh")).args(["down", &self.name]).status();
    }
}
