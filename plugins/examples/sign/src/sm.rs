//! The Chinese national algorithms: SM3 digests (and HMAC-SM3) and SM4
//! encryption in ECB or CBC mode, with PKCS#7 or no padding.

use atf_sdk::{Call, KeywordError, KeywordResult, json};
use ecb::cipher::block_padding::{NoPadding, Pkcs7};
use ecb::cipher::{BlockDecryptMut, BlockEncryptMut, KeyInit, KeyIvInit};
use hmac::{Hmac, Mac};
use sm3::{Digest, Sm3};
use sm4::Sm4;

use crate::codec::{self, fixed_bytes};

pub(crate) const KEY_DOC: &str = "16 bytes: 32 hex digits or 16 characters of text (`key_encoding`: `hex`, `text` or `base64` to say which)";

/// `sign.sm3`.
pub(crate) fn sm3(call: &Call<'_>) -> KeywordResult {
    let msg = codec::message(call, false)?;
    let digest = match call.str_arg("key")? {
        None => Sm3::digest(&msg.bytes).to_vec(),
        Some(key) => {
            let mut mac = <Hmac<Sm3> as Mac>::new_from_slice(key.as_bytes())
                .map_err(|e| KeywordError::new(format!("bad HMAC key: {e}")))?;
            mac.update(&msg.bytes);
            mac.finalize().into_bytes().to_vec()
        }
    };
    Ok(json!({ "digest": codec::encode(call, &digest, "hex")? }))
}

enum Mode {
    Ecb,
    Cbc([u8; 16]),
}

enum Padding {
    Pkcs7,
    None,
}

/// The key, mode, IV and padding of an SM4 call.
fn setup(call: &Call<'_>) -> Result<([u8; 16], Mode, Padding), KeywordError> {
    let key = fixed_bytes::<16>(call, "key")?;
    let mode = match call.str_arg("mode")?.unwrap_or("ecb") {
        "ecb" | "ECB" => {
            if call.arg("iv").is_some() {
                return Err("an `iv` is only used with `mode`: `cbc`".into());
            }
            Mode::Ecb
        }
        "cbc" | "CBC" => {
            if call.arg("iv").is_none() {
                return Err("`mode`: `cbc` needs an `iv`".into());
            }
            Mode::Cbc(fixed_bytes::<16>(call, "iv")?)
        }
        other => {
            return Err(KeywordError::new(format!(
                "unknown `mode` `{other}`: use `ecb` or `cbc`"
            )));
        }
    };
    let padding = match call.str_arg("padding")?.unwrap_or("pkcs7") {
        "pkcs7" | "PKCS7" | "pkcs5" | "PKCS5" => Padding::Pkcs7,
        "none" => Padding::None,
        other => {
            return Err(KeywordError::new(format!(
                "unknown `padding` `{other}`: use `pkcs7` or `none`"
            )));
        }
    };
    Ok((key, mode, padding))
}

/// `sign.sm4_encrypt`.
pub(crate) fn sm4_encrypt(call: &Call<'_>) -> KeywordResult {
    let msg = codec::message(call, false)?;
    let (key, mode, padding) = setup(call)?;
    if matches!(padding, Padding::None) && msg.bytes.len() % 16 != 0 {
        return Err(KeywordError::new(format!(
            "with `padding`: `none` the data must be a multiple of 16 bytes (it is {})",
            msg.bytes.len()
        )));
    }
    let cipher = match (mode, padding) {
        (Mode::Ecb, Padding::Pkcs7) => {
            ecb::Encryptor::<Sm4>::new(&key.into()).encrypt_padded_vec_mut::<Pkcs7>(&msg.bytes)
        }
        (Mode::Ecb, Padding::None) => {
            ecb::Encryptor::<Sm4>::new(&key.into()).encrypt_padded_vec_mut::<NoPadding>(&msg.bytes)
        }
        (Mode::Cbc(iv), Padding::Pkcs7) => cbc::Encryptor::<Sm4>::new(&key.into(), &iv.into())
            .encrypt_padded_vec_mut::<Pkcs7>(&msg.bytes),
        (Mode::Cbc(iv), Padding::None) => cbc::Encryptor::<Sm4>::new(&key.into(), &iv.into())
            .encrypt_padded_vec_mut::<NoPadding>(&msg.bytes),
    };
    Ok(json!({ "cipher": codec::encode(call, &cipher, "hex")? }))
}

/// `sign.sm4_decrypt`.
pub(crate) fn sm4_decrypt(call: &Call<'_>) -> KeywordResult {
    let data = call.required_str("data")?;
    let input = call.str_arg("input")?.unwrap_or("hex");
    let bytes = codec::decode(data, input, "data")?;
    let (key, mode, padding) = setup(call)?;
    if bytes.len() % 16 != 0 || bytes.is_empty() {
        return Err(KeywordError::new(format!(
            "the cipher text must be a non-empty multiple of 16 bytes (it is {})",
            bytes.len()
        )));
    }
    let plain = match (mode, padding) {
        (Mode::Ecb, Padding::Pkcs7) => {
            ecb::Decryptor::<Sm4>::new(&key.into()).decrypt_padded_vec_mut::<Pkcs7>(&bytes)
        }
        (Mode::Ecb, Padding::None) => {
            ecb::Decryptor::<Sm4>::new(&key.into()).decrypt_padded_vec_mut::<NoPadding>(&bytes)
        }
        (Mode::Cbc(iv), Padding::Pkcs7) => cbc::Decryptor::<Sm4>::new(&key.into(), &iv.into())
            .decrypt_padded_vec_mut::<Pkcs7>(&bytes),
        (Mode::Cbc(iv), Padding::None) => cbc::Decryptor::<Sm4>::new(&key.into(), &iv.into())
            .decrypt_padded_vec_mut::<NoPadding>(&bytes),
    }
    .map_err(|_| KeywordError::new("bad padding after decryption: wrong key, IV or mode?"))?;
    Ok(json!({ "plain": codec::encode(call, &plain, "text")? }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::tests::run;

    const STD: &str = "0123456789abcdeffedcba9876543210";

    #[test]
    fn sm3_vectors() {
        let out = run(sm3, json!({"data": "abc"})).unwrap();
        assert_eq!(
            out["digest"],
            "66c7f0f462eeedd9d1f2d46bdc10e4e24167c4875cf2f7a2297da02b8f4ba8e0"
        );
        // GM/T 0004-2012 example 2: "abcd" repeated 16 times.
        let out = run(
            sm3,
            json!({"data": "abcd".repeat(16), "output": "hex_upper"}),
        )
        .unwrap();
        assert_eq!(
            out["digest"],
            "DEBE9FF92275B8A138604889C18E5A4D6FDB70E5387E5765293DCBA39C0C5732"
        );
        let out = run(
            sm3,
            json!({"data": "616263", "input": "hex", "output": "base64"}),
        )
        .unwrap();
        assert_eq!(
            out["digest"],
            "Zsfw9GLu7dnR8tRr3BDk4kFnxIdc8veiKX2gK49LqOA="
        );
    }

    #[test]
    fn hmac_sm3_differs_from_plain_and_depends_on_key() {
        let a = run(sm3, json!({"data": "abc", "key": "k1"})).unwrap();
        let b = run(sm3, json!({"data": "abc", "key": "k2"})).unwrap();
        let plain = run(sm3, json!({"data": "abc"})).unwrap();
        assert_ne!(a, b);
        assert_ne!(a, plain);
        assert_eq!(a["digest"].as_str().unwrap().len(), 64);
    }

    #[test]
    fn sm4_standard_vector() {
        let out = run(
            sm4_encrypt,
            json!({"data": STD, "input": "hex", "key": STD, "padding": "none"}),
        )
        .unwrap();
        assert_eq!(out["cipher"], "681edf34d206965e86b3e94f536e4246");
        let back = run(
            sm4_decrypt,
            json!({"data": "681edf34d206965e86b3e94f536e4246", "key": STD, "padding": "none", "output": "hex"}),
        )
        .unwrap();
        assert_eq!(back["plain"], STD);
    }

    #[test]
    fn sm4_padded_round_trips() {
        for (mode, iv) in [
            ("ecb", None),
            ("cbc", Some("000102030405060708090a0b0c0d0e0f")),
        ] {
            for output in ["hex", "base64"] {
                let mut args = json!({"data": "订单 order-42", "key": "1234567890abcdef", "mode": mode, "output": output});
                if let Some(iv) = iv {
                    args["iv"] = json!(iv);
                }
                let cipher = run(sm4_encrypt, args.clone()).unwrap()["cipher"].clone();
                args["data"] = cipher;
                args["input"] = json!(output);
                args["output"] = json!("text");
                assert_eq!(run(sm4_decrypt, args).unwrap()["plain"], "订单 order-42");
            }
        }
        // A full block of padding is added to a block-sized message.
        let out = run(sm4_encrypt, json!({"data": "0123456789abcdef", "key": STD})).unwrap();
        assert_eq!(out["cipher"].as_str().unwrap().len(), 64);
        assert_eq!(
            &out["cipher"].as_str().unwrap()[..32],
            run(
                sm4_encrypt,
                json!({"data": "0123456789abcdef", "key": STD, "padding": "none"})
            )
            .unwrap()["cipher"]
                .as_str()
                .unwrap()
        );
    }

    #[test]
    fn sm4_errors() {
        let err = |args| run(sm4_encrypt, args).unwrap_err().message;
        assert!(err(json!({"data": "x", "key": "short"})).contains("`key` must be 16 bytes"));
        assert!(err(json!({"data": "x", "key": STD, "mode": "cbc"})).contains("needs an `iv`"));
        assert!(err(json!({"data": "x", "key": STD, "mode": "ofb"})).contains("unknown `mode`"));
        assert!(
            err(json!({"data": "x", "key": STD, "padding": "none"})).contains("multiple of 16")
        );
        assert!(err(json!({"data": "x", "key": STD, "iv": STD})).contains("only used with"));
        let wrong_key = run(
            sm4_decrypt,
            json!({"data": "681edf34d206965e86b3e94f536e4246", "key": "fedcba98765432100123456789abcdef"}),
        );
        assert!(wrong_key.is_err());
        assert!(run(sm4_decrypt, json!({"data": "abcd", "key": STD})).is_err());
    }
}
