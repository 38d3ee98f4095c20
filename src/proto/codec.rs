//! Line framing for IRC over a byte stream.
//!
//! The decoder never returns `Err` for bad input: `FramedRead` stops for good
//! after the first decoder error, and a single oversized or non-UTF-8 line
//! must cost the peer an error numeric, not the connection. Bad lines come
//! out as [`Frame`] variants instead.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::message::{MAX_BODY_BYTES, MAX_TAG_BYTES};

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A line without its CR/LF, valid UTF-8.
    Line(String),
    /// The line exceeded the protocol limit and was discarded.
    TooLong,
    /// The line was not UTF-8 and was discarded.
    InvalidUtf8,
}

#[derive(Debug)]
pub struct LineCodec {
    /// True while skipping the rest of an oversized line.
    discarding: bool,
    /// Bytes of the buffer already known to contain no newline.
    scanned: usize,
    /// Longest body accepted, CR LF included.
    body_limit: usize,
}

impl Default for LineCodec {
    fn default() -> Self {
        Self::new()
    }
}

/// Body limit for lines from a server. A client may send 512 bytes; the
/// server then adds its `:nick!user@host` source when relaying, so what it
/// sends can be longer, and dropping it would lose a message that was
/// recorded and delivered.
pub const FROM_SERVER_BODY_BYTES: usize = 4096;

impl LineCodec {
    /// The strict codec for what clients send (512-byte bodies).
    pub fn new() -> Self {
        LineCodec {
            discarding: false,
            scanned: 0,
            body_limit: MAX_BODY_BYTES,
        }
    }

    /// A codec for what a server sends ([`FROM_SERVER_BODY_BYTES`]).
    pub fn from_server() -> Self {
        LineCodec {
            body_limit: FROM_SERVER_BODY_BYTES,
            ..Self::new()
        }
    }
}

/// True when the body (the part after any tags) is longer than `limit`.
fn body_too_long(line: &[u8], limit: usize) -> bool {
    let body = if line.first() == Some(&b'@') {
        match line.iter().position(|&b| b == b' ') {
            Some(i) if i + 1 > MAX_TAG_BYTES => return true,
            Some(i) => &line[i + 1..],
            None => line,
        }
    } else {
        line
    };
    body.len() + 2 > limit
}

impl Decoder for LineCodec {
    type Item = Frame;
    type Error = std::io::Error;

    fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        loop {
            let newline = buf[self.scanned..]
                .iter()
                .position(|&b| b == b'\n')
                .map(|i| i + self.scanned);
            let Some(end) = newline else {
                if buf.len() > MAX_TAG_BYTES + self.body_limit {
                    // Drop what we have; keep discarding until the next newline.
                    buf.clear();
                    self.scanned = 0;
                    if !self.discarding {
                        self.discarding = true;
                        return Ok(Some(Frame::TooLong));
                    }
                } else {
                    self.scanned = buf.len();
                }
                return Ok(None);
            };
            let raw = buf.split_to(end + 1);
            self.scanned = 0;
            if std::mem::take(&mut self.discarding) {
                continue; // tail of a line we already reported
            }
            let mut line = &raw[..raw.len() - 1];
            if line.last() == Some(&b'\r') {
                line = &line[..line.len() - 1];
            }
            if line.is_empty() {
                continue; // empty lines are silently ignored (Modern IRC)
            }
            if body_too_long(line, self.body_limit) {
                return Ok(Some(Frame::TooLong));
            }
            return Ok(Some(match std::str::from_utf8(line) {
                Ok(s) => Frame::Line(s.to_string()),
                Err(_) => Frame::InvalidUtf8,
            }));
        }
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, Self::Error> {
        match self.decode(buf)? {
            Some(frame) => Ok(Some(frame)),
            None => {
                // An unterminated last line is dropped: a peer that died
                // mid-line never finished saying it.
                buf.advance(buf.len());
                Ok(None)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(input: &[u8]) -> Vec<Frame> {
        let mut codec = LineCodec::new();
        let mut buf = BytesMut::from(input);
        let mut out = Vec::new();
        while let Some(f) = codec.decode(&mut buf).unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn splits_crlf_and_lf() {
        assert_eq!(
            frames(b"NICK a\r\nUSER a 0 * :A\n\r\n\nPING x\r\n"),
            vec![
                Frame::Line("NICK a".into()),
                Frame::Line("USER a 0 * :A".into()),
                Frame::Line("PING x".into())
            ]
        );
    }

    #[test]
    fn body_limit_is_512_with_crlf_and_tags_do_not_count() {
        let ok = format!("PRIVMSG #g :{}", "a".repeat(510 - 12));
        assert_eq!(ok.len(), 510);
        assert_eq!(
            frames(format!("{ok}\r\n").as_bytes()),
            vec![Frame::Line(ok.clone())]
        );
        let long = format!("{ok}b");
        assert_eq!(
            frames(format!("{long}\r\nPING x\r\n").as_bytes()),
            vec![Frame::TooLong, Frame::Line("PING x".into())]
        );
        let tagged = format!("@+a={} {ok}", "t".repeat(4000));
        assert_eq!(
            frames(format!("{tagged}\r\n").as_bytes()),
            vec![Frame::Line(tagged)]
        );
    }

    #[test]
    fn huge_unterminated_line_is_reported_once_and_skipped() {
        let mut codec = LineCodec::new();
        let mut buf = BytesMut::from(&vec![b'x'; MAX_TAG_BYTES + MAX_BODY_BYTES + 10][..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::TooLong));
        buf.extend_from_slice(&vec![b'y'; MAX_TAG_BYTES + MAX_BODY_BYTES + 10]);
        assert_eq!(codec.decode(&mut buf).unwrap(), None);
        buf.extend_from_slice(b"yyy\r\nPING z\r\n");
        assert_eq!(
            codec.decode(&mut buf).unwrap(),
            Some(Frame::Line("PING z".into()))
        );
    }

    #[test]
    fn lines_from_a_server_may_be_longer() {
        let long = format!(
            ":nick!user@2001:db8::1 PRIVMSG #general :{}\r\n",
            "a".repeat(500)
        );
        let mut buf = BytesMut::from(long.as_bytes());
        assert_eq!(
            LineCodec::new().decode(&mut buf).unwrap(),
            Some(Frame::TooLong)
        );
        let mut buf = BytesMut::from(long.as_bytes());
        assert!(matches!(
            LineCodec::from_server().decode(&mut buf).unwrap(),
            Some(Frame::Line(_))
        ));
    }

    #[test]
    fn invalid_utf8_is_reported_and_stream_continues() {
        assert_eq!(
            frames(b"PRIVMSG #g :\xff\xfe\r\nPING x\r\n"),
            vec![Frame::InvalidUtf8, Frame::Line("PING x".into())]
        );
    }
}
