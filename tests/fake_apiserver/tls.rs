//! A throwaway certificate authority and a serving certificate for 127.0.0.1, so clients reach
//! the fake over https with `certificate-authority-data`, as they reach a real API server.

use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use rustls::ServerConfig;
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The CA a kubeconfig trusts and the server configuration signed by it.
pub(crate) struct ServingTls {
    pub ca_pem: String,
    pub config: Arc<ServerConfig>,
}

/// Certificates for an API server reached at `host` (an IP address) as well as the usual names.
pub(crate) fn serving_tls(host: &str) -> Result<ServingTls, String> {
    fn err(what: &'static str) -> impl Fn(rcgen::Error) -> String {
        move |e| format!("{what}: {e}")
    }
    let ca_key = KeyPair::generate().map_err(err("CA key"))?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA params"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "fake-apiserver-ca");
    ca_params.key_usages =
        vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(err("CA certificate"))?;

    // The names a real API server's certificate carries, plus the address it is reached at.
    let mut names: Vec<String> =
        ["127.0.0.1", "localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc"]
            .map(String::from)
            .to_vec();
    if !names.iter().any(|n| n == host) {
        names.push(host.to_string());
    }
    let mut params = CertificateParams::new(names).map_err(err("serving params"))?;
    params.distinguished_name.push(DnType::CommonName, "kube-apiserver");
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let key = KeyPair::generate().map_err(err("serving key"))?;
    let cert = params.signed_by(&key, &ca).map_err(err("serving certificate"))?;

    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS versions: {e}"))?
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), ca.der().clone()],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .map_err(|e| format!("TLS serving certificate: {e}"))?;
    // kube-client speaks HTTP/1.1 only (WebSocket exec needs the HTTP/1.1 upgrade).
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(ServingTls { ca_pem: ca.pem(), config: Arc::new(config) })
}
