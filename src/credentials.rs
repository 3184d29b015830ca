//! What a client needs to be let in by an authenticating iperf3 server (`iperf3 -s
//! --rsa-private-key-path … --authorized-users-path …`): the user name, the servers' public key
//! and the password, which never goes on a command line; and [`Secret`], the string type of every
//! secret (an iperf3 password, a bearer token, a basic-auth password, an extra header's value):
//! Debug shows nothing of it and nothing serialises it; [`Secret::expose`] is the one way to the
//! text, for the one place that must send it.

use std::io::Read as _;
use std::path::{Path, PathBuf};

/// Longest password file read: a password is a line, not a document.
const MAX_PASSWORD_FILE_BYTES: u64 = 4096;

#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(text: impl Into<String>) -> Secret {
        Secret(text.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(<redacted>)")
    }
}

/// What a client needs to be let in by an authenticated server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    /// The servers' RSA public key, a path where the client runs.
    pub public_key_file: String,
    /// The file holding the password: read by the job for clients it runs itself; for clients
    /// started in a server pod, a path in that pod, read there by `iperf3-monitor with-password`.
    pub password_file: PathBuf,
    /// The password, once read by the job (clients it runs itself).
    pub password: Option<Secret>,
}

impl Credentials {
    /// Checks the parts; `field` names where they came from in errors.
    pub fn new(username: String, public_key_file: String, password_file: PathBuf) -> Result<Credentials, String> {
        if username.is_empty() || username.contains(',') || username.chars().any(char::is_control) {
            return Err(format!(
                "user name {username:?} must be non-empty, without commas or control characters (the authorized users file is `name,sha256`)"
            ));
        }
        if public_key_file.is_empty() || public_key_file.contains('\0') {
            return Err("the public key file must be a path".into());
        }
        if password_file.as_os_str().is_empty() {
            return Err("the password file must be a path".into());
        }
        Ok(Credentials { username, public_key_file, password_file, password: None })
    }

    /// Reads the password from `password_file`, for clients this process starts.
    pub fn read_password(&mut self) -> Result<(), String> {
        self.password = Some(read_password_file(&self.password_file)?);
        Ok(())
    }
}

/// Reads a password file: one line, its trailing newline dropped.
pub fn read_password_file(path: &Path) -> Result<Secret, String> {
    let shown = path.display();
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read the password file {shown}: {e}"))?;
    let mut bytes = Vec::new();
    file.take(MAX_PASSWORD_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read the password file {shown}: {e}"))?;
    if bytes.len() as u64 > MAX_PASSWORD_FILE_BYTES {
        return Err(format!("the password file {shown} is longer than {MAX_PASSWORD_FILE_BYTES} bytes"));
    }
    let text = String::from_utf8(bytes).map_err(|_| format!("the password file {shown} is not UTF-8 text"))?;
    let password = text.strip_suffix('\n').map(|t| t.strip_suffix('\r').unwrap_or(t)).unwrap_or(&text);
    if password.is_empty() {
        return Err(format!("the password file {shown} is empty"));
    }
    if password.contains(['\n', '\0']) {
        return Err(format!("the password file {shown} holds more than one line"));
    }
    Ok(Secret::new(password))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_file_is_one_line() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &[u8]| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        assert_eq!(read_password_file(&file("a", b"s3cret\n")).unwrap().expose(), "s3cret");
        assert_eq!(read_password_file(&file("b", b"s3 cret\r\n")).unwrap().expose(), "s3 cret");
        assert_eq!(read_password_file(&file("c", b"no newline")).unwrap().expose(), "no newline");
        for (name, text, expected) in [
            ("d", &b""[..], "empty"),
            ("e", b"\n", "empty"),
            ("f", b"two\nlines\n", "more than one line"),
            ("g", b"\xff\xfe", "not UTF-8"),
        ] {
            let err = read_password_file(&file(name, text)).unwrap_err();
            assert!(err.contains(expected), "{name}: {err}");
        }
        let err = read_password_file(&file("h", &vec![b'x'; 5000])).unwrap_err();
        assert!(err.contains("longer than"), "{err}");
        let err = read_password_file(&dir.path().join("missing")).unwrap_err();
        assert!(err.contains("cannot read the password file"), "{err}");
    }
}
