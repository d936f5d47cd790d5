//! The `sign` plugin of atf: the digests, ciphers and signatures that
//! Chinese payment and banking APIs ask of their callers — SM3 (and
//! HMAC-SM3), SM4 in ECB or CBC mode with PKCS#7 padding, RSA signatures
//! (PKCS#1 v1.5 with SHA-256, or SHA-1 for older APIs) with PEM or bare
//! base64 keys, and the usual "sorted `key=value&...`" text that such APIs
//! sign. Every keyword takes its message as `data` (text, or hex/base64
//! bytes with `input`), and the signing keywords may take `params`, an
//! object turned into that sorted text first.

mod codec;
mod rsa_sig;
mod sm;

use atf_sdk::{FnKeyword, KeywordSpec};

atf_sdk::export_plugin! {
    namespace: "sign",
    keywords: [
        FnKeyword::new(
            KeywordSpec::new("sm3", "SM3 digest (GM/T 0004-2012), or HMAC-SM3 when a key is given")
                .required("data", "string|object|array|number", codec::DATA_DOC)
                .arg("input", "string", codec::INPUT_DOC)
                .arg("key", "string", "HMAC key as text: the digest becomes HMAC-SM3")
                .arg("output", "string", codec::OUTPUT_DOC)
                .result("`digest`: the digest, lower-case hex unless `output` says otherwise"),
            sm::sm3,
        ),
        FnKeyword::new(
            KeywordSpec::new("sm4_encrypt", "SM4 encryption (GB/T 32907-2016), ECB or CBC")
                .required("data", "string|object|array|number", codec::DATA_DOC)
                .arg("input", "string", codec::INPUT_DOC)
                .required("key", "string", sm::KEY_DOC)
                .arg("mode", "string", "`ecb` (default) or `cbc`")
                .arg("iv", "string", "CBC initialisation vector: 16 bytes, written like `key`")
                .arg("padding", "string", "`pkcs7` (default) or `none` (data a multiple of 16 bytes)")
                .arg("output", "string", codec::OUTPUT_DOC)
                .result("`cipher`: the cipher text, lower-case hex unless `output` says otherwise"),
            sm::sm4_encrypt,
        ),
        FnKeyword::new(
            KeywordSpec::new("sm4_decrypt", "SM4 decryption, ECB or CBC")
                .required("data", "string", "the cipher text")
                .arg("input", "string", "how `data` is written: `hex` (default) or `base64`")
                .required("key", "string", sm::KEY_DOC)
                .arg("mode", "string", "`ecb` (default) or `cbc`")
                .arg("iv", "string", "CBC initialisation vector: 16 bytes, written like `key`")
                .arg("padding", "string", "`pkcs7` (default) or `none`")
                .arg("output", "string", "`text` (UTF-8, default), `hex`, `hex_upper` or `base64`")
                .result("`plain`: the plain text"),
            sm::sm4_decrypt,
        ),
        FnKeyword::new(
            KeywordSpec::new("rsa_sign", "RSA signature (PKCS#1 v1.5, SHA-256 by default)")
                .arg("data", "string|object|array|number", codec::DATA_DOC)
                .arg("input", "string", codec::INPUT_DOC)
                .arg("params", "object", codec::PARAMS_DOC)
                .arg("exclude", "array", codec::EXCLUDE_DOC)
                .arg("skip_empty", "boolean", codec::SKIP_EMPTY_DOC)
                .arg("private_key", "string", "PEM (PKCS#8 or PKCS#1) or bare base64 DER")
                .arg("private_key_file", "string", "a file holding the key, relative to the case file")
                .arg("hash", "string", "`sha256` (default, \"RSA2\") or `sha1` (\"RSA\")")
                .arg("output", "string", "`base64` (default), `hex` or `hex_upper`")
                .result("`signature`; `signed_text`: the exact text signed (when it is text)"),
            rsa_sig::rsa_sign,
        ),
        FnKeyword::new(
            KeywordSpec::new("rsa_verify", "checks an RSA signature (PKCS#1 v1.5, SHA-256 by default)")
                .arg("data", "string|object|array|number", codec::DATA_DOC)
                .arg("input", "string", codec::INPUT_DOC)
                .arg("params", "object", codec::PARAMS_DOC)
                .arg("exclude", "array", codec::EXCLUDE_DOC)
                .arg("skip_empty", "boolean", codec::SKIP_EMPTY_DOC)
                .required("signature", "string", "the signature to check")
                .arg("signature_encoding", "string", "`base64` (default) or `hex`")
                .arg("public_key", "string", "PEM (SPKI `PUBLIC KEY` or PKCS#1 `RSA PUBLIC KEY`) or bare base64 DER")
                .arg("public_key_file", "string", "a file holding the key, relative to the case file")
                .arg("hash", "string", "`sha256` (default) or `sha1`")
                .result("`valid`: whether the signature holds (a wrong signature is not an error: expect `valid: true`); `signed_text`"),
            rsa_sig::rsa_verify,
        ),
        FnKeyword::new(
            KeywordSpec::new("canonical", "the sorted `key=value&...` text that payment APIs sign")
                .required("params", "object", "the parameters")
                .arg("exclude", "array", codec::EXCLUDE_DOC)
                .arg("skip_empty", "boolean", codec::SKIP_EMPTY_DOC)
                .result("`text`: the keys in byte order, `key=value` joined by `&`"),
            codec::canonical_keyword,
        ),
    ],
}
