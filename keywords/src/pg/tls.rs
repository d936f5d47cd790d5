//! TLS for PostgreSQL connections (rustls): the server's certificate is
//! checked against the system's trusted roots and the CA certificates of the
//! resource's `ca` file, or — for a resource with `"insecure": true`, as for
//! test servers with self-signed certificates — not at all (the connection
//! is still encrypted).

use std::sync::Arc;

use rustls::ClientConfig;
use rustls_platform_verifier::Verifier;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::tls::AnyCertificate;

/// A TLS connector for tokio-postgres; `ca` names a PEM file of extra trusted roots.
pub(crate) fn connector(insecure: bool, ca: Option<&str>) -> Result<MakeRustlsConnect, String> {
    let extra = match ca {
        Some(path) => crate::tls::read_ca(path)?,
        None => Vec::new(),
    };
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("TLS set-up: {e}"))?;
    let config = if insecure {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
            .with_no_client_auth()
    } else {
        let verifier = Verifier::new_with_extra_roots(extra, provider)
            .map_err(|e| format!("TLS set-up: {e}"))?;
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_no_client_auth()
    };
    Ok(MakeRustlsConnect::new(config))
}
