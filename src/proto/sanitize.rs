//! Making untrusted text harmless for terminals, the transcript and peers.
//!
//! Everything a peer sends may contain terminal escape sequences (which can
//! move the cursor, recolour or retitle a terminal, or hide text), C0/C1
//! control characters, bidi overrides that make text read differently
//! from what it is, or line and paragraph separators (U+2028, U+2029)
//! that tools splitting lines the Unicode way take for a new line (a
//! forged `chat.log` line). Three levels:
//! - [`for_relay`]: what the tracker forwards to other IRC clients. It keeps
//!   IRC formatting codes (bold, colour, CTCP's \x01) that IRC clients render
//!   themselves, and removes everything a terminal would interpret or that
//!   moves text.
//! - [`for_tag`]: a message tag's value as relayed: like `for_relay`, with
//!   no IRC formatting either (a tag value is data, not formatted text).
//! - [`for_display`]: what a terminal or the transcript shows: plain text
//!   only, and no invisible characters that hide text from `grep` or that
//!   terminals disagree on the width of.
//!
//! | characters | relay, tags | display, log |
//! | --- | --- | --- |
//! | escape sequences (ESC, 8-bit CSI/OSC/DCS) with their bodies | removed | removed |
//! | other C0/C1 controls, DEL | removed (relay keeps IRC formatting) | removed |
//! | tab | space (tags: removed) | space |
//! | U+2028, U+2029 (Zl, Zp) | space | space |
//! | bidi: U+061C, U+200E, U+200F, U+202A–U+202E, U+2066–U+2069 | removed | removed |
//! | U+206A–U+206F (deprecated format), U+FFF9–U+FFFB (interlinear annotation) | removed | removed |
//! | invisible: U+00AD, U+180E, U+200B, U+2060–U+2064, U+FEFF, U+1D173–U+1D17A, U+E0001 | kept | removed |
//! | U+200C, U+200D (ZWNJ, ZWJ), variation selectors, emoji tag characters | kept | kept |

/// IRC formatting control codes that IRC clients interpret themselves.
fn is_irc_format(c: char) -> bool {
    matches!(
        c,
        '\x01' | '\x02' | '\x03' | '\x04' | '\x0f' | '\x11' | '\x16' | '\x1d' | '\x1e' | '\x1f'
    )
}

/// Format characters that make text read in another order or in another
/// place than it is: bidi embeddings, overrides, isolates and marks,
/// interlinear annotation (which hides the annotated text or shows it
/// elsewhere), and the deprecated shaping/digit-form controls. Never
/// relayed, shown or logged.
fn moves_text(c: char) -> bool {
    matches!(c,
        '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{206f}'
        | '\u{fff9}'..='\u{fffb}')
}

/// Unicode line and paragraph separators (categories Zl, Zp): a new line
/// to anything that splits lines the Unicode way. A space in their place
/// keeps the words apart.
fn is_line_separator(c: char) -> bool {
    matches!(c, '\u{2028}' | '\u{2029}')
}

/// Invisible format characters with no job in chat text on a terminal or
/// in the log: soft hyphen, Mongolian vowel separator, zero width space,
/// word joiner and invisible operators, zero width no-break space (BOM),
/// musical beam/slur format characters, the deprecated language tag. They
/// hide words from `grep`, make two lines look the same, and terminals
/// disagree on their width (stale cells in the full-screen client).
/// Relayed as they are: IRC clients handle them, and bots put U+200B into
/// names so as not to highlight people. ZWJ and ZWNJ are not here: emoji
/// sequences and several scripts (Persian, Indic) need them.
fn is_invisible(c: char) -> bool {
    matches!(c,
        '\u{00ad}' | '\u{180e}' | '\u{200b}' | '\u{2060}'..='\u{2064}' | '\u{feff}'
        | '\u{1d173}'..='\u{1d17a}' | '\u{e0001}')
}

/// True when `c` changes how text reads or where it goes without being
/// seen as itself: what [`for_display`] removes or replaces besides
/// control characters. Names (rooms) must not contain any of these.
pub fn is_hidden_format(c: char) -> bool {
    moves_text(c) || is_line_separator(c) || is_invisible(c)
}

/// How much [`strip`] removes besides control characters.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Level {
    /// For IRC clients: what moves text or breaks lines.
    Relay,
    /// A tag value for IRC clients: as `Relay`, but a tab is removed, not
    /// made a space (a space takes two bytes escaped, `\s`, a tab one).
    Tag,
    /// For a terminal or the log: also invisible characters.
    Display,
}

/// True when `input` has nothing [`strip`] would change at any level: no
/// C0 control or DEL byte, and none of the UTF-8 sequences that encode the
/// other characters it removes or replaces. Most chat text is like this,
/// and a byte scan is several times cheaper than decoding it char by char
/// (the relay path ran both sanitizers on every message: 13% of the
/// tracker's CPU in the B8 profile). Only a few lead bytes need a look at
/// what follows; a false positive only means the slow path runs.
fn is_clean(input: &str) -> bool {
    let b = input.as_bytes();
    let at = |i: usize| b.get(i).copied().unwrap_or(0);
    for (i, &byte) in b.iter().enumerate() {
        let flagged = match byte {
            0x00..=0x1f | 0x7f => true,
            0x20..=0xc1 => false,
            // U+0080-U+009F (C1, with the 8-bit CSI/OSC/DCS), U+00AD.
            0xc2 => matches!(at(i + 1), 0x80..=0x9f | 0xad),
            // U+061C.
            0xd8 => at(i + 1) == 0x9c,
            // U+180E.
            0xe1 => at(i + 1) == 0xa0 && at(i + 2) == 0x8e,
            // U+200B, U+200E, U+200F, U+2028-U+202E; U+2060-U+206F.
            0xe2 => match at(i + 1) {
                0x80 => matches!(at(i + 2), 0x8b | 0x8e | 0x8f | 0xa8..=0xae),
                0x81 => matches!(at(i + 2), 0xa0..=0xaf),
                _ => false,
            },
            // U+FEFF; U+FFF9-U+FFFB.
            0xef => match at(i + 1) {
                0xbb => at(i + 2) == 0xbf,
                0xbf => matches!(at(i + 2), 0xb9..=0xbb),
                _ => false,
            },
            // U+1D173-U+1D17A.
            0xf0 => at(i + 1) == 0x9d && at(i + 2) == 0x85 && matches!(at(i + 3), 0xb3..=0xba),
            // U+E0001.
            0xf3 => at(i + 1) == 0xa0 && at(i + 2) == 0x80 && at(i + 3) == 0x81,
            _ => false,
        };
        if flagged {
            return false;
        }
    }
    true
}

/// Removes ESC sequences (CSI, OSC, DCS and two-byte forms) and the 8-bit
/// CSI/OSC introducers along with their bodies, and what moves text;
/// replaces tabs and line separators by spaces; `keep` decides which other
/// control characters survive.
fn strip(input: &str, keep: impl Fn(char) -> bool, level: Level) -> String {
    if is_clean(input) {
        return input.to_string();
    }
    strip_slow(input, keep, level)
}

fn strip_slow(input: &str, keep: impl Fn(char) -> bool, level: Level) -> String {
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
            '\t' if level == Level::Tag => {}
            '\t' => out.push(' '),
            c if is_line_separator(c) => out.push(' '),
            c if c.is_control() => {
                if keep(c) {
                    out.push(c);
                }
            }
            c if moves_text(c) => {}
            c if level == Level::Display && is_invisible(c) => {}
            c => out.push(c),
        }
    }
    out
}

/// Text as relayed to IRC clients: IRC formatting kept, terminal controls
/// and what moves text gone, line separators made spaces.
pub fn for_relay(input: &str) -> String {
    strip(input, is_irc_format, Level::Relay)
}

/// A message tag's value as relayed to IRC clients: no control character
/// at all (IRC formatting included), nothing that moves text, line
/// separators made spaces. Never longer than `input` once escaped again
/// (see `message.rs`), so a tag section within the limit stays within it.
pub fn for_tag(input: &str) -> String {
    strip(input, |_| false, Level::Tag)
}

/// Text as shown on a terminal or written to the transcript: no control
/// characters at all, IRC colour codes removed with their arguments, no
/// invisible characters.
pub fn for_display(input: &str) -> String {
    let stripped = strip(input, |c| c == '\x03', Level::Display);
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

    /// The byte scan may only skip text the char-by-char path leaves as
    /// is, at the strictest level: checked for every Unicode scalar value,
    /// alone and between letters, and at the end of the text (where the
    /// scan looks past the last byte).
    #[test]
    fn clean_fast_path_agrees_with_the_slow_path() {
        for c in (0u32..=0x10ffff).filter_map(char::from_u32) {
            for s in [format!("a{c}b"), format!("a{c}")] {
                if is_clean(&s) {
                    assert_eq!(
                        strip_slow(&s, |_| false, Level::Display),
                        s,
                        "U+{:04X}",
                        c as u32
                    );
                }
            }
        }
        assert!(is_clean(
            "plain words, caf\u{e9}, \u{4f60}\u{597d} \u{1f600} \u{2014} Vi\u{1ec7}t \u{ff21}"
        ));
        // Emoji ZWJ sequences stay on the fast path.
        assert!(is_clean("\u{1f469}\u{200d}\u{1f4bb}"));
        assert!(!is_clean("rtl\u{202e}"));
        assert!(!is_clean("c1\u{85}"));
        assert!(!is_clean("line\u{2028}"));
        assert!(!is_clean("bom\u{feff}"));
    }

    /// Whatever comes in, nothing that moves text, breaks a line or drives
    /// a terminal comes out, at any level; `for_display` has no invisible
    /// characters either. Generated from an alphabet of the troublesome
    /// characters and ordinary ones (a small deterministic generator).
    #[test]
    fn nothing_unsafe_survives_any_level() {
        let alphabet: Vec<char> =
            "ab \t\x1b[]0;\x07\\\x02\x03\x01\u{85}\u{9b}\u{9c}\u{9d}\u{90}\u{ad}\
             \u{61c}\u{180e}\u{200b}\u{200c}\u{200d}\u{200e}\u{2028}\u{2029}\u{202e}\u{2060}\
             \u{2066}\u{206a}\u{feff}\u{fff9}\u{1d173}\u{e0001}\u{1f600}\u{e9}"
                .chars()
                .collect();
        let mut state = 0x2545f4914f6cdd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let s: String = (0..len)
                .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
                .collect();
            let relay = for_relay(&s);
            let tag = for_tag(&s);
            let shown = for_display(&s);
            for (name, out) in [("relay", &relay), ("tag", &tag), ("display", &shown)] {
                for c in out.chars() {
                    assert!(
                        !moves_text(c) && !is_line_separator(c) && c != '\x1b' && c != '\t',
                        "{name} kept U+{:04X} of {s:?}: {out:?}",
                        c as u32
                    );
                    assert!(
                        !c.is_control() || (name == "relay" && is_irc_format(c)),
                        "{name} kept control U+{:04X} of {s:?}: {out:?}",
                        c as u32
                    );
                }
                assert!(out.len() <= s.len(), "{name} grew {s:?} to {out:?}");
            }
            assert!(!shown.chars().any(is_invisible), "{s:?} -> {shown:?}");
            // Cleaning twice changes nothing more.
            assert_eq!(for_relay(&relay), relay);
            assert_eq!(for_display(&shown), shown);
        }
    }

    #[test]
    fn line_separators_become_spaces() {
        let forged =
            "hi\u{2028}2026-12-01T22:00:00.000Z msg #general <alice> send me your password";
        let want = "hi 2026-12-01T22:00:00.000Z msg #general <alice> send me your password";
        assert_eq!(for_display(forged), want);
        assert_eq!(for_relay(forged), want);
        assert_eq!(for_tag(forged), want);
        assert_eq!(for_display("a\u{2029}b"), "a b");
        // NEL is a C1 control: removed like the others.
        assert_eq!(for_display("a\u{85}b"), "ab");
    }

    #[test]
    fn format_characters_that_move_or_hide_text() {
        // Bidi embeddings, overrides, isolates, marks: removed everywhere.
        for c in [
            '\u{202a}', '\u{202d}', '\u{202e}', '\u{2066}', '\u{2069}', '\u{200e}', '\u{61c}',
        ] {
            assert_eq!(for_relay(&format!("a{c}b")), "ab", "U+{:04X}", c as u32);
            assert_eq!(for_display(&format!("a{c}b")), "ab", "U+{:04X}", c as u32);
        }
        // Interlinear annotation would hide "secret" in some renderers.
        let annotated = "x\u{fff9}shown\u{fffa}secret\u{fffb}y";
        assert_eq!(for_relay(annotated), "xshownsecrety");
        assert_eq!(for_display(annotated), "xshownsecrety");
        // Invisible characters: relayed (bots use U+200B against
        // highlights), but neither shown nor logged.
        for c in [
            '\u{200b}', '\u{feff}', '\u{ad}', '\u{180e}', '\u{2060}', '\u{2064}',
        ] {
            let s = format!("pass{c}word");
            assert_eq!(for_relay(&s), s, "U+{:04X}", c as u32);
            assert_eq!(for_display(&s), "password", "U+{:04X}", c as u32);
        }
        // Joiners stay: emoji sequences and scripts need them.
        let family = "\u{1f468}\u{200d}\u{1f469}\u{200d}\u{1f467}";
        assert_eq!(for_display(family), family);
        assert_eq!(for_relay(family), family);
        let persian = "\u{645}\u{6cc}\u{200c}\u{62e}\u{648}\u{627}\u{647}\u{645}";
        assert_eq!(for_display(persian), persian);
        // Flags of subdivisions are made of tag characters: kept.
        let wales = "\u{1f3f4}\u{e0067}\u{e0062}\u{e0077}\u{e006c}\u{e0073}\u{e007f}";
        assert_eq!(for_display(wales), wales);
        assert_eq!(for_display("text\u{fe0f}"), "text\u{fe0f}");
    }

    #[test]
    fn tag_values_keep_no_control_at_all() {
        assert_eq!(for_tag("\x1b[31mred\x1b[0m"), "red");
        assert_eq!(for_tag("\x02bold\x03"), "bold");
        assert_eq!(for_tag("a\tb\r\nc"), "abc");
        assert_eq!(for_tag("\u{1f44d}\u{200b}"), "\u{1f44d}\u{200b}");
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
