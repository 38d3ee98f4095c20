//! Making untrusted text harmless for terminals, the transcript and peers.
//!
//! Everything a peer sends may contain terminal escape sequences (which can
//! move the cursor, recolour or retitle a terminal, or hide text), C0/C1
//! control characters, or bidi overrides that make text read differently
//! from what it is. Two levels:
//! - [`for_relay`]: what the tracker forwards to other IRC clients. It keeps
//!   IRC formatting codes (bold, colour, CTCP's \x01) that IRC clients render
//!   themselves, and removes everything a terminal would interpret.
//! - [`for_display`]: what a terminal or the transcript shows: plain text only.

/// IRC formatting control codes that IRC clients interpret themselves.
fn is_irc_format(c: char) -> bool {
    matches!(
        c,
        '\x01' | '\x02' | '\x03' | '\x04' | '\x0f' | '\x11' | '\x16' | '\x1d' | '\x1e' | '\x1f'
    )
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{200e}' | '\u{200f}' | '\u{061c}')
}

/// True when `input` has nothing [`strip`] would change: no C0 control or
/// DEL byte, and none of the lead bytes that start a C1 control (0xC2), a
/// bidi control (0xE2, 0xD8) in UTF-8. Most chat text is like this, and a
/// byte scan is several times cheaper than decoding it char by char (the
/// relay path ran both sanitizers on every message: 13% of the tracker's
/// CPU in the B8 profile). False positives (é is 0xC3, but `—` starts
/// with 0xE2) only mean the slow path runs.
fn is_clean(input: &str) -> bool {
    !input
        .bytes()
        .any(|b| b < 0x20 || b == 0x7f || b == 0xc2 || b == 0xe2 || b == 0xd8)
}

/// Removes ESC sequences (CSI, OSC, DCS and two-byte forms) and the 8-bit
/// CSI/OSC introducers along with their bodies; `keep` decides which other
/// control characters survive.
fn strip(input: &str, keep: impl Fn(char) -> bool) -> String {
    if is_clean(input) {
        return input.to_string();
    }
    strip_slow(input, keep)
}

fn strip_slow(input: &str, keep: impl Fn(char) -> bool) -> String {
    let mut out = String::with_capacity(input.len());
    let mut chars = input.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' | '\u{9b}' | '\u{9d}' | '\u{90}' => {
                let kind = if c == '\x1b' { chars.next() } else { Some(c) };
                match kind {
                    // CSI: parameters and intermediates, then one final byte.
                    Some('[') | Some('\u{9b}') => {
                        for n in chars.by_ref() {
                            if ('\x40'..='\x7e').contains(&n) {
                                break;
                            }
                        }
                    }
                    // OSC / DCS / APC / PM / SOS: up to BEL or ST (ESC \).
                    Some(']') | Some('P') | Some('_') | Some('^') | Some('X') | Some('\u{9d}')
                    | Some('\u{90}') => {
                        while let Some(n) = chars.next() {
                            if n == '\x07' || n == '\u{9c}' {
                                break;
                            }
                            if n == '\x1b' {
                                if chars.peek() == Some(&'\\') {
                                    chars.next();
                                }
                                break;
                            }
                        }
                    }
                    // Two-byte escapes (ESC c, ESC 7, ...): already consumed.
                    _ => {}
                }
            }
            '\t' => out.push(' '),
            c if c.is_control() || is_bidi_control(c) => {
                if keep(c) {
                    out.push(c);
                }
            }
            c => out.push(c),
        }
    }
    out
}

/// Text as relayed to IRC clients: IRC formatting kept, terminal controls gone.
pub fn for_relay(input: &str) -> String {
    strip(input, is_irc_format)
}

/// Text as shown on a terminal or written to the transcript: no control
/// characters at all, and IRC colour codes removed with their arguments.
pub fn for_display(input: &str) -> String {
    let stripped = strip(input, |c| c == '\x03');
    if !stripped.contains('\x03') {
        return stripped;
    }
    let mut out = String::with_capacity(stripped.len());
    let mut chars = stripped.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\x03' {
            out.push(c);
            continue;
        }
        // \x03[fg[,bg]] where fg and bg are one or two digits.
        for _ in 0..2 {
            if chars.peek().is_some_and(char::is_ascii_digit) {
                chars.next();
            }
        }
        let mut lookahead = chars.clone();
        if lookahead.next() == Some(',') && lookahead.peek().is_some_and(char::is_ascii_digit) {
            chars.next();
            for _ in 0..2 {
                if chars.peek().is_some_and(char::is_ascii_digit) {
                    chars.next();
                }
            }
        }
    }
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a
/// character boundary.
pub fn clip(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// How much of a client's input a reply quotes (a nick, a command, a
/// target) in its middle parameters: enough to recognise it, and short
/// enough that the reply stays within IRC's 512-byte line.
pub const QUOTE_MAX: usize = 64;

/// Adds a numeric reply's parameters to `m`: cleaned, because error
/// replies quote what the client sent, and the middle ones cut to
/// [`QUOTE_MAX`] (the last is the reply's own text).
pub fn reply_params(mut m: super::Message, params: &[&str]) -> super::Message {
    let last = params.len().saturating_sub(1);
    for (i, p) in params.iter().enumerate() {
        let p = if i < last { clip(p, QUOTE_MAX) } else { p };
        m = m.param(for_display(p));
    }
    m
}

#[cfg(test)]
mod tests {

    #[test]
    fn clip_keeps_whole_characters() {
        assert_eq!(clip("abc", 5), "abc");
        assert_eq!(clip("abcdef", 3), "abc");
        assert_eq!(clip("a\u{e9}b", 2), "a");
        assert_eq!(clip("\u{1F600}x", 3), "");
    }

    use super::*;

    /// The byte scan may only skip text the char-by-char path leaves as is.
    #[test]
    fn clean_fast_path_agrees_with_the_slow_path() {
        let samples = (0u32..0x3000)
            .chain(0xfe00..0xff00)
            .chain(0x1f300..0x1f700)
            .filter_map(char::from_u32);
        for c in samples {
            let s = format!("a{c}b");
            if is_clean(&s) {
                assert_eq!(strip_slow(&s, |_| false), s, "U+{:04X}", c as u32);
            }
        }
        assert!(is_clean(
            "plain words, caf\u{e9}, \u{4f60}\u{597d} \u{1f600}"
        ));
        assert!(!is_clean("rtl\u{202e}"));
        assert!(!is_clean("c1\u{85}"));
    }

    #[test]
    fn strips_terminal_escapes() {
        assert_eq!(for_display("a\x1b[31mred\x1b[0m b"), "ared b");
        assert_eq!(for_display("\x1b]0;pwned title\x07ok"), "ok");
        assert_eq!(
            for_display("\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\"),
            "link"
        );
        assert_eq!(for_display("x\x1bcy"), "xy");
        assert_eq!(for_display("x\u{9b}2Jy"), "xy");
        assert_eq!(
            for_display("bell\x07 nul-free \x08back"),
            "bell nul-free back"
        );
        assert_eq!(for_display("tab\there"), "tab here");
        assert_eq!(for_display("rtl\u{202e}evil"), "rtlevil");
        assert_eq!(for_display("unterminated \x1b["), "unterminated ");
    }

    #[test]
    fn display_removes_irc_formatting() {
        assert_eq!(
            for_display("\x02bold\x02 \x0304,12red\x03 \x1funder\x0f"),
            "bold red under"
        );
        assert_eq!(for_display("\x033,x"), ",x");
        assert_eq!(for_display("\x01ACTION waves\x01"), "ACTION waves");
    }

    #[test]
    fn relay_keeps_irc_formatting_only() {
        assert_eq!(
            for_relay("\x02bold\x02\x1b[2J\x0304red"),
            "\x02bold\x02\x0304red"
        );
        assert_eq!(for_relay("\x01ACTION waves\x01"), "\x01ACTION waves\x01");
        assert_eq!(for_relay("é 漢 😀"), "é 漢 😀");
    }
}
