//! The dashboard's one secret: `dashboard_token` from config.toml, accepted
//! as the password of HTTP Basic authentication (any user name) or as a
//! bearer token. Compared as BLAKE3 hashes, whose equality is constant-time.

use std::fmt;

use anyhow::{bail, Result};
use axum::http::header::{self, HeaderMap};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use base64::Engine;

/// The shortest token accepted.
pub const MIN_TOKEN_LEN: usize = 12;

/// The dashboard's token (kept as its hash).
#[derive(Clone)]
pub struct Token(blake3::Hash);

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(..)")
    }
}

impl Token {
    /// The token `secret`: at least [`MIN_TOKEN_LEN`] characters, spaces
    /// around it ignored.
    pub fn new(secret: &str) -> Result<Token> {
        let secret = secret.trim();
        if secret.chars().count() < MIN_TOKEN_LEN {
            bail!(
                "the dashboard's token is too short: give at least {MIN_TOKEN_LEN} characters \
                 (`init` writes a random one of 32)"
            );
        }
        Ok(Token(blake3::hash(secret.as_bytes())))
    }

    /// Whether `candidate` is the token, in constant time.
    fn is(&self, candidate: &[u8]) -> bool {
        // blake3::Hash's == compares in constant time.
        blake3::hash(candidate) == self.0
    }

    /// Whether the request's `Authorization` header carries the token:
    /// `Basic base64(user:TOKEN)` (any user) or `Bearer TOKEN`.
    pub fn admits(&self, headers: &HeaderMap) -> bool {
        let Some(value) = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
        else {
            return false;
        };
        let (scheme, credentials) = value.trim().split_once(' ').unwrap_or((value, ""));
        let credentials = credentials.trim();
        if scheme.eq_ignore_ascii_case("bearer") {
            self.is(credentials.as_bytes())
        } else if scheme.eq_ignore_ascii_case("basic") {
            let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(credentials) else {
                return false;
            };
            match decoded.iter().position(|&b| b == b':') {
                Some(colon) => self.is(&decoded[colon + 1..]),
                None => false,
            }
        } else {
            false
        }
    }
}

/// 401, with the header that makes a browser ask for the password.
pub fn unauthorized() -> Response {
    (
        StatusCode::UNAUTHORIZED,
        [
            (
                header::WWW_AUTHENTICATE,
                "Basic realm=\"coffre\", charset=\"UTF-8\"",
            ),
            (header::CONTENT_TYPE, "text/plain; charset=utf-8"),
        ],
        "Mot de passe requis : demandez-le à la personne qui gère le serveur de sauvegarde.\n\
         Password required: ask the person who runs the backup server.\n",
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    fn basic(user_pass: &str) -> String {
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(user_pass)
        )
    }

    #[test]
    fn basic_or_bearer_with_the_token_only() {
        let t = Token::new(" correct-horse-battery ").unwrap();
        assert!(t.admits(&with("Bearer correct-horse-battery")));
        assert!(t.admits(&with("bearer   correct-horse-battery")));
        assert!(t.admits(&with(&basic("board:correct-horse-battery"))));
        assert!(t.admits(&with(&basic(":correct-horse-battery"))));
        assert!(!t.admits(&HeaderMap::new()));
        assert!(!t.admits(&with("Bearer wrong-horse-battery")));
        assert!(!t.admits(&with("Bearer")));
        assert!(!t.admits(&with(&basic("correct-horse-battery:x"))));
        assert!(!t.admits(&with(&basic("correct-horse-battery"))));
        assert!(!t.admits(&with("Basic !!!")));
        assert!(!t.admits(&with("Token correct-horse-battery")));
        assert!(Token::new("short").is_err());
        assert_eq!(format!("{t:?}"), "Token(..)");
    }
}
