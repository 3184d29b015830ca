//! `iperf3-monitor with-password --password-file FILE -- PROGRAM ARGS…`: runs PROGRAM with
//! `IPERF3_PASSWORD` read from FILE.
//!
//! iperf3 takes its password only from that variable (or a terminal). A client started through
//! pods/exec cannot be given a variable (the exec API has none), and `env IPERF3_PASSWORD=… iperf3`
//! would put the password in the exec request's URL, the API server's audit log and the pod's
//! process list. So the server pods hold the password in a mounted Secret, and the exec'd command
//! is this program (the image's own), which reads the file and replaces itself with the client:
//! only the file's path crosses the API.

use std::ffi::OsString;
use std::os::unix::process::CommandExt as _;
use std::path::Path;

use crate::credentials::read_password_file;

/// The variable iperf3 reads a client's password from.
pub const PASSWORD_VARIABLE: &str = "IPERF3_PASSWORD";

/// The program that runs `with-password` in a server pod: the image's iperf3-monitor, on PATH.
pub const PROGRAM: &str = "iperf3-monitor";

/// Exit code when the password cannot be read or the program cannot be started (as a shell's
/// "cannot execute"); 127 when the program is not found. The job reads both as `spawn`.
const CANNOT_RUN: u8 = 126;
const NOT_FOUND: u8 = 127;

/// The argv that runs `argv` with the password in `password_file` (a path where it runs).
pub fn wrap(password_file: &Path, argv: &[String]) -> Vec<String> {
    let mut wrapped = vec![
        PROGRAM.to_string(),
        "with-password".into(),
        "--password-file".into(),
        password_file.to_string_lossy().into_owned(),
        "--".into(),
    ];
    wrapped.extend_from_slice(argv);
    wrapped
}

/// Replaces this process with `command` (the program and its arguments), the password in
/// `password_file` in its environment; returns only when that fails, with the exit code and the
/// message to print.
pub fn exec(password_file: &Path, command: &[OsString]) -> (u8, String) {
    let password = match read_password_file(password_file) {
        Ok(password) => password,
        Err(e) => return (CANNOT_RUN, format!("iperf3-monitor with-password: {e}")),
    };
    let Some((program, rest)) = command.split_first() else {
        return (CANNOT_RUN, "iperf3-monitor with-password: no program to run".into());
    };
    let error = std::process::Command::new(program).args(rest).env(PASSWORD_VARIABLE, password.expose()).exec();
    let code = if error.kind() == std::io::ErrorKind::NotFound { NOT_FOUND } else { CANNOT_RUN };
    (code, format!("iperf3-monitor with-password: {}: {error}", program.to_string_lossy()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wrapped_argv_names_the_file_not_the_password() {
        let argv = ["iperf3".to_string(), "--client".into(), "198.18.0.2".into()];
        assert_eq!(
            wrap(Path::new("/etc/iperf3-monitor/iperf3-auth/password"), &argv),
            [
                "iperf3-monitor",
                "with-password",
                "--password-file",
                "/etc/iperf3-monitor/iperf3-auth/password",
                "--",
                "iperf3",
                "--client",
                "198.18.0.2"
            ]
        );
    }

    #[test]
    fn an_unreadable_password_file_is_reported_not_run() {
        let (code, message) = exec(Path::new("/nonexistent/password"), &["/bin/true".into()]);
        assert_eq!(code, CANNOT_RUN);
        assert!(message.contains("/nonexistent/password"), "{message}");
    }
}
