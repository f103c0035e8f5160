//! HTTPS, when asked for: a certificate authority made at start, and a server certificate it signs
//! for `localhost`, `127.0.0.1` and `::1`. A client trusts the emulator by trusting the authority's
//! PEM (the function: `SSL_CERT_FILE`; Python: `ssl.create_default_context(cafile=...)`). Nothing is
//! read from or written to disk here; the binary writes the PEM where `--tls CA_FILE` says.

use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio_rustls::TlsAcceptor;

use crate::config::EmulatorError;

pub(crate) struct Tls {
    pub acceptor: TlsAcceptor,
    /// The certificate authority's certificate, PEM.
    pub ca_pem: String,
}

impl Tls {
    pub fn generate() -> Result<Tls, EmulatorError> {
        let fail = |e: &dyn std::fmt::Display| EmulatorError::Tls(e.to_string());
        let mut authority = CertificateParams::new(Vec::<String>::new()).map_err(|e| fail(&e))?;
        authority.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        authority.distinguished_name.push(DnType::CommonName, "partner-central-emulator local CA");
        authority.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let authority = CertifiedIssuer::self_signed(authority, KeyPair::generate().map_err(|e| fail(&e))?)
            .map_err(|e| fail(&e))?;

        let names = ["localhost", "127.0.0.1", "::1"].map(str::to_owned).to_vec();
        let mut server = CertificateParams::new(names).map_err(|e| fail(&e))?;
        server.distinguished_name.push(DnType::CommonName, "partner-central-emulator");
        let key = KeyPair::generate().map_err(|e| fail(&e))?;
        let certificate = server.signed_by(&key, &authority).map_err(|e| fail(&e))?;

        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| fail(&e))?
            .with_no_client_auth()
            .with_single_cert(
                vec![certificate.der().clone()],
                PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
            )
            .map_err(|e| fail(&e))?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Tls { acceptor: TlsAcceptor::from(Arc::new(config)), ca_pem: authority.pem() })
    }
}
