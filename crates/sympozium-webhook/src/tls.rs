//! TLS for the webhook: a rustls server configuration from PEM files (a provided
//! certificate, e.g. cert-manager's Secret), or a freshly generated CA and serving
//! certificate for installs without cert-manager and for tests.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::ServerConfig;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

/// TLS setup errors.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The PEM data could not be read.
    #[error("reading PEM: {0}")]
    Pem(String),
    /// The PEM data held no certificate.
    #[error("no certificate in the certificate file")]
    NoCertificate,
    /// rustls refused the certificate or key.
    #[error("TLS configuration: {0}")]
    Rustls(#[from] rustls::Error),
    /// Generating a certificate failed.
    #[error("generating a certificate: {0}")]
    Generate(#[from] rcgen::Error),
}

/// A rustls server configuration (TLS 1.2+, ring, HTTP/2 and HTTP/1.1) for the PEM
/// certificate chain and private key.
pub fn server_config(cert_pem: &[u8], key_pem: &[u8]) -> Result<Arc<ServerConfig>, TlsError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem).map_err(|e| TlsError::Pem(e.to_string()))?;
    let mut config = ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// A generated CA and a serving certificate it signed, all PEM.
#[derive(Clone, Debug)]
pub struct Generated {
    /// The CA certificate: the `caBundle` of the webhook configuration.
    pub ca_pem: String,
    /// The serving certificate.
    pub cert_pem: String,
    /// The serving certificate's private key.
    pub key_pem: String,
}

/// Generates a CA and a serving certificate for `hosts` (DNS names or IP addresses).
pub fn generate(hosts: &[String]) -> Result<Generated, TlsError> {
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.distinguished_name.push(DnType::CommonName, "sympozium-webhook-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
    let mut params = CertificateParams::new(hosts.to_vec())?;
    params
        .distinguished_name
        .push(DnType::CommonName, hosts.first().map(String::as_str).unwrap_or("webhook"));
    let key = KeyPair::generate()?;
    let cert = params.signed_by(&key, &ca)?;
    Ok(Generated { ca_pem: ca.pem(), cert_pem: cert.pem(), key_pem: key.serialize_pem() })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn generated_certificates_make_a_server_configuration() {
        let g = generate(&["127.0.0.1".into(), "sympozium-webhook.sympozium-system.svc".into()]).unwrap();
        assert!(g.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        let config = server_config(g.cert_pem.as_bytes(), g.key_pem.as_bytes()).unwrap();
        assert_eq!(config.alpn_protocols[0], b"h2");
        assert!(matches!(server_config(b"", g.key_pem.as_bytes()), Err(TlsError::NoCertificate)));
        assert!(server_config(g.cert_pem.as_bytes(), b"not a key").is_err());
    }
}
