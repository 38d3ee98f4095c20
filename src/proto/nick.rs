//! Nicknames and channel names: validation and the rfc1459 case mapping.

use thiserror::Error;

/// Longest nickname accepted (advertised as NICKLEN).
pub const NICK_MAX: usize = 16;
/// Longest channel name accepted (advertised as CHANNELLEN).
pub const CHANNEL_MAX: usize = 32;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum NickError {
    #[error("a username is needed")]
    Empty,
    #[error("usernames are at most {NICK_MAX} characters")]
    TooLong,
    #[error(
        "usernames may use letters, digits and - _ [ ] \\ ^ {{ }} | ` and may not start with a digit or -"
    )]
    BadCharacters,
}

fn is_special(c: char) -> bool {
    matches!(c, '[' | ']' | '\\' | '`' | '_' | '^' | '{' | '|' | '}')
}

/// RFC 2812 nickname grammar, restricted to ASCII so that names look the
/// same in every terminal and cannot impersonate each other with homoglyphs.
pub fn validate_nick(nick: &str) -> Result<(), NickError> {
    let mut chars = nick.chars();
    let Some(first) = chars.next() else {
        return Err(NickError::Empty);
    };
    if nick.chars().count() > NICK_MAX {
        return Err(NickError::TooLong);
    }
    if !(first.is_ascii_alphabetic() || is_special(first)) {
        return Err(NickError::BadCharacters);
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || is_special(c) || c == '-') {
        return Err(NickError::BadCharacters);
    }
    Ok(())
}

/// Characters that change how text looks without showing: bidi controls,
/// line separators, zero-width characters (joiners too), soft hyphen. In a
/// room name they would make two rooms look the same, or break the line
/// the name is shown on.
pub fn invisible(c: char) -> bool {
    super::sanitize::is_hidden_format(c) || matches!(c, '\u{200C}' | '\u{200D}')
}

/// Channel names: `#` then 1..CHANNEL_MAX-1 printable characters without
/// space, comma, BEL or control characters.
pub fn valid_channel(name: &str) -> bool {
    name.starts_with('#')
        && name.len() > 1
        && name.len() <= CHANNEL_MAX
        && !name
            .chars()
            .any(|c| c.is_control() || c == ' ' || c == ',' || c == ':' || invisible(c))
}

/// Folds a name with the `rfc1459` case mapping advertised in ISUPPORT:
/// ASCII letters plus `[]\~` as the lower case of `{}|^`.
pub fn casefold(name: &str) -> String {
    name.chars()
        .map(|c| match c {
            'A'..='Z' => c.to_ascii_lowercase(),
            '[' => '{',
            ']' => '}',
            '\\' => '|',
            '~' => '^',
            c => c,
        })
        .collect()
}

/// Whether `text` names `me` as a whole word (names compared as IRC does).
pub fn mentions(text: &str, me: &str) -> bool {
    let me = casefold(me);
    if me.is_empty() {
        return false;
    }
    let text = casefold(text);
    let nickish = |c: char| c.is_ascii_alphanumeric() || "-_{}|^`".contains(c);
    text.match_indices(&me).any(|(i, _)| {
        let before = text[..i].chars().next_back();
        let after = text[i + me.len()..].chars().next();
        !before.is_some_and(nickish) && !after.is_some_and(nickish)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validates_nicks() {
        assert_eq!(validate_nick("alice"), Ok(()));
        assert_eq!(validate_nick("[bob]_2"), Ok(()));
        assert_eq!(validate_nick("a-b"), Ok(()));
        assert_eq!(validate_nick(""), Err(NickError::Empty));
        assert_eq!(validate_nick("1abc"), Err(NickError::BadCharacters));
        assert_eq!(validate_nick("-abc"), Err(NickError::BadCharacters));
        assert_eq!(validate_nick("a b"), Err(NickError::BadCharacters));
        assert_eq!(validate_nick("héllo"), Err(NickError::BadCharacters));
        assert_eq!(validate_nick("a\x1b[31m"), Err(NickError::BadCharacters));
        assert_eq!(validate_nick(&"a".repeat(17)), Err(NickError::TooLong));
        assert_eq!(validate_nick(&"a".repeat(16)), Ok(()));
    }

    #[test]
    fn casefold_is_rfc1459() {
        assert_eq!(casefold("Alice[]\\~"), "alice{}|^");
        assert_eq!(casefold("#General"), "#general");
    }

    #[test]
    fn channels() {
        assert!(valid_channel("#general"));
        assert!(!valid_channel("general"));
        assert!(!valid_channel("#"));
        assert!(!valid_channel("#a,b"));
        assert!(!valid_channel("#a\x07"));
        assert!(!valid_channel("#\u{202e}abc"), "bidi override");
        assert!(!valid_channel("#ab\u{200b}c"), "zero-width space");
        assert!(!valid_channel("#ab\u{200d}c"), "zero-width joiner");
        assert!(!valid_channel("#a\u{2028}b"), "line separator");
        assert!(!valid_channel("#a\u{fff9}b"), "interlinear annotation");
        assert!(valid_channel("#caf\u{e9}"));
    }
}
