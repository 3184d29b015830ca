//! Credentials for authenticated iperf3 servers (`iperf3 -s --rsa-private-key-path …
//! --authorized-users-path …`): the client's user name, the servers' public key and the
//! password, which never goes on a command line.

use std::path::PathBuf;

use clap::Args;

use crate::credentials::Credentials;
use crate::error::{Error, Result};

/// Flags for servers that only let authorised clients in.
#[derive(Debug, Args)]
#[command(next_help_heading = "Authenticated iperf3 servers")]
pub struct Iperf3AuthArgs {
    /// User name of the iperf3 clients (iperf3 --username), for servers started with --authorized-users-path; needs --iperf3-public-key-file and --iperf3-password-file.
    #[arg(long, env = "IPERF3_MONITOR_IPERF3_USERNAME", value_name = "NAME")]
    pub iperf3_username: Option<String>,

    /// The servers' RSA public key in PEM (iperf3 --rsa-public-key-path), a path where the clients run: on the node, or in the server pod in Kubernetes mesh mode.
    #[arg(long, env = "IPERF3_MONITOR_IPERF3_PUBLIC_KEY_FILE", value_name = "FILE")]
    pub iperf3_public_key_file: Option<String>,

    /// File holding the clients' password, given to them in IPERF3_PASSWORD, never on a command line. The job reads it when it runs the clients itself (inventory, star mode); in Kubernetes mesh mode it is a path in the server pods.
    #[arg(long, env = "IPERF3_MONITOR_IPERF3_PASSWORD_FILE", value_name = "FILE")]
    pub iperf3_password_file: Option<PathBuf>,
}

impl Iperf3AuthArgs {
    /// The run's credentials, if any. `read_password`: the job runs clients itself and needs
    /// the password (not so in Kubernetes mesh mode, where the server pods read it).
    pub fn into_credentials(self, read_password: bool) -> Result<Option<Credentials>> {
        let (username, public_key_file, password_file) = match (
            self.iperf3_username,
            self.iperf3_public_key_file,
            self.iperf3_password_file,
        ) {
            (None, None, None) => return Ok(None),
            (Some(u), Some(k), Some(p)) => (u, k, p),
            (u, k, p) => {
                let missing: Vec<&str> = [
                    (u.is_none(), "--iperf3-username"),
                    (k.is_none(), "--iperf3-public-key-file"),
                    (p.is_none(), "--iperf3-password-file"),
                ]
                .into_iter()
                .filter_map(|(missing, flag)| missing.then_some(flag))
                .collect();
                return Err(Error::config(
                    missing[0],
                    format!(
                        "authenticated iperf3 servers need all three of --iperf3-username, --iperf3-public-key-file and --iperf3-password-file; missing: {}",
                        missing.join(", ")
                    ),
                ));
            }
        };
        let mut credentials = Credentials::new(username, public_key_file, password_file)
            .map_err(|message| Error::config("--iperf3-username", message))?;
        if read_password {
            credentials.read_password().map_err(|message| Error::config("--iperf3-password-file", message))?;
        }
        Ok(Some(credentials))
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn args(u: Option<&str>, k: Option<&str>, p: Option<&Path>) -> Iperf3AuthArgs {
        Iperf3AuthArgs {
            iperf3_username: u.map(str::to_string),
            iperf3_public_key_file: k.map(str::to_string),
            iperf3_password_file: p.map(Path::to_path_buf),
        }
    }

    #[test]
    fn the_password_never_shows_in_debug_output() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("password");
        std::fs::write(&path, "hunter2-very-secret\n").unwrap();
        let credentials = args(Some("mon"), Some("/k.pem"), Some(&path)).into_credentials(true).unwrap().unwrap();
        assert_eq!(credentials.password.as_ref().unwrap().expose(), "hunter2-very-secret");
        let shown = format!("{credentials:?} {credentials:#?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
    }

    #[test]
    fn credentials_need_all_three_flags() {
        assert_eq!(args(None, None, None).into_credentials(true).unwrap(), None);
        let err = args(Some("mon"), None, None).into_credentials(true).unwrap_err().to_string();
        assert!(err.contains("--iperf3-public-key-file, --iperf3-password-file"), "{err}");
        let err = args(None, Some("/k"), Some(Path::new("/p"))).into_credentials(true).unwrap_err().to_string();
        assert!(err.starts_with("invalid --iperf3-username"), "{err}");
        let err = args(Some("a,b"), Some("/k"), Some(Path::new("/p"))).into_credentials(false).unwrap_err().to_string();
        assert!(err.contains("without commas"), "{err}");
    }

    #[test]
    fn the_password_is_read_only_when_the_job_runs_clients() {
        let missing = Path::new("/nonexistent/iperf3-password");
        let in_pods = args(Some("mon"), Some("/k.pem"), Some(missing)).into_credentials(false).unwrap().unwrap();
        assert_eq!(in_pods.password, None);
        let err = args(Some("mon"), Some("/k.pem"), Some(missing)).into_credentials(true).unwrap_err().to_string();
        assert!(err.contains("--iperf3-password-file") && err.contains("/nonexistent/iperf3-password"), "{err}");
    }
}
