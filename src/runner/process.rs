//! Runs clients as local processes, behind the node's `client_command` prefix (`ssh`,
//! `ip netns exec`, ...). Argv only, never a shell.

use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::process::Command;

use super::with_password;
use super::{ClientCommand, ClientOutput, ClientRunner, RunError, read_capped};
use crate::targets::Node;

/// Starts each client as a child process of this one.
#[derive(Debug, Clone, Copy, Default)]
pub struct ProcessRunner;

impl ClientRunner for ProcessRunner {
    async fn run(&self, node: &Node, client: ClientCommand<'_>, timeout: Duration) -> Result<ClientOutput, RunError> {
        let mut full = node.client_command.iter().chain(client.argv);
        let program = full.next().ok_or_else(|| RunError::Spawn("empty command".into()))?;
        let mut command = Command::new(program);
        if let Some(credentials) = client.credentials {
            let password = credentials.password.as_ref().ok_or_else(|| {
                RunError::Spawn(format!(
                    "the password in {} was not read for a client started here",
                    credentials.password_file.display()
                ))
            })?;
            // Through the environment (of client_command's program, which passes it on), never argv.
            command.env(with_password::PASSWORD_VARIABLE, password.expose());
        }
        command
            .args(full)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            // A group of its own, so a timeout kills the client's children too.
            .process_group(0);
        let mut child = command.spawn().map_err(|e| RunError::Spawn(format!("{program}: {e}")))?;
        let group = child.id().and_then(|id| i32::try_from(id).ok()).map(Pid::from_raw);
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        let finished = async {
            let (stdout, stderr, status) = tokio::join!(read_capped(stdout), read_capped(stderr), child.wait());
            (stdout, stderr, status)
        };
        match tokio::time::timeout(timeout, finished).await {
            Ok(((stdout, truncated), (stderr, _), status)) => {
                let status = status.map_err(|e| RunError::Spawn(format!("waiting for {program}: {e}")))?;
                Ok(ClientOutput { exit_code: status.code(), stdout, stderr, truncated })
            }
            Err(_) => {
                if let Some(group) = group {
                    // The group may already be gone; nothing more to do then.
                    let _ = killpg(group, Signal::SIGKILL);
                }
                Err(RunError::Timeout(timeout))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(prefix: &[&str]) -> Node {
        Node::new("n", "127.0.0.1", 5201, prefix.iter().map(|s| s.to_string()).collect())
    }

    fn argv(args: &[&str]) -> Vec<String> {
        args.iter().map(|s| s.to_string()).collect()
    }

    fn plain(argv: &[String]) -> ClientCommand<'_> {
        ClientCommand { argv, credentials: None }
    }

    #[tokio::test]
    async fn runs_argv_behind_the_prefix_without_a_shell() {
        let out = ProcessRunner
            .run(&node(&["env"]), plain(&argv(&["printf", "%s", "$(echo no shell);"])), Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(out.stdout, b"$(echo no shell);");
        assert_eq!(out.exit_code, Some(0));
    }

    #[tokio::test]
    async fn a_timeout_kills_the_client_and_its_children() {
        // A sleep length unique to this test process, to find what is left running.
        let marker = format!("sleep 31.{}", std::process::id());
        let started = std::time::Instant::now();
        // sh is only the program under test here: it starts a grandchild that would outlive it.
        let err = ProcessRunner
            .run(&node(&[]), plain(&argv(&["sh", "-c", &format!("{marker} & {marker}")])), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Timeout(_)), "{err}");
        assert!(started.elapsed() < Duration::from_secs(5));
        tokio::time::sleep(Duration::from_millis(200)).await;
        let ps = std::process::Command::new("pgrep").args(["-f", &marker]).output().unwrap();
        assert!(ps.stdout.is_empty(), "left running: {}", String::from_utf8_lossy(&ps.stdout));
    }

    #[tokio::test]
    async fn a_missing_program_is_a_spawn_error() {
        let err = ProcessRunner
            .run(&node(&[]), plain(&argv(&["/nonexistent/iperf3"])), Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Spawn(ref m) if m.contains("/nonexistent/iperf3")), "{err}");
    }

    #[tokio::test]
    async fn huge_output_is_capped() {
        let out = ProcessRunner
            .run(&node(&[]), plain(&argv(&["head", "-c", "10000000", "/dev/zero"])), Duration::from_secs(10))
            .await
            .unwrap();
        assert_eq!(out.stdout.len(), crate::runner::MAX_OUTPUT_BYTES);
        assert!(out.truncated);
    }

    #[tokio::test]
    async fn the_password_goes_to_the_client_in_its_environment_only() {
        let mut credentials =
            crate::credentials::Credentials::new("mon".into(), "/k.pem".into(), "/pw".into()).unwrap();
        credentials.password = Some(crate::credentials::Secret::new("hunter2"));
        // `env` behind an `env` prefix: the variable passes through client_command.
        let command = argv(&["env"]);
        let out = ProcessRunner
            .run(
                &node(&["env"]),
                ClientCommand { argv: &command, credentials: Some(&credentials) },
                Duration::from_secs(5),
            )
            .await
            .unwrap();
        let env = String::from_utf8(out.stdout).unwrap();
        assert!(env.lines().any(|l| l == "IPERF3_PASSWORD=hunter2"), "{env}");
        credentials.password = None;
        let err = ProcessRunner
            .run(&node(&[]), ClientCommand { argv: &command, credentials: Some(&credentials) }, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert!(matches!(err, RunError::Spawn(ref m) if m.contains("was not read")), "{err}");
    }
}
