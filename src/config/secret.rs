//! A secret string: an iperf3 password, a bearer token, a basic-auth password, an extra header's
//! value. Debug shows nothing of it and nothing serialises it; [`Secret::expose`] is the one way
//! to the text, for the one place that must send it.

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
