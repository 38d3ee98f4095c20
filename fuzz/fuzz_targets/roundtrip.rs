//! The property parse(encode(m)) == m, coverage-guided: `m` is built from
//! the fuzz input (via `arbitrary`) and then forced into the domain that
//! `Message::to_line` documents it handles exactly:
//! - tag keys: optional `+`, then one or more of `[A-Za-z0-9-/.]`, unique;
//!   tag values: no NUL (IRCv3 cannot escape it); `Some("")` is the same
//!   as no value on the wire, so it is normalised to `None`;
//! - source: non-empty, no space, NUL, CR or LF;
//! - command: letters (upper case) or three digits;
//! - at most 15 params, none with NUL, CR or LF; middle params non-empty,
//!   without space and not starting with `:`; the last one anything.
//!
//! Messages outside that domain (a middle param with a space, say) are
//! altered on purpose by `to_line` and are not expected to round-trip.
#![no_main]

use arbitrary::Arbitrary;
use confab::proto::Message;
use confab::proto::message::MAX_PARAMS;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
struct Raw {
    tags: Vec<(bool, String, Option<String>)>,
    source: Option<String>,
    numeric: Option<u16>,
    command: String,
    params: Vec<String>,
}

fn clean(s: &str, also: &[char]) -> String {
    s.chars()
        .filter(|c| !matches!(c, '\0' | '\r' | '\n') && !also.contains(c))
        .collect()
}

fn build(raw: Raw) -> Message {
    let mut m = Message::default();
    for (plus, key, value) in raw.tags {
        let name: String = key
            .chars()
            .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '/' | '.'))
            .collect();
        if name.is_empty() {
            continue;
        }
        let key = if plus { format!("+{name}") } else { name };
        if m.tags.iter().any(|(k, _)| *k == key) {
            continue;
        }
        let value = value.map(|v| v.replace('\0', "")).filter(|v| !v.is_empty());
        m.tags.push((key, value));
    }
    m.source = raw
        .source
        .map(|s| clean(&s, &[' ']))
        .filter(|s| !s.is_empty());
    m.command = match raw.numeric {
        Some(n) => format!("{:03}", n % 1000),
        None => {
            let c: String = raw
                .command
                .chars()
                .filter(char::is_ascii_alphabetic)
                .map(|c| c.to_ascii_uppercase())
                .collect();
            if c.is_empty() { "PRIVMSG".into() } else { c }
        }
    };
    let n = raw.params.len().min(MAX_PARAMS);
    for (i, p) in raw.params.into_iter().take(n).enumerate() {
        if i + 1 == n {
            m.params.push(clean(&p, &[]));
        } else {
            let p = clean(&p, &[' ']);
            let p = p.trim_start_matches(':');
            if !p.is_empty() {
                m.params.push(p.to_string());
            }
        }
    }
    m
}

fuzz_target!(|raw: Raw| {
    let m = build(raw);
    let wire = m.to_line();
    let body = wire.strip_suffix("\r\n").expect("CRLF at the end");
    assert!(
        !body.contains(['\r', '\n', '\0']),
        "stray CR/LF/NUL: {wire:?}"
    );
    let back = Message::parse(body).unwrap_or_else(|e| panic!("{wire:?} does not parse: {e}"));
    assert_eq!(back, m, "wire {wire:?}");
});
