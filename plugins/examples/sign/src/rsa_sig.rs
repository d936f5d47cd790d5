//! RSA signatures as payment APIs use them: PKCS#1 v1.5 over SHA-256
//! ("RSA2") or SHA-1 ("RSA"), keys given inline or in a file, as PEM
//! (PKCS#8 or PKCS#1) or as the bare base64 DER that API consoles hand out.

use std::path::Path;

use atf_sdk::{Call, KeywordError, KeywordResult, Value, json};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs1v15::{Signature, SigningKey, VerifyingKey};
use rsa::pkcs8::{DecodePrivateKey, DecodePublicKey};
use rsa::signature::{SignatureEncoding, Signer, Verifier};
use rsa::{RsaPrivateKey, RsaPublicKey};

use crate::codec;

enum Hash {
    Sha256,
    Sha1,
}

fn hash(call: &Call<'_>) -> Result<Hash, KeywordError> {
    match call.str_arg("hash")?.unwrap_or("sha256") {
        "sha256" | "SHA256" | "RSA2" => Ok(Hash::Sha256),
        "sha1" | "SHA1" | "RSA" => Ok(Hash::Sha1),
        other => Err(KeywordError::new(format!(
            "unknown `hash` `{other}`: use `sha256` or `sha1`"
        ))),
    }
}

/// The key text from `<name>` or `<name>_file` (relative to the case file).
fn key_source(call: &Call<'_>, name: &str) -> Result<Vec<u8>, KeywordError> {
    let file_arg = format!("{name}_file");
    match (call.str_arg(name)?, call.str_arg(&file_arg)?) {
        (Some(_), Some(_)) => Err(KeywordError::new(format!(
            "give either `{name}` or `{file_arg}`, not both"
        ))),
        (Some(text), None) => Ok(text.as_bytes().to_vec()),
        (None, Some(file)) => {
            let path = call.base_dir.join(Path::new(file));
            std::fs::read(&path).map_err(|e| {
                KeywordError::new(format!("cannot read `{file_arg}` {}: {e}", path.display()))
            })
        }
        (None, None) => Err(KeywordError::new(format!(
            "argument `{name}` or `{file_arg}` is required"
        ))),
    }
}

/// PEM text, or DER as bare base64 text or as raw bytes.
enum KeyText {
    Pem(String),
    Der(Vec<u8>),
}

fn key_text(bytes: Vec<u8>) -> KeyText {
    match String::from_utf8(bytes) {
        Ok(text) if text.contains("-----BEGIN") => KeyText::Pem(text),
        Ok(text) => {
            let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            match BASE64.decode(&compact) {
                Ok(der) => KeyText::Der(der),
                Err(_) => KeyText::Der(compact.into_bytes()),
            }
        }
        Err(e) => KeyText::Der(e.into_bytes()),
    }
}

fn private_key(call: &Call<'_>) -> Result<RsaPrivateKey, KeywordError> {
    let parsed = match key_text(key_source(call, "private_key")?) {
        KeyText::Pem(pem) => RsaPrivateKey::from_pkcs8_pem(&pem)
            .or_else(|_| RsaPrivateKey::from_pkcs1_pem(&pem))
            .ok(),
        KeyText::Der(der) => RsaPrivateKey::from_pkcs8_der(&der)
            .or_else(|_| RsaPrivateKey::from_pkcs1_der(&der))
            .ok(),
    };
    parsed.ok_or_else(|| {
        KeywordError::new(
            "the private key is not an RSA key in PEM (PKCS#8 or PKCS#1) or base64 DER form",
        )
    })
}

fn public_key(call: &Call<'_>) -> Result<RsaPublicKey, KeywordError> {
    let parsed = match key_text(key_source(call, "public_key")?) {
        KeyText::Pem(pem) => RsaPublicKey::from_public_key_pem(&pem)
            .or_else(|_| RsaPublicKey::from_pkcs1_pem(&pem))
            .ok(),
        KeyText::Der(der) => RsaPublicKey::from_public_key_der(&der)
            .or_else(|_| RsaPublicKey::from_pkcs1_der(&der))
            .ok(),
    };
    parsed.ok_or_else(|| {
        KeywordError::new(
            "the public key is not an RSA public key in PEM (`PUBLIC KEY` or `RSA PUBLIC KEY`) or base64 DER form",
        )
    })
}

fn with_text(mut result: Value, text: Option<String>) -> Value {
    if let Some(text) = text {
        result["signed_text"] = Value::String(text);
    }
    result
}

/// `sign.rsa_sign`.
pub(crate) fn rsa_sign(call: &Call<'_>) -> KeywordResult {
    let msg = codec::message(call, true)?;
    let hash = hash(call)?;
    let key = private_key(call)?;
    let signature = match hash {
        Hash::Sha256 => SigningKey::<sha2::Sha256>::new(key)
            .try_sign(&msg.bytes)
            .map(|s| s.to_vec()),
        Hash::Sha1 => SigningKey::<sha1::Sha1>::new(key)
            .try_sign(&msg.bytes)
            .map(|s| s.to_vec()),
    }
    .map_err(|e| KeywordError::new(format!("signing failed: {e}")))?;
    let signature = codec::encode(call, &signature, "base64")?;
    Ok(with_text(json!({ "signature": signature }), msg.text))
}

/// `sign.rsa_verify`.
pub(crate) fn rsa_verify(call: &Call<'_>) -> KeywordResult {
    let msg = codec::message(call, true)?;
    let hash = hash(call)?;
    let key = public_key(call)?;
    let encoding = call.str_arg("signature_encoding")?.unwrap_or("base64");
    if encoding == "text" {
        return Err("`signature_encoding` is `base64` or `hex`".into());
    }
    let bytes = codec::decode(call.required_str("signature")?, encoding, "signature")?;
    let valid = match Signature::try_from(bytes.as_slice()) {
        Err(_) => false,
        Ok(signature) => match hash {
            Hash::Sha256 => VerifyingKey::<sha2::Sha256>::new(key)
                .verify(&msg.bytes, &signature)
                .is_ok(),
            Hash::Sha1 => VerifyingKey::<sha1::Sha1>::new(key)
                .verify(&msg.bytes, &signature)
                .is_ok(),
        },
    };
    Ok(with_text(json!({ "valid": valid }), msg.text))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::{run, run_in};

    const PKCS1: &str = include_str!("../testdata/test-key-pkcs1.pem");
    const PKCS8: &str = include_str!("../testdata/test-key-pkcs8.pem");
    const SPKI: &str = include_str!("../testdata/test-pub-spki.pem");
    const PUB1: &str = include_str!("../testdata/test-pub-pkcs1.pem");
    const SIG256: &str = include_str!("../testdata/sig-sha256.b64");
    const SIG1: &str = include_str!("../testdata/sig-sha1.b64");

    fn testdata() -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("testdata")
    }

    /// The base64 body of a PEM text, as API consoles show keys.
    fn bare(pem: &str) -> String {
        pem.lines().filter(|l| !l.starts_with("-----")).collect()
    }

    #[test]
    fn signatures_match_openssl() {
        for key in [PKCS1.to_owned(), PKCS8.to_owned(), bare(PKCS8), bare(PKCS1)] {
            let out = run(rsa_sign, json!({"data": "a=1&b=2", "private_key": key})).unwrap();
            assert_eq!(out["signature"], SIG256.trim());
            assert_eq!(out["signed_text"], "a=1&b=2");
        }
        let out = run(
            rsa_sign,
            json!({"params": {"b": 2, "a": 1, "sign": "old", "x": ""}, "private_key": PKCS8, "hash": "sha1"}),
        )
        .unwrap();
        assert_eq!(out["signature"], SIG1.trim());
        assert_eq!(out["signed_text"], "a=1&b=2");
    }

    #[test]
    fn key_files_relative_to_the_case() {
        let out = run_in(
            rsa_sign,
            json!({"data": "a=1&b=2", "private_key_file": "test-key-pkcs8.pem", "output": "hex"}),
            &testdata(),
        )
        .unwrap();
        let hex_sig = hex::encode(BASE64.decode(SIG256.trim()).unwrap());
        assert_eq!(out["signature"], hex_sig);
        let out = run_in(
            rsa_verify,
            json!({"data": "a=1&b=2", "public_key_file": "test-pub-spki.pem", "signature": hex_sig, "signature_encoding": "hex"}),
            &testdata(),
        )
        .unwrap();
        assert_eq!(out["valid"], true);
        let err = run_in(
            rsa_sign,
            json!({"data": "x", "private_key_file": "missing.pem"}),
            &testdata(),
        )
        .unwrap_err();
        assert!(
            err.message.contains("cannot read `private_key_file`"),
            "{err}"
        );
    }

    #[test]
    fn verify_accepts_good_and_rejects_bad() {
        for key in [SPKI.to_owned(), PUB1.to_owned(), bare(SPKI)] {
            let ok = run(
                rsa_verify,
                json!({"data": "a=1&b=2", "signature": SIG256.trim(), "public_key": key}),
            )
            .unwrap();
            assert_eq!(ok["valid"], true, "{key}");
        }
        let tampered = run(
            rsa_verify,
            json!({"data": "a=1&b=3", "signature": SIG256.trim(), "public_key": SPKI}),
        )
        .unwrap();
        assert_eq!(tampered["valid"], false);
        let wrong_hash = run(
            rsa_verify,
            json!({"data": "a=1&b=2", "signature": SIG256.trim(), "public_key": SPKI, "hash": "sha1"}),
        )
        .unwrap();
        assert_eq!(wrong_hash["valid"], false);
        let short = run(
            rsa_verify,
            json!({"data": "a=1&b=2", "signature": "AAAA", "public_key": SPKI}),
        )
        .unwrap();
        assert_eq!(short["valid"], false);
    }

    #[test]
    fn key_errors() {
        let err = |f, args| run(f, args).unwrap_err().message;
        assert!(
            err(rsa_sign, json!({"data": "x"}))
                .contains("`private_key` or `private_key_file` is required")
        );
        assert!(
            err(rsa_sign, json!({"data": "x", "private_key": "nonsense"}))
                .contains("not an RSA key")
        );
        assert!(
            err(rsa_sign, json!({"data": "x", "private_key": SPKI})).contains("not an RSA key")
        );
        assert!(
            err(
                rsa_sign,
                json!({"data": "x", "params": {}, "private_key": PKCS8})
            )
            .contains("not both")
        );
        assert!(err(rsa_sign, json!({"private_key": PKCS8})).contains("`data` or `params`"));
        assert!(
            err(
                rsa_sign,
                json!({"data": "x", "private_key": PKCS8, "hash": "md5"})
            )
            .contains("unknown `hash`")
        );
        assert!(
            err(
                rsa_verify,
                json!({"data": "x", "signature": "AA==", "public_key": PKCS8})
            )
            .contains("not an RSA public key")
        );
    }
}
