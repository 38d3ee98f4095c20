//! SASL PLAIN as IRC carries it (`AUTHENTICATE`): the client's response
//! arrives base64-encoded in chunks of 400 bytes, a chunk shorter than 400
//! (or `+`, empty) ending it; decoded, it is `authzid NUL authcid NUL
//! password`.

use base64::Engine;
use thiserror::Error;
use zeroize::Zeroizing;

/// The longest response accepted, encoded: an account name and a password
/// fit in far less; more is an attack or a mistake.
pub const MAX_RESPONSE: usize = 1200;

/// Chunk size of `AUTHENTICATE` payloads.
pub const CHUNK: usize = 400;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum SaslError {
    #[error("the SASL response is too long")]
    TooLong,
    #[error("the SASL response is not valid base64")]
    NotBase64,
    #[error("the SASL PLAIN response must be authzid, account and password, NUL-separated")]
    Malformed,
    #[error("logging in as one account on behalf of another is not supported")]
    OtherIdentity,
}

/// A PLAIN response being received, chunk by chunk.
#[derive(Default)]
pub struct PlainResponse {
    encoded: Zeroizing<String>,
}

/// The account and password a PLAIN response carries.
#[derive(Debug, PartialEq, Eq)]
pub struct PlainCredentials {
    pub account: String,
    pub password: Zeroizing<String>,
}

impl PlainResponse {
    /// Takes one `AUTHENTICATE` payload. `Ok(None)`: more chunks follow;
    /// `Ok(Some(..))`: the response is whole and decoded.
    pub fn push(&mut self, chunk: &str) -> Result<Option<PlainCredentials>, SaslError> {
        if chunk != "+" {
            if self.encoded.len() + chunk.len() > MAX_RESPONSE {
                return Err(SaslError::TooLong);
            }
            self.encoded.push_str(chunk);
            if chunk.len() == CHUNK {
                return Ok(None);
            }
        }
        decode_plain(&self.encoded).map(Some)
    }
}

/// Decodes a whole base64 PLAIN response.
pub fn decode_plain(encoded: &str) -> Result<PlainCredentials, SaslError> {
    let raw = Zeroizing::new(
        base64::engine::general_purpose::STANDARD
            .decode(encoded)
            .map_err(|_| SaslError::NotBase64)?,
    );
    let mut parts = raw.split(|&b| b == 0);
    let (Some(authzid), Some(authcid), Some(password), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(SaslError::Malformed);
    };
    fn text(b: &[u8]) -> Result<&str, SaslError> {
        std::str::from_utf8(b).map_err(|_| SaslError::Malformed)
    }
    let (authzid, account) = (text(authzid)?, text(authcid)?);
    if account.is_empty() {
        return Err(SaslError::Malformed);
    }
    if !authzid.is_empty() && authzid != account {
        return Err(SaslError::OtherIdentity);
    }
    Ok(PlainCredentials {
        account: account.to_string(),
        password: Zeroizing::new(text(password)?.to_string()),
    })
}

/// Encodes a PLAIN response into its `AUTHENTICATE` payloads (the client's
/// side): chunks of 400, and a `+` after a last chunk of exactly 400.
pub fn encode_plain(account: &str, password: &str) -> Vec<String> {
    let raw = Zeroizing::new(format!("{account}\0{account}\0{password}"));
    let encoded = base64::engine::general_purpose::STANDARD.encode(raw.as_bytes());
    let mut chunks: Vec<String> = encoded
        .as_bytes()
        .chunks(CHUNK)
        .map(|c| String::from_utf8_lossy(c).into_owned())
        .collect();
    if chunks.last().is_none_or(|c| c.len() == CHUNK) {
        chunks.push("+".into());
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(chunks: &[String]) -> Result<Option<PlainCredentials>, SaslError> {
        let mut r = PlainResponse::default();
        let mut last = Ok(None);
        for c in chunks {
            last = r.push(c);
        }
        last
    }

    #[test]
    fn round_trips_short_and_chunked_responses() {
        let short = encode_plain("alice", "pw with spaces");
        assert_eq!(short.len(), 1);
        let got = whole(&short).unwrap().unwrap();
        assert_eq!(
            (got.account.as_str(), got.password.as_str()),
            ("alice", "pw with spaces")
        );

        // 300 bytes of password: 612 encoded, two chunks.
        let long = encode_plain("bob", &"p".repeat(300));
        assert_eq!(long.len(), 2);
        let mut r = PlainResponse::default();
        assert_eq!(r.push(&long[0]), Ok(None), "a full chunk wants more");
        assert_eq!(r.push(&long[1]).unwrap().unwrap().password.len(), 300);

        // Exactly 400 encoded bytes: ended by "+".
        let pw = "x".repeat(300 - 2 * "carol".len() - 2);
        let exact = encode_plain("carol", &pw);
        assert_eq!((exact[0].len(), exact[1].as_str()), (400, "+"));
        assert_eq!(whole(&exact).unwrap().unwrap().account, "carol");
    }

    #[test]
    fn refuses_what_is_not_a_plain_response() {
        let enc = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        assert_eq!(decode_plain("!!!"), Err(SaslError::NotBase64));
        assert_eq!(decode_plain(&enc("alice\0pw")), Err(SaslError::Malformed));
        assert_eq!(decode_plain(&enc("\0\0pw")), Err(SaslError::Malformed));
        assert_eq!(decode_plain(&enc("a\0b\0c\0d")), Err(SaslError::Malformed));
        assert_eq!(
            decode_plain(&enc("admin\0alice\0pw")),
            Err(SaslError::OtherIdentity)
        );
        assert_eq!(
            decode_plain(&enc("\0alice\0")).unwrap().password.as_str(),
            ""
        );
        let mut r = PlainResponse::default();
        let big = "A".repeat(CHUNK);
        assert_eq!(r.push(&big), Ok(None));
        assert_eq!(r.push(&big), Ok(None));
        assert_eq!(r.push(&big), Ok(None));
        assert_eq!(r.push("AAAA"), Err(SaslError::TooLong));
    }
}
