//! X-Matrix request authentication (server-server API, "Request Authentication").
//!
//! Every federation request carries an `Authorization: X-Matrix …` header whose `sig` is the
//! origin's ed25519 signature over a small JSON object:
//!
//! ```json
//! {"method": "PUT", "uri": "/_matrix/federation/v1/send/1", "origin": "a.example",
//!  "destination": "b.example", "content": {…}}
//! ```
//!
//! (`content` only when the request has a body). The header's grammar and its printing belong to
//! ruma's [`XMatrix`]; this module adds what ruma leaves to the server, without any I/O:
//!
//! * [`sign_request`] builds the object from plain parts (the homeserver's sender has the method,
//!   the path and the body before it has an `http::Request`) and signs it with the server key;
//! * [`parse_authorization`] is ruma's parser plus the one leniency the spec asks of recipients
//!   that ruma's strict RFC 9110 parser lacks: unquoted values with colons (`key=ed25519:abc`,
//!   `origin=example.org:8448`), as older servers send them;
//! * [`verify_request`] checks the destination and the signature against one public key. Finding
//!   that key (by `origin` and `key`, through the key cache or a notary) is the caller's I/O.
//!
//! Every failure is [`Error::Unauthorized`]: the homeserver answers all of them with
//! `401 M_UNAUTHORIZED`, as the spec requires for a wrong destination.

use http::{HeaderValue, Method};
use ruma::{
    CanonicalJsonObject, CanonicalJsonValue, OwnedServerSigningKeyId, ServerName,
    SigningKeyAlgorithm,
    http_headers::is_token_string,
    serde::Base64,
    signatures::{to_canonical_json_string_for_signing, verify_canonical_json_bytes},
};

pub use ruma::api::federation::authentication::XMatrix;

use crate::{Error, Result, ServerSigningKey};

/// Signs a request from `origin` to `destination` and returns the `Authorization` header value.
///
/// `uri_path_and_query` is the request target exactly as it goes on the wire: the path from
/// `/_matrix/…` with the `?` and the query string if any, percent-encoded, and without scheme
/// or host. `body` is the JSON body, if the request has one; the spec's server names are the
/// ones before delegation, so `destination` is the server name, never a resolved host.
pub fn sign_request(
    key: &ServerSigningKey,
    origin: &ServerName,
    destination: &ServerName,
    method: &Method,
    uri_path_and_query: &str,
    body: Option<&CanonicalJsonObject>,
) -> Result<HeaderValue> {
    let content = body.map(|object| CanonicalJsonValue::Object(object.clone()));
    let object = request_object(method, uri_path_and_query, origin, destination, content);
    let canonical =
        to_canonical_json_string_for_signing(&object).map_err(|e| Error::Json(e.to_string()))?;

    let key_id = OwnedServerSigningKeyId::try_from(key.key_id())
        .map_err(|e| Error::InvalidKey(format!("key ID {}: {e}", key.key_id())))?;
    let sig = Base64::parse(key.sign_bytes(canonical.as_bytes()))
        .map_err(|e| Error::InvalidKey(format!("signature is not base64: {e}")))?;

    let header = XMatrix::new(origin.to_owned(), destination.to_owned(), key_id, sig);
    Ok(HeaderValue::from(&header))
}

/// Parses an `Authorization` header value into ruma's [`XMatrix`].
///
/// Accepts what the spec allows: any case for the scheme and the parameter names, any order,
/// quoted or unquoted (token) values, backslash escapes in quoted values, spaces and tabs
/// around commas, unknown parameters (ignored), a missing `destination` (servers before
/// v1.3), and, for older servers, unquoted values containing colons or other non-token
/// characters. `origin`, `key` and `sig` are required.
pub fn parse_authorization(header: &HeaderValue) -> Result<XMatrix> {
    let text = header
        .to_str()
        .map_err(|_| unauthorized("the Authorization header is not visible ASCII"))?;
    match XMatrix::parse(text) {
        Ok(auth) => Ok(auth),
        Err(strict) => {
            // Only if the strict parse fails: quote the bare values a lax sender wrote, then
            // let ruma parse again. If the header has no such shape, the strict error names
            // its problem; if it has, the second parse's error does.
            let quoted = quote_bare_values(text)
                .ok_or_else(|| unauthorized(format!("invalid X-Matrix header: {strict}")))?;
            XMatrix::parse(&quoted)
                .map_err(|lax| unauthorized(format!("invalid X-Matrix header: {lax}")))
        }
    }
}

/// Verifies that `auth` signs this request to `our_name` with `public_key` (the 32 raw bytes of
/// the origin's ed25519 key named by `auth.key`).
///
/// `method`, `uri_path_and_query` and `body` are the request as received: the raw request
/// target (not percent-decoded) and the raw body bytes. No body or an empty one means the
/// signed object has no `content`; any other body must be JSON (canonical: no floats, integers
/// in the safe range), otherwise the request cannot have been signed and is refused.
///
/// A `destination` other than `our_name` is refused; an absent one is accepted (servers before
/// spec v1.3 do not send it) and `our_name` is what they signed.
pub fn verify_request(
    auth: &XMatrix,
    our_name: &ServerName,
    method: &Method,
    uri_path_and_query: &str,
    body: Option<&[u8]>,
    public_key: &[u8],
) -> Result<()> {
    if let Some(destination) = &auth.destination
        && destination != our_name
    {
        return Err(unauthorized(format!(
            "the request is for {destination}, this server is {our_name}"
        )));
    }
    if auth.key.algorithm() != SigningKeyAlgorithm::Ed25519 {
        return Err(unauthorized(format!("unsupported key algorithm in key ID {}", auth.key)));
    }

    let content = match body {
        None | Some([]) => None,
        Some(bytes) => Some(
            serde_json::from_slice::<CanonicalJsonValue>(bytes)
                .map_err(|e| unauthorized(format!("the signed body is not canonical JSON: {e}")))?,
        ),
    };
    let object = request_object(method, uri_path_and_query, &auth.origin, our_name, content);
    let canonical = to_canonical_json_string_for_signing(&object)
        .map_err(|e| unauthorized(format!("the signed request is not canonical JSON: {e}")))?;

    verify_canonical_json_bytes(
        &SigningKeyAlgorithm::Ed25519,
        public_key,
        auth.sig.as_bytes(),
        canonical.as_bytes(),
    )
    .map_err(|e| {
        unauthorized(format!(
            "X-Matrix signature of {} by {} is invalid: {e}",
            auth.origin, auth.key
        ))
    })
}

/// The object whose canonical JSON is signed (step 1 of the spec's request signing).
fn request_object(
    method: &Method,
    uri: &str,
    origin: &ServerName,
    destination: &ServerName,
    content: Option<CanonicalJsonValue>,
) -> CanonicalJsonObject {
    let mut object = CanonicalJsonObject::from([
        ("method".to_owned(), method.as_str().into()),
        ("uri".to_owned(), uri.into()),
        ("origin".to_owned(), origin.as_str().into()),
        ("destination".to_owned(), destination.as_str().into()),
    ]);
    if let Some(content) = content {
        object.insert("content".to_owned(), content);
    }
    object
}

fn unauthorized(message: impl Into<String>) -> Error {
    Error::Unauthorized(message.into())
}

/// Rewrites `X-Matrix name=bare:value,…` so that every bare value that is not an RFC 9110
/// token becomes a quoted string. Quoted values are copied untouched, so a comma inside quotes
/// does not split a parameter. Returns `None` if the scheme is not X-Matrix or the parameter
/// list has no recognisable `name=value` shape; ruma's parser does all the real validation.
fn quote_bare_values(header: &str) -> Option<String> {
    let header = header.trim_start();
    let scheme_end = header.find([' ', '\t'])?;
    let (scheme, mut rest) = header.split_at(scheme_end);
    if !scheme.eq_ignore_ascii_case(XMatrix::AUTH_SCHEME) {
        return None;
    }

    let mut params = Vec::new();
    loop {
        rest = rest.trim_start_matches([' ', '\t', ',']);
        if rest.is_empty() {
            break;
        }
        let (name, after) = rest.split_once('=')?;
        let name = name.trim_end_matches([' ', '\t']);
        if name.is_empty() || !is_token_string(name) {
            return None;
        }
        let after = after.trim_start_matches([' ', '\t']);
        let value;
        (value, rest) = if after.starts_with('"') {
            let end = closing_quote(after)?;
            (after[..=end].to_owned(), &after[end + 1..])
        } else {
            let end = after.find(',').unwrap_or(after.len());
            let bare = after[..end].trim_end_matches([' ', '\t']);
            if bare.is_empty() || bare.contains(['"', '\\', ' ', '\t']) {
                return None;
            }
            let value = if is_token_string(bare) { bare.to_owned() } else { format!("\"{bare}\"") };
            (value, &after[end..])
        };
        params.push(format!("{name}={value}"));
    }
    Some(format!("{} {}", XMatrix::AUTH_SCHEME, params.join(",")))
}

/// The index of the quote closing the quoted string that starts at `s[0]`.
fn closing_quote(s: &str) -> Option<usize> {
    let mut escaped = false;
    for (index, byte) in s.bytes().enumerate().skip(1) {
        match byte {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return Some(index),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests;
