//! Encoding and crypto functions. Text goes in and out as UTF-8.
//!
//! - `base64(x)` is standard base64 with padding; `base64_decode(x)` also
//!   takes the URL-safe alphabet and missing padding, and fails when the
//!   bytes are not UTF-8 text.
//! - `url_encode(x)` percent-encodes every byte but the unreserved
//!   characters `A-Z a-z 0-9 - _ . ~`.
//! - `md5(x)`, `sha1(x)`, `sha256(x)` and `hmac_sha256(key, x)` are
//!   lower-case hex digests.
//! - `aes_encrypt(x, key, [iv])` / `aes_decrypt(x, key, [iv])`: the key's
//!   UTF-8 bytes (16, 24 or 32 of them) pick AES-128, -192 or -256; without
//!   `iv` the mode is ECB, with a 16-byte `iv` it is CBC; padding is PKCS#7
//!   and the cipher text is standard base64.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyInit, KeyIvInit};
use aes::{Aes128, Aes192, Aes256};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use md5::Md5;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::Value;
use sha1::Sha1;
use sha2::{Digest, Sha256};

use super::{Context, Function, opt_text, text};

pub(super) const FUNCTIONS: &[Function] = &[
    Function {
        name: "base64",
        signature: "base64(x)",
        min_args: 1,
        max_args: Some(1),
        call: base64_encode,
    },
    Function {
        name: "base64_decode",
        signature: "base64_decode(x)",
        min_args: 1,
        max_args: Some(1),
        call: base64_decode,
    },
    Function {
        name: "url_encode",
        signature: "url_encode(x)",
        min_args: 1,
        max_args: Some(1),
        call: url_encode,
    },
    Function {
        name: "md5",
        signature: "md5(x)",
        min_args: 1,
        max_args: Some(1),
        call: md5,
    },
    Function {
        name: "sha1",
        signature: "sha1(x)",
        min_args: 1,
        max_args: Some(1),
        call: sha1,
    },
    Function {
        name: "sha256",
        signature: "sha256(x)",
        min_args: 1,
        max_args: Some(1),
        call: sha256,
    },
    Function {
        name: "hmac_sha256",
        signature: "hmac_sha256(key, x)",
        min_args: 2,
        max_args: Some(2),
        call: hmac_sha256,
    },
    Function {
        name: "aes_encrypt",
        signature: "aes_encrypt(x, key, [iv])",
        min_args: 2,
        max_args: Some(3),
        call: aes_encrypt,
    },
    Function {
        name: "aes_decrypt",
        signature: "aes_decrypt(x, key, [iv])",
        min_args: 2,
        max_args: Some(3),
        call: aes_decrypt,
    },
];

/// Everything but the unreserved characters of RFC 3986.
const URL_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn base64_encode(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let x = text(args, 0, "x")?;
    Ok(Value::String(STANDARD.encode(x.as_bytes())))
}

fn base64_decode(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let x = text(args, 0, "x")?;
    let bytes = decode_base64(&x)?;
    String::from_utf8(bytes)
        .map(Value::String)
        .map_err(|_| "the decoded bytes are not UTF-8 text".to_string())
}

/// Decodes standard or URL-safe base64, padded or not, ignoring whitespace
/// around it.
fn decode_base64(x: &str) -> Result<Vec<u8>, String> {
    let x = x.trim();
    [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
        .iter()
        .find_map(|engine| engine.decode(x).ok())
        .ok_or_else(|| format!("`{}` is not valid base64", shorten(x)))
}

/// Long text cut for messages.
fn shorten(x: &str) -> String {
    if x.chars().count() <= 60 {
        x.to_string()
    } else {
        let head: String = x.chars().take(57).collect();
        format!("{head}...")
    }
}

fn url_encode(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let x = text(args, 0, "x")?;
    Ok(Value::String(
        utf8_percent_encode(&x, URL_ENCODE_SET).to_string(),
    ))
}

fn md5(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let x = text(args, 0, "x")?;
    Ok(Value::String(hex::encode(Md5::digest(x.as_bytes()))))
}

fn sha1(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let x = text(args, 0, "x")?;
    Ok(Value::String(hex::encode(Sha1::digest(x.as_bytes()))))
}

fn sha256(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let x = text(args, 0, "x")?;
    Ok(Value::String(hex::encode(Sha256::digest(x.as_bytes()))))
}

fn hmac_sha256(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let key = text(args, 0, "key")?;
    let x = text(args, 1, "x")?;
    hmac_sha256_hex(key.as_bytes(), x.as_bytes()).map(Value::String)
}

/// HMAC-SHA256 of `data` under `key`, as lower-case hex.
fn hmac_sha256_hex(key: &[u8], data: &[u8]) -> Result<String, String> {
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).map_err(|e| format!("unusable key: {e}"))?;
    mac.update(data);
    Ok(hex::encode(mac.finalize().into_bytes()))
}

fn aes_encrypt(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let x = text(args, 0, "x")?;
    let key = text(args, 1, "key")?;
    let iv = opt_text(args, 2, "iv")?;
    let out = aes_encrypt_bytes(
        x.as_bytes(),
        key.as_bytes(),
        iv.as_deref().map(str::as_bytes),
    )?;
    Ok(Value::String(STANDARD.encode(out)))
}

fn aes_decrypt(_: &Context<'_>, args: &[Value]) -> Result<Value, String> {
    let x = text(args, 0, "x")?;
    let key = text(args, 1, "key")?;
    let iv = opt_text(args, 2, "iv")?;
    let data = decode_base64(&x)?;
    let plain = aes_decrypt_bytes(&data, key.as_bytes(), iv.as_deref().map(str::as_bytes))?;
    String::from_utf8(plain)
        .map(Value::String)
        .map_err(|_| "the decrypted bytes are not UTF-8 text".to_string())
}

fn check_key_iv(key: &[u8], iv: Option<&[u8]>) -> Result<(), String> {
    if ![16, 24, 32].contains(&key.len()) {
        return Err(format!(
            "the key must be 16, 24 or 32 bytes (AES-128, -192, -256), got {}",
            key.len()
        ));
    }
    if let Some(iv) = iv
        && iv.len() != 16
    {
        return Err(format!("the iv must be 16 bytes, got {}", iv.len()));
    }
    Ok(())
}

/// AES with PKCS#7 padding: ECB without `iv`, CBC with it.
fn aes_encrypt_bytes(data: &[u8], key: &[u8], iv: Option<&[u8]>) -> Result<Vec<u8>, String> {
    check_key_iv(key, iv)?;
    let bad = |_| "the key or iv has the wrong length".to_string();
    macro_rules! run {
        ($aes:ty) => {
            match iv {
                None => ecb::Encryptor::<$aes>::new_from_slice(key)
                    .map_err(bad)?
                    .encrypt_padded_vec_mut::<Pkcs7>(data),
                Some(iv) => cbc::Encryptor::<$aes>::new_from_slices(key, iv)
                    .map_err(bad)?
                    .encrypt_padded_vec_mut::<Pkcs7>(data),
            }
        };
    }
    Ok(match key.len() {
        16 => run!(Aes128),
        24 => run!(Aes192),
        _ => run!(Aes256),
    })
}

/// The inverse of [`aes_encrypt_bytes`].
fn aes_decrypt_bytes(data: &[u8], key: &[u8], iv: Option<&[u8]>) -> Result<Vec<u8>, String> {
    check_key_iv(key, iv)?;
    if data.is_empty() || !data.len().is_multiple_of(16) {
        return Err(format!(
            "the cipher text must be a non-empty multiple of 16 bytes, got {}",
            data.len()
        ));
    }
    let bad = |_| "the key or iv has the wrong length".to_string();
    let unpad = |_| "bad padding after decryption (wrong key, iv or mode?)".to_string();
    macro_rules! run {
        ($aes:ty) => {
            match iv {
                None => ecb::Decryptor::<$aes>::new_from_slice(key)
                    .map_err(bad)?
                    .decrypt_padded_vec_mut::<Pkcs7>(data)
                    .map_err(unpad)?,
                Some(iv) => cbc::Decryptor::<$aes>::new_from_slices(key, iv)
                    .map_err(bad)?
                    .decrypt_padded_vec_mut::<Pkcs7>(data)
                    .map_err(unpad)?,
            }
        };
    }
    Ok(match key.len() {
        16 => run!(Aes128),
        24 => run!(Aes192),
        _ => run!(Aes256),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn call(f: super::super::Call, args: &[Value]) -> Result<Value, String> {
        f(
            &Context {
                base_dir: Path::new("."),
            },
            args,
        )
    }

    fn call_str(f: super::super::Call, args: &[Value]) -> String {
        match call(f, args) {
            Ok(Value::String(s)) => s,
            other => panic!("expected a string, got {other:?}"),
        }
    }

    fn unhex(s: &str) -> Vec<u8> {
        hex::decode(s).unwrap()
    }

    #[test]
    fn base64_round_trip() {
        assert_eq!(call_str(base64_encode, &[json!("hello")]), "aGVsbG8=");
        assert_eq!(call_str(base64_encode, &[json!("")]), "");
        assert_eq!(call_str(base64_encode, &[json!(123)]), "MTIz");
        assert_eq!(call_str(base64_decode, &[json!("aGVsbG8=")]), "hello");
        assert_eq!(call_str(base64_decode, &[json!("aGVsbG8")]), "hello");
        assert_eq!(call_str(base64_decode, &[json!(" aGVsbG8= ")]), "hello");
        // "??>" is "Pz8-" URL-safe and "Pz8+" standard.
        assert_eq!(call_str(base64_decode, &[json!("Pz8-")]), "??>");
        assert_eq!(call_str(base64_decode, &[json!("Pz8+")]), "??>");
        assert_eq!(call_str(base64_decode, &[json!("w6k=")]), "é");
    }

    #[test]
    fn base64_decode_errors() {
        assert_eq!(
            call(base64_decode, &[json!("not base64!")]).unwrap_err(),
            "`not base64!` is not valid base64"
        );
        // 0xff 0xfe is not UTF-8.
        assert_eq!(
            call(base64_decode, &[json!("//4=")]).unwrap_err(),
            "the decoded bytes are not UTF-8 text"
        );
    }

    #[test]
    fn url_encode_keeps_only_unreserved() {
        assert_eq!(
            call_str(url_encode, &[json!("a&b=c d/é~")]),
            "a%26b%3Dc%20d%2F%C3%A9~"
        );
        assert_eq!(call_str(url_encode, &[json!("AZaz09-_.~")]), "AZaz09-_.~");
        assert_eq!(call_str(url_encode, &[json!("+%?#")]), "%2B%25%3F%23");
    }

    #[test]
    fn digests_known_vectors() {
        assert_eq!(
            call_str(md5, &[json!("abc")]),
            "900150983cd24fb0d6963f7d28e17f72"
        );
        assert_eq!(
            call_str(md5, &[json!("")]),
            "d41d8cd98f00b204e9800998ecf8427e"
        );
        assert_eq!(
            call_str(sha1, &[json!("abc")]),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            call_str(sha256, &[json!("abc")]),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert_eq!(
            call_str(sha256, &[json!("")]),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        // Numbers are hashed as their text.
        assert_eq!(call_str(md5, &[json!(1)]), call_str(md5, &[json!("1")]));
        assert_eq!(
            call(md5, &[json!({"a": 1})]).unwrap_err(),
            "argument 1 (x) must be text, got an object"
        );
    }

    #[test]
    fn hmac_sha256_rfc4231() {
        // Test case 1.
        let key1 = "\u{0b}".repeat(20);
        assert_eq!(
            call_str(hmac_sha256, &[json!(key1), json!("Hi There")]),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
        // Test case 2.
        assert_eq!(
            call_str(
                hmac_sha256,
                &[json!("Jefe"), json!("what do ya want for nothing?")]
            ),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 3: bytes that are not UTF-8, so through the byte helper.
        assert_eq!(
            hmac_sha256_hex(&[0xaa; 20], &[0xdd; 50]).unwrap(),
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe"
        );
        // Test case 4.
        let key4: Vec<u8> = (0x01..=0x19).collect();
        assert_eq!(
            hmac_sha256_hex(&key4, &[0xcd; 50]).unwrap(),
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b"
        );
        // Test case 6: a key longer than the block.
        assert_eq!(
            hmac_sha256_hex(
                &[0xaa; 131],
                b"Test Using Larger Than Block-Size Key - Hash Key First"
            )
            .unwrap(),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn aes_nist_vectors_first_block() {
        // FIPS-197 appendix C.1, C.2, C.3: one block; PKCS#7 adds a second.
        let plain = unhex("00112233445566778899aabbccddeeff");
        for (key_len, expected) in [
            (16u8, "69c4e0d86a7b0430d8cdb78070b4c55a"),
            (24, "dda97ca4864cdfe06eaf70a0ec0d7191"),
            (32, "8ea2b7ca516745bfeafc49904b496089"),
        ] {
            let key: Vec<u8> = (0..key_len).collect();
            let out = aes_encrypt_bytes(&plain, &key, None).unwrap();
            assert_eq!(out.len(), 32);
            assert_eq!(hex::encode(&out[..16]), expected);
            assert_eq!(aes_decrypt_bytes(&out, &key, None).unwrap(), plain);
        }
        // SP 800-38A F.1.1 (ECB-AES128) and F.2.1 (CBC-AES128), block 1.
        let key = unhex("2b7e151628aed2a6abf7158809cf4f3c");
        let block1 = unhex("6bc1bee22e409f96e93d7e117393172a");
        let ecb = aes_encrypt_bytes(&block1, &key, None).unwrap();
        assert_eq!(hex::encode(&ecb[..16]), "3ad77bb40d7a3660a89ecaf32466ef97");
        let iv = unhex("000102030405060708090a0b0c0d0e0f");
        let cbc = aes_encrypt_bytes(&block1, &key, Some(&iv)).unwrap();
        assert_eq!(hex::encode(&cbc[..16]), "7649abac8119b246cee98e9b12e9197d");
        // The padding block of ECB is E(16 x 0x10), the same for any input.
        let pad = aes_encrypt_bytes(&[], &key, None).unwrap();
        assert_eq!(pad.len(), 16);
        assert_eq!(&ecb[16..], &pad[..]);
    }

    #[test]
    fn aes_text_vectors_checked_with_openssl() {
        // `printf %s 'hello world' | openssl enc -aes-N-ecb|cbc -K .. -iv .. | base64`
        let k16 = "0123456789abcdef";
        let k24 = "0123456789abcdef01234567";
        let k32 = "0123456789abcdef0123456789abcdef";
        let iv = "abcdef9876543210";
        let cases = [
            (k16, None, "gWm+1O9JqIdFWcWyANqt5w=="),
            (k16, Some(iv), "TcLytCqrKBAN6PfhanEpGw=="),
            (k24, None, "WwewzJCE/LpLGdZR4elkJA=="),
            (k24, Some(iv), "e+497HNdtG6tOHY5klBw+w=="),
            (k32, None, "KatcdPi766sYQPaO+G5kXA=="),
            (k32, Some(iv), "4hUyeBOXpEf+dVd0AlGbVA=="),
        ];
        for (key, iv, expected) in cases {
            let mut args = vec![json!("hello world"), json!(key)];
            if let Some(iv) = iv {
                args.push(json!(iv));
            }
            assert_eq!(call_str(aes_encrypt, &args), expected, "{key} {iv:?}");
            args[0] = json!(expected);
            assert_eq!(call_str(aes_decrypt, &args), "hello world", "{key} {iv:?}");
        }
        // A whole block of input gets a whole block of padding.
        assert_eq!(
            call_str(aes_encrypt, &[json!("exactly 16 bytes"), json!(k16)]),
            "bVkNGs0mq2CeFr4IQqd+YzdyIuBhqSTFkc2cJ+oWPtQ="
        );
    }

    #[test]
    fn aes_round_trips_all_sizes_and_modes() {
        let texts = [
            "",
            "a",
            "exactly 16 bytes",
            "ünïcödé and more than one block of text",
        ];
        for key in ["k".repeat(16), "k".repeat(24), "k".repeat(32)] {
            for iv in [None, Some("i".repeat(16))] {
                for t in texts {
                    let mut args = vec![json!(t), json!(key)];
                    if let Some(iv) = &iv {
                        args.push(json!(iv));
                    }
                    let enc = call_str(aes_encrypt, &args);
                    args[0] = json!(enc);
                    assert_eq!(call_str(aes_decrypt, &args), t);
                }
            }
        }
    }

    #[test]
    fn aes_errors() {
        assert_eq!(
            call(aes_encrypt, &[json!("x"), json!("short")]).unwrap_err(),
            "the key must be 16, 24 or 32 bytes (AES-128, -192, -256), got 5"
        );
        assert_eq!(
            call(
                aes_encrypt,
                &[json!("x"), json!("0123456789abcdef"), json!("iv")]
            )
            .unwrap_err(),
            "the iv must be 16 bytes, got 2"
        );
        assert_eq!(
            call(aes_decrypt, &[json!("%%%"), json!("0123456789abcdef")]).unwrap_err(),
            "`%%%` is not valid base64"
        );
        assert_eq!(
            call(aes_decrypt, &[json!("aGVsbG8="), json!("0123456789abcdef")]).unwrap_err(),
            "the cipher text must be a non-empty multiple of 16 bytes, got 5"
        );
        // Decrypting with the wrong key fails on the padding (or, rarely,
        // yields bytes that are not text): an error either way.
        let err = call(
            aes_decrypt,
            &[json!("gWm+1O9JqIdFWcWyANqt5w=="), json!("fedcba9876543210")],
        )
        .unwrap_err();
        assert!(
            err.starts_with("bad padding") || err.contains("not UTF-8"),
            "{err}"
        );
    }
}
