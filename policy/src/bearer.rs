//! `Authorization: Bearer <credential>`, parsed once for every listener (inference, management
//! REST, both gRPC ports). The scheme is case-insensitive (RFC 9110 §11.1); surrounding spaces
//! are trimmed; an empty credential is no credential.

/// The credential of a Bearer `Authorization` value, or `None`.
pub fn bearer(value: &[u8]) -> Option<&[u8]> {
    const SCHEME: &[u8] = b"bearer";
    let value = value.trim_ascii_start();
    let (scheme, rest) = value.split_at_checked(SCHEME.len())?;
    if !scheme.eq_ignore_ascii_case(SCHEME) || rest.first() != Some(&b' ') {
        return None;
    }
    let credential = rest.trim_ascii();
    (!credential.is_empty()).then_some(credential)
}

/// [`bearer`] over text (header values that are valid UTF-8, gRPC metadata).
pub fn bearer_str(value: &str) -> Option<&str> {
    // The credential is a subslice of valid UTF-8 cut at ASCII spaces, so it is UTF-8 too.
    bearer(value.as_bytes()).and_then(|c| std::str::from_utf8(c).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_scheme_is_case_insensitive_and_the_credential_trimmed() {
        for header in [
            "Bearer abc",
            "bearer abc",
            "BEARER abc",
            "Bearer   abc  ",
            " Bearer abc",
        ] {
            assert_eq!(bearer_str(header), Some("abc"), "{header:?}");
        }
    }

    #[test]
    fn anything_else_is_no_credential() {
        for header in [
            "",
            "Bearer",
            "Bearer ",
            "Bearer    ",
            "Basic abc",
            "Bearerabc",
            "Token abc",
        ] {
            assert_eq!(bearer_str(header), None, "{header:?}");
        }
        assert_eq!(bearer(b"Bearer \xff\xfe"), Some(&b"\xff\xfe"[..]));
        assert_eq!(bearer_str("Bearer \u{e9}t\u{e9}"), Some("\u{e9}t\u{e9}"));
    }
}
