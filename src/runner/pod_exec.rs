//! Runs clients inside a node's iperf3 server pod through the Kubernetes pods/exec API, so that
//! in mesh mode every test starts on its source node.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Status;
use kube::Client;
use kube::api::{Api, AttachParams};

use super::{ClientCommand, ClientOutput, RunError, read_capped, with_password};
use crate::targets::PodRef;

/// How much longer than the local timeout the remote client may live: the local timeout
/// closes the stream first, and `timeout` in the pod then ends a client that did not notice.
const REMOTE_GRACE: Duration = Duration::from_secs(2);

/// Execs clients into server pods.
#[derive(Clone)]
pub struct PodExecRunner {
    client: Client,
}

impl std::fmt::Debug for PodExecRunner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodExecRunner").finish_non_exhaustive()
    }
}

impl PodExecRunner {
    pub fn new(client: Client) -> Self {
        PodExecRunner { client }
    }

    /// Runs the client in `pod`, with the exit code from the exec status channel. The client
    /// runs under coreutils `timeout`, so it cannot outlive the test when the stream is closed.
    pub async fn exec(
        &self,
        pod: &PodRef,
        client: ClientCommand<'_>,
        timeout: Duration,
    ) -> Result<ClientOutput, RunError> {
        let api: Api<Pod> = Api::namespaced(self.client.clone(), &pod.namespace);
        let command = remote_command(client, timeout);
        let mut params = AttachParams::default().stdin(false).stdout(true).stderr(true);
        if let Some(container) = &pod.container {
            params = params.container(container.as_str());
        }
        let session = async {
            let mut attached =
                api.exec(&pod.name, command, &params).await.map_err(|e| RunError::Spawn(explain(e, pod)))?;
            let status = attached.take_status();
            let (stdout, stderr) = tokio::join!(read_capped(attached.stdout()), read_capped(attached.stderr()));
            let status = match status {
                Some(status) => status.await,
                None => None,
            };
            Ok(ClientOutput {
                exit_code: exit_code(status.as_ref()),
                stdout: stdout.0,
                stderr: stderr.0,
                truncated: stdout.1,
            })
        };
        // Dropping the session on timeout drops the attached process, which closes the stream.
        tokio::time::timeout(timeout, session).await.map_err(|_| RunError::Timeout(timeout))?
    }
}

/// The argv exec'd in the pod: `timeout -s KILL <limit> [with-password …] argv…`. A password
/// is read from its file in the pod (exec cannot set environment variables), never sent.
pub fn remote_command(client: ClientCommand<'_>, timeout: Duration) -> Vec<String> {
    let mut command =
        vec!["timeout".to_string(), "-s".into(), "KILL".into(), format!("{}s", (timeout + REMOTE_GRACE).as_secs())];
    match client.credentials {
        Some(credentials) => command.extend(with_password::wrap(&credentials.password_file, client.argv)),
        None => command.extend_from_slice(client.argv),
    }
    command
}

/// The exit code an exec status reports: 0 for Success, the ExitCode cause of a
/// NonZeroExitCode failure, none when the stream ended without a status.
pub fn exit_code(status: Option<&Status>) -> Option<i32> {
    let status = status?;
    if status.status.as_deref() == Some("Success") {
        return Some(0);
    }
    if status.reason.as_deref() == Some("NonZeroExitCode") {
        let causes = status.details.as_ref()?.causes.as_ref()?;
        return causes.iter().find(|c| c.reason.as_deref() == Some("ExitCode"))?.message.as_ref()?.parse().ok();
    }
    None
}

fn explain(error: kube::Error, pod: &PodRef) -> String {
    let target = format!("pod {}/{}", pod.namespace, pod.name);
    match error {
        kube::Error::Api(status) if status.code == 403 => format!(
            "exec into {target} is forbidden: {}. Grant the job's service account 'create' on 'pods/exec' in namespace {}, \
             or use --mode star, which needs no exec",
            status.message, pod.namespace
        ),
        kube::Error::Api(status) if status.code == 404 => {
            format!("{target} is gone (deleted during the run?): {}", status.message)
        }
        kube::Error::Api(status) => {
            format!("exec into {target}: {} {}: {}", status.code, status.reason, status.message)
        }
        other => format!("exec into {target}: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(json: serde_json::Value) -> Status {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn the_password_file_is_read_in_the_pod_and_the_password_never_sent() {
        let argv = ["iperf3".to_string(), "--client".into(), "10.0.0.2".into()];
        let plain = remote_command(ClientCommand { argv: &argv, credentials: None }, Duration::from_secs(20));
        assert_eq!(plain, ["timeout", "-s", "KILL", "22s", "iperf3", "--client", "10.0.0.2"]);
        let mut credentials =
            crate::credentials::Credentials::new("mon".into(), "/k.pem".into(), "/etc/auth/password".into()).unwrap();
        credentials.password = Some(crate::credentials::Secret::new("hunter2"));
        let wrapped =
            remote_command(ClientCommand { argv: &argv, credentials: Some(&credentials) }, Duration::from_secs(20));
        assert_eq!(
            wrapped,
            [
                "timeout",
                "-s",
                "KILL",
                "22s",
                "iperf3-monitor",
                "with-password",
                "--password-file",
                "/etc/auth/password",
                "--",
                "iperf3",
                "--client",
                "10.0.0.2"
            ]
        );
        assert!(!wrapped.iter().any(|a| a.contains("hunter2")));
    }

    #[test]
    fn exit_codes_come_from_the_status_channel() {
        assert_eq!(exit_code(Some(&status(serde_json::json!({"metadata": {}, "status": "Success"})))), Some(0));
        let failed = status(serde_json::json!({
            "metadata": {}, "status": "Failure",
            "message": "command terminated with non-zero exit code: error executing command [iperf3], exit code 3",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": "3"}]}
        }));
        assert_eq!(exit_code(Some(&failed)), Some(3));
        let other = status(serde_json::json!({"metadata": {}, "status": "Failure", "reason": "InternalError"}));
        assert_eq!(exit_code(Some(&other)), None);
        assert_eq!(exit_code(None), None);
    }
}
