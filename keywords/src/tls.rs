//! TLS client settings shared by keywords whose resources take a `ca` file.

use std::sync::Arc;

use rustls::ClientConfig;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

/// The certificates of the PEM file `path`.
pub(crate) fn read_ca(path: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .map_err(|e| format!("cannot read the CA file `{path}`: {e}"))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("the CA file `{path}`: {e}"))?;
    if certs.is_empty() {
        return Err(format!("the CA file `{path}` holds no PEM certificate"));
    }
    Ok(certs)
}

/// A rustls client configuration that trusts the system's roots and the CA
/// certificates of the PEM file `ca`.
pub(crate) fn with_ca(ca: &str) -> Result<Arc<ClientConfig>, String> {
    let roots = read_ca(ca)?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let verifier =
        rustls_platform_verifier::Verifier::new_with_extra_roots(roots, provider.clone())
            .map_err(|e| format!("TLS set-up: {e}"))?;
    let config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}
