//! Arbitrary bytes through the line codec and the message parser.
//!
//! Checks, for any input:
//! - `LineCodec` (both the client-side `new()` and `from_server()`) never
//!   panics nor errors, and gives the same frames whether the bytes arrive
//!   at once or in small pieces;
//! - every `Frame::Line` is non-empty, has no LF, and is within the
//!   codec's `LineLimits` (`FROM_CLIENT` for `new()`: 4094 bytes of tag
//!   data, a 512-byte body with CRLF; `FROM_SERVER` for `from_server()`:
//!   8191 bytes of tags, FROM_SERVER_BODY_BYTES);
//! - for every line (from the codec, and every LF-separated piece of the
//!   input regardless of length) that `Message::parse` accepts, the message
//!   is well formed, `to_line()` is one CRLF-terminated line, and parsing
//!   that line gives back an equal message (and the same line again);
//! - the tags re-encoded, and again after `sanitize::for_tag` (what the
//!   tracker relays), never take more bytes than the line's tag data: a
//!   client's tags accepted within the limit are relayed within it.
#![no_main]

use bytes::BytesMut;
use confab::proto::message::MAX_PARAMS;
use confab::proto::sanitize;
use confab::proto::{Frame, LineCodec, LineLimits, Message};
use libfuzzer_sys::fuzz_target;
use tokio_util::codec::Decoder;

fuzz_target!(|data: &[u8]| {
    // Every LF-separated piece, any length, straight into the parser.
    for piece in data.split(|&b| b == b'\n') {
        let piece = piece.strip_suffix(b"\r").unwrap_or(piece);
        if let Ok(s) = std::str::from_utf8(piece) {
            check_parse(s);
        }
    }

    for (codec, limits) in [
        (LineCodec::new as fn() -> LineCodec, LineLimits::FROM_CLIENT),
        (LineCodec::from_server, LineLimits::FROM_SERVER),
    ] {
        assert_eq!(codec().limits(), limits);
        let whole = decode_all(codec(), limits, data, &[usize::MAX]);
        let chunked = decode_all(codec(), limits, data, &[1, 7, 2, 300, 3, 4096, 5]);
        assert_eq!(whole, chunked, "framing depends on how the bytes arrive");
        for frame in &whole {
            if let Frame::Line(line) = frame {
                check_frame_line(line, limits);
                check_parse(line);
            }
        }
    }
});

/// Runs the decoder as `FramedRead` does: feed a piece, drain frames, repeat;
/// `decode_eof` at the end. Piece sizes cycle through `sizes`.
fn decode_all(
    mut codec: LineCodec,
    limits: LineLimits,
    data: &[u8],
    sizes: &[usize],
) -> Vec<Frame> {
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut rest = data;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].min(rest.len());
        i += 1;
        buf.extend_from_slice(&rest[..n]);
        rest = &rest[n..];
        while let Some(f) = codec.decode(&mut buf).expect("decode never errors") {
            out.push(f);
        }
        // What stays buffered is at most one unfinished line within limits.
        assert!(
            buf.len() <= limits.tags + limits.body,
            "decoder kept {} bytes buffered",
            buf.len()
        );
    }
    while let Some(f) = codec.decode_eof(&mut buf).expect("decode_eof never errors") {
        out.push(f);
    }
    assert!(buf.is_empty(), "decode_eof left {} bytes", buf.len());
    out
}

fn check_frame_line(line: &str, limits: LineLimits) {
    assert!(!line.is_empty(), "empty Line frame");
    assert!(!line.contains('\n'), "Line frame with LF: {line:?}");
    let body = match line.strip_prefix('@') {
        Some(_) => match line.find(' ') {
            Some(i) => {
                assert!(i < limits.tags, "tag section of {} bytes", i + 1);
                &line[i + 1..]
            }
            None => line,
        },
        None => line,
    };
    assert!(
        body.len() + 2 <= limits.body,
        "body of {} bytes + CRLF",
        body.len()
    );
}

fn check_parse(line: &str) {
    let Ok(m) = Message::parse(line) else {
        return;
    };
    // Shape of a parsed message.
    let numeric = m.command.len() == 3 && m.command.bytes().all(|b| b.is_ascii_digit());
    assert!(
        numeric || (!m.command.is_empty() && m.command.bytes().all(|b| b.is_ascii_uppercase())),
        "command {:?}",
        m.command
    );
    assert!(m.params.len() <= MAX_PARAMS, "{} params", m.params.len());
    if let Some((_, middle)) = m.params.split_last() {
        for p in middle {
            assert!(
                !p.is_empty() && !p.contains(' ') && !p.starts_with(':'),
                "middle param {p:?}"
            );
        }
    }
    if let Some(src) = &m.source {
        assert!(!src.is_empty() && !src.contains(' '), "source {src:?}");
    }
    for (i, (k, v)) in m.tags.iter().enumerate() {
        assert!(v.as_deref() != Some(""), "empty tag value kept for {k:?}");
        assert!(
            m.tags[..i].iter().all(|(k2, _)| k2 != k),
            "duplicate tag key {k:?}"
        );
    }

    // Re-encoded tags, cleaned or not, are no longer than what came in.
    if let Some(after) = line.trim_start_matches(' ').strip_prefix('@') {
        let sent = after.find(' ').unwrap_or(after.len());
        assert!(m.tag_data_len() <= sent, "tags grew: {line:?}");
        let mut clean = m.clone();
        for (_, v) in &mut clean.tags {
            *v = v.as_deref().map(sanitize::for_tag);
        }
        assert!(clean.tag_data_len() <= sent, "cleaned tags grew: {line:?}");
    }

    // Encode, then parse again.
    let wire = m.to_line();
    let body = wire
        .strip_suffix("\r\n")
        .unwrap_or_else(|| panic!("to_line without CRLF: {wire:?}"));
    assert!(
        !body.contains(['\r', '\n', '\0']),
        "to_line emitted CR/LF/NUL inside: {wire:?}"
    );
    let back = Message::parse(body)
        .unwrap_or_else(|e| panic!("to_line output {wire:?} does not parse: {e}"));
    assert_eq!(
        back, m,
        "parse(to_line(m)) != m for input {line:?}, wire {wire:?}"
    );
    assert_eq!(back.to_line(), wire, "to_line not stable");
}
