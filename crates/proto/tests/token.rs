//! The enrolment token as a technician meets it: pasted with stray
//! whitespace, cut short, mistyped, or from a newer release.

use coffre_proto::{Token, TokenError, TOKEN_PREFIX};
use proptest::prelude::*;

fn sample() -> Token {
    Token {
        server: "backup.example.org:4433".into(),
        fingerprint: [0xF1; 32],
        subscriber: "Les Amis du Vélo".into(),
        device: "compta-pc".into(),
        secret: [0x5E; 32],
    }
}

#[test]
fn surrounding_and_wrapping_whitespace_is_ignored() {
    let text = sample().encode().unwrap();
    let (a, b) = text.split_at(40);
    let pasted = format!("  \n\t{a}\r\n   {b}  \n");
    assert_eq!(Token::parse(&pasted).unwrap(), sample());
}

#[test]
fn not_a_token() {
    for text in [
        "",
        "   ",
        "hello",
        "coffre.abc",
        "coffre1abc",
        "COFFRE1.abc",
        "https://x",
    ] {
        let err = Token::parse(text).unwrap_err();
        assert_eq!(err, TokenError::NotAToken, "{text:?}");
    }
    assert_eq!(
        TokenError::NotAToken.to_string(),
        "not a coffre enrolment token: it should start with coffre1. (copy the whole line that \
         `coffre-server device add` printed)"
    );
}

#[test]
fn every_truncation_is_damaged() {
    let text = sample().encode().unwrap();
    for cut in TOKEN_PREFIX.len()..text.len() {
        let err = Token::parse(&text[..cut]).unwrap_err();
        assert!(
            matches!(err, TokenError::Damaged { .. }),
            "cut at {cut}: {err}"
        );
        assert!(
            err.to_string()
                .starts_with("enrolment token is damaged (truncated or mistyped"),
            "{err}"
        );
    }
}

#[test]
fn every_single_character_typo_is_damaged() {
    let text = sample().encode().unwrap();
    let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_+/=!";
    for (i, original) in text.char_indices().skip(TOKEN_PREFIX.len()) {
        for typo in alphabet.chars().filter(|&c| c != original) {
            let mut mistyped = text.clone();
            mistyped.replace_range(i..i + 1, typo.encode_utf8(&mut [0; 4]));
            let err = Token::parse(&mistyped).unwrap_err();
            assert!(
                matches!(err, TokenError::Damaged { .. }),
                "{i} -> {typo}: {err}"
            );
        }
    }
}

#[test]
fn a_newer_prefix_asks_to_upgrade() {
    let err = Token::parse("coffre2.AAAA").unwrap_err();
    assert_eq!(err, TokenError::UnsupportedVersion { version: 2 });
    assert_eq!(
        err.to_string(),
        "enrolment token version 2 is newer than this coffre: upgrade coffre"
    );
    assert_eq!(
        Token::parse("coffre0.AAAA").unwrap_err(),
        TokenError::NotAToken
    );
}

#[test]
fn debug_does_not_show_the_secret() {
    let shown = format!("{:?}", sample());
    assert!(!shown.contains("5e") && !shown.contains("94"), "{shown}");
    assert!(
        shown.contains("<redacted>") && shown.contains("compta-pc"),
        "{shown}"
    );
}

#[test]
fn fields_a_token_cannot_hold_are_refused() {
    let empty = Token {
        server: String::new(),
        ..sample()
    };
    let err = empty.encode().unwrap_err();
    assert_eq!(
        err.to_string(),
        "cannot make an enrolment token: the server address is empty"
    );
    let long = Token {
        device: "d".repeat(256),
        ..sample()
    };
    assert!(matches!(
        long.encode(),
        Err(TokenError::InvalidField {
            field: "device name",
            ..
        })
    ));
    let longest = Token {
        device: "d".repeat(255),
        ..sample()
    };
    assert_eq!(Token::parse(&longest.encode().unwrap()).unwrap(), longest);
}

/// CRC-32 (IEEE), written again here so the test does not trust the crate's.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn a_token_with_a_valid_checksum_but_bad_fields_is_damaged() {
    let mut bin = b"CFTK\x01\x00".to_vec(); // empty server address
    bin.extend_from_slice(&[0; 80]);
    let crc = crc32(&bin);
    bin.extend_from_slice(&crc.to_le_bytes());
    use base64::Engine as _;
    let text = format!(
        "{TOKEN_PREFIX}{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bin)
    );
    assert!(matches!(
        Token::parse(&text),
        Err(TokenError::Damaged {
            reason: "empty field"
        })
    ));
}

fn arb_field() -> impl Strategy<Value = String> {
    prop::collection::vec(any::<char>(), 1..60)
        .prop_map(|c| c.into_iter().collect::<String>())
        .prop_filter("fits a token", |s| s.len() <= 255)
}

proptest! {
    #[test]
    fn round_trip(server in arb_field(), fingerprint: [u8; 32], subscriber in arb_field(),
                  device in arb_field(), secret: [u8; 32]) {
        let token = Token { server, fingerprint, subscriber, device, secret };
        let text = token.encode().unwrap();
        prop_assert!(text.starts_with(TOKEN_PREFIX));
        prop_assert!(text.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b)));
        prop_assert_eq!(Token::parse(&text).unwrap(), token);
    }

    #[test]
    fn arbitrary_text_never_panics(text in ".{0,300}") {
        let _ = Token::parse(&text);
        let _ = Token::parse(&format!("{TOKEN_PREFIX}{text}"));
    }

    #[test]
    fn arbitrary_base64_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..900)) {
        use base64::Engine as _;
        let text = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&bytes)
        );
        let _ = Token::parse(&text);
        // With a valid checksum, so that the field parser itself is fuzzed.
        let mut framed = b"CFTK\x01".to_vec();
        framed.extend_from_slice(&bytes);
        let crc = crc32(&framed);
        framed.extend_from_slice(&crc.to_le_bytes());
        let text = format!(
            "{TOKEN_PREFIX}{}",
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&framed)
        );
        let _ = Token::parse(&text);
    }
}
