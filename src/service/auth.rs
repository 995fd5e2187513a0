//! Optional token protection of the HTTP API and the status page.
//!
//! With a token configured (`http.api_token_file` or `OVERAGE_API_TOKEN`), every route of the
//! protected sub-router (see [`super::http::router`]) needs either `Authorization: Bearer
//! <token>` (scripts, curl) or HTTP Basic auth with the token as the password and any user name
//! (so a browser can open the status page: it asks once and remembers). Anything else gets 401
//! with `WWW-Authenticate: Basic realm="overage"` and a JSON error. Without a token every route
//! is open. The comparison is constant-time; the token is never logged, nor are the
//! credentials a request presented.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use subtle::ConstantTimeEq;

use crate::config::ApiToken;

/// What the middleware checks against; cheap to clone.
#[derive(Clone, Debug)]
pub struct Guard {
    token: Option<Arc<ApiToken>>,
}

/// Why a request was refused (the JSON error says which, never what was sent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("authentication required: send `Authorization: Bearer <token>` (or Basic auth with the token as the password)")]
    Missing,
    #[error("invalid credentials")]
    Invalid,
}

impl Guard {
    pub fn new(token: Option<ApiToken>) -> Guard {
        Guard {
            token: token.map(Arc::new),
        }
    }

    pub fn is_protected(&self) -> bool {
        self.token.is_some()
    }

    /// Whether the request's headers carry the token.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), Denied> {
        let Some(token) = &self.token else {
            return Ok(());
        };
        let Some(value) = headers.get(header::AUTHORIZATION) else {
            return Err(Denied::Missing);
        };
        let presented = presented_secret(value).ok_or(Denied::Invalid)?;
        if bool::from(presented.as_slice().ct_eq(token.expose())) {
            Ok(())
        } else {
            Err(Denied::Invalid)
        }
    }
}

/// The secret in an `Authorization` header: a bearer token, or a Basic password.
fn presented_secret(value: &HeaderValue) -> Option<Vec<u8>> {
    let value = value.to_str().ok()?.trim();
    let (scheme, rest) = value.split_once(' ')?;
    let rest = rest.trim();
    if scheme.eq_ignore_ascii_case("bearer") {
        Some(rest.as_bytes().to_vec())
    } else if scheme.eq_ignore_ascii_case("basic") {
        let decoded = base64_decode(rest)?;
        let colon = decoded.iter().position(|&b| b == b':')?;
        Some(decoded[colon + 1..].to_vec())
    } else {
        None
    }
}

/// Standard base64 (RFC 4648 §4), padding optional, as clients differ on it. `None` on
/// anything else.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &alphabet::STANDARD,
        GeneralPurposeConfig::new()
            .with_decode_padding_mode(DecodePaddingMode::Indifferent)
            .with_decode_allow_trailing_bits(true),
    );
    LENIENT.decode(s).ok()
}

/// The middleware: `axum::middleware::from_fn_with_state(guard, auth::require)`.
pub async fn require(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    match guard.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(denied) => unauthorized(denied),
    }
}

fn unauthorized(denied: Denied) -> Response {
    // the realm is what browsers show in their login prompt
    let challenge = HeaderValue::from_static("Basic realm=\"overage\", charset=\"UTF-8\"");
    (
        StatusCode::UNAUTHORIZED,
        [(header::WWW_AUTHENTICATE, challenge)],
        Json(serde_json::json!({ "error": denied.to_string() })),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "s3cr3t-token-0123456789abcdef";

    fn guard() -> Guard {
        Guard::new(Some(ApiToken::new(TOKEN).unwrap()))
    }

    fn with(auth: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::AUTHORIZATION, HeaderValue::from_str(auth).unwrap());
        h
    }

    fn b64(bytes: &[u8]) -> String {
        base64::engine::general_purpose::STANDARD.encode(bytes)
    }

    #[test]
    fn base64_round_trips() {
        for text in [
            "",
            "a",
            "ab",
            "abc",
            "user:pass",
            "any user:s3cr3t-token-0123456789abcdef",
        ] {
            assert_eq!(
                base64_decode(&b64(text.as_bytes())).as_deref(),
                Some(text.as_bytes()),
                "{text}"
            );
        }
        assert_eq!(base64_decode("dXNlcjpwYXNz"), Some(b"user:pass".to_vec()));
        assert_eq!(base64_decode("not base64!"), None);
        assert_eq!(base64_decode("a"), None);
        // padding is optional
        assert_eq!(base64_decode("YQ").as_deref(), Some(&b"a"[..]));
        assert_eq!(base64_decode("YQ==").as_deref(), Some(&b"a"[..]));
    }

    #[test]
    fn bearer_and_basic_with_the_token_pass() {
        let g = guard();
        assert_eq!(g.check(&with(&format!("Bearer {TOKEN}"))), Ok(()));
        assert_eq!(g.check(&with(&format!("bearer  {TOKEN} "))), Ok(()));
        for user in ["", "admin", "with:colon"] {
            let basic = b64(format!("{user}:{TOKEN}").as_bytes());
            // the user is the part before the first colon: a colon in it cannot pass
            let expected = if user.contains(':') {
                Err(Denied::Invalid)
            } else {
                Ok(())
            };
            assert_eq!(
                g.check(&with(&format!("Basic {basic}"))),
                expected,
                "{user}"
            );
        }
    }

    #[test]
    fn anything_else_is_refused() {
        let g = guard();
        assert_eq!(g.check(&HeaderMap::new()), Err(Denied::Missing));
        for bad in [
            "Bearer".to_string(),
            "Bearer ".to_string(),
            "Bearer wrong".to_string(),
            format!("Bearer {TOKEN}x"),
            format!("Bearer {}", &TOKEN[1..]),
            format!("Token {TOKEN}"),
            TOKEN.to_string(),
            format!("Basic {}", b64(TOKEN.as_bytes())), // no colon: no password
            format!("Basic {}", b64(format!("{TOKEN}:").as_bytes())), // token as the user
            "Basic %%%".to_string(),
        ] {
            assert_eq!(g.check(&with(&bad)), Err(Denied::Invalid), "{bad}");
        }
    }

    #[test]
    fn without_a_token_everything_passes() {
        let g = Guard::new(None);
        assert!(!g.is_protected());
        assert_eq!(g.check(&HeaderMap::new()), Ok(()));
        assert_eq!(g.check(&with("Bearer whatever")), Ok(()));
    }

    #[test]
    fn refusals_challenge_for_basic_with_a_json_body() {
        let r = unauthorized(Denied::Invalid);
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let challenge = r.headers()[header::WWW_AUTHENTICATE].to_str().unwrap();
        assert!(
            challenge.starts_with("Basic realm=\"overage\""),
            "{challenge}"
        );
        assert_eq!(
            r.headers()[header::CONTENT_TYPE].to_str().unwrap(),
            "application/json"
        );
        // the token's Debug never shows it
        assert!(!format!("{:?}", guard()).contains(TOKEN));
    }
}
