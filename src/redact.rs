//! What a secret looks like, and how it is shown instead: one leaf every layer that prints
//! configuration or logs a URL uses (config dumps, librdkafka options, sink URLs), so there is
//! one spelling of "redacted" and no layer imports another to hide a password.

/// What is shown instead of a secret.
pub const REDACTED: &str = "<redacted>";

/// Option keys whose values must never be logged or printed (`sasl.password`,
/// `ssl.key.password`, `ssl.key.pem`, `ssl.keystore.password`, `sasl.kerberos.keytab`,
/// `sasl.oauthbearer.client.secret`, ...). Errs on the side of hiding: `ssl.key.location`
/// (a path) is hidden too.
pub fn is_secret(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "secret",
        "key",
        "token",
        "credential",
        "sasl.oauthbearer.config",
        "sasl.oauthbearer.extensions",
        "sasl.jaas.config",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// The URL with any password in it replaced by [`REDACTED`], for logs and messages.
/// (Credentials in a URL, `http://user:password@host:9093`, are how basic auth is given to an
/// HTTP sink: reqwest sends them as an `Authorization: Basic` header.)
pub fn url(u: &str) -> String {
    // A placeholder URLs accept as a password (`<` would be percent-encoded), swapped after.
    const MARK: &str = "REDACTEDPASSWORD";
    match url::Url::parse(u) {
        Ok(mut parsed) if parsed.password().is_some() => {
            if parsed.set_password(Some(MARK)).is_err() {
                return format!("{REDACTED} (a URL with credentials)");
            }
            parsed
                .to_string()
                .replacen(&format!(":{MARK}@"), &format!(":{REDACTED}@"), 1)
        }
        Ok(_) => u.to_owned(),
        // not a URL: it may still hold `user:secret@`; show no more than the scheme
        Err(_) => match u.split_once("://") {
            Some((scheme, rest)) if rest.contains('@') => format!("{scheme}://{REDACTED}"),
            _ => u.to_owned(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_recognised() {
        for k in [
            "sasl.password",
            "ssl.key.password",
            "ssl.key.pem",
            "ssl.keystore.password",
            "sasl.kerberos.keytab",
            "sasl.oauthbearer.client.secret",
            "SASL.OAUTHBEARER.CONFIG",
            "sasl.oauthbearer.extensions",
        ] {
            assert!(is_secret(k), "{k}");
        }
        for k in ["bootstrap.servers", "security.protocol", "sasl.mechanism"] {
            assert!(!is_secret(k), "{k}");
        }
    }

    #[test]
    fn passwords_in_urls_are_hidden() {
        assert_eq!(
            url("https://ops:hunter2-secret@am:9093/prefix"),
            "https://ops:<redacted>@am:9093/prefix"
        );
        assert_eq!(url("http://am:9093"), "http://am:9093");
        assert!(!url("xx://u:hunter2-secret@").contains("hunter2"));
    }
}
