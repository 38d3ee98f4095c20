//! Line framing for IRC over a byte stream.
//!
//! The decoder never returns `Err` for bad input: `FramedRead` stops for good
//! after the first decoder error, and a single oversized or non-UTF-8 line
//! must cost the peer an error numeric, not the connection. Bad lines come
//! out as [`Frame`] variants instead.

use bytes::{Buf, BytesMut};
use tokio_util::codec::Decoder;

use super::message::{MAX_BODY_BYTES, MAX_CLIENT_TAG_DATA, MAX_TAG_BYTES};

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
    limits: LineLimits,
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

/// The longest parts of a line one side accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineLimits {
    /// The tag section, its `@` and trailing space included.
    pub tags: usize,
    /// The rest of the line (source, command, parameters), CR LF included.
    pub body: usize,
}

impl LineLimits {
    /// What a client may send: 4094 bytes of tag data (IRCv3
    /// message-tags; the other half of the 8191 bytes is for the tags a
    /// server adds when it relays) and a 512-byte body (Modern IRC).
    pub const FROM_CLIENT: LineLimits = LineLimits {
        tags: MAX_CLIENT_TAG_DATA + 2,
        body: MAX_BODY_BYTES,
    };
    /// What a server may send: 8191 bytes of tags (its own and a
    /// client's), and [`FROM_SERVER_BODY_BYTES`].
    pub const FROM_SERVER: LineLimits = LineLimits {
        tags: MAX_TAG_BYTES,
        body: FROM_SERVER_BODY_BYTES,
    };

    /// Whether `line` (without its CR LF) is within both limits. Every
    /// transport checks lines with this before parsing them.
    pub fn fit(&self, line: &[u8]) -> bool {
        let body = if line.first() == Some(&b'@') {
            match line.iter().position(|&b| b == b' ') {
                Some(i) if i + 1 > self.tags => return false,
                Some(i) => &line[i + 1..],
                None => line,
            }
        } else {
            line
        };
        body.len() + 2 <= self.body
    }
}

impl LineCodec {
    /// The strict codec for what clients send ([`LineLimits::FROM_CLIENT`]).
    pub fn new() -> Self {
        LineCodec {
            discarding: false,
            scanned: 0,
            limits: LineLimits::FROM_CLIENT,
        }
    }

    /// A codec for what a server sends ([`LineLimits::FROM_SERVER`]).
    pub fn from_server() -> Self {
        LineCodec {
            limits: LineLimits::FROM_SERVER,
            ..Self::new()
        }
    }

    pub fn limits(&self) -> LineLimits {
        self.limits
    }
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
                if buf.len() > self.limits.tags + self.limits.body {
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
            if !self.limits.fit(line) {
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

    /// IRCv3 message-tags: a client's tag data (between `@` and the space)
    /// is at most 4094 bytes, whatever the tags; a server's line may carry
    /// 8191 bytes of tags, its own added to the client's.
    #[test]
    fn client_tag_data_is_at_most_4094_bytes() {
        let at_limit = format!("@+a={} PRIVMSG #g :hi", "t".repeat(4094 - 3));
        assert_eq!(
            frames(format!("{at_limit}\r\n").as_bytes()),
            vec![Frame::Line(at_limit.clone())]
        );
        let over = format!("@+a={} PRIVMSG #g :hi", "t".repeat(4094 - 2));
        assert_eq!(
            frames(format!("{over}\r\nPING x\r\n").as_bytes()),
            vec![Frame::TooLong, Frame::Line("PING x".into())]
        );
        // The issue's line: 8189 bytes of tags were accepted, and relayed
        // past the 8191-byte limit once `time` was added.
        let issue = format!("@+a={} PRIVMSG #g :hi", "t".repeat(8189 - 5));
        assert_eq!(
            frames(format!("{issue}\r\n").as_bytes()),
            vec![Frame::TooLong]
        );
        let relayed = format!(
            "@time=2026-12-01T22:00:00.000Z;{} :n!u@h PRIVMSG #g :hi",
            &at_limit[1..at_limit.find(' ').unwrap()]
        );
        let mut buf = BytesMut::from(format!("{relayed}\r\n").as_bytes());
        assert_eq!(
            LineCodec::from_server().decode(&mut buf).unwrap(),
            Some(Frame::Line(relayed))
        );
        let limits = LineLimits::FROM_SERVER;
        let section = |n: usize| format!("@+a={} X", "t".repeat(n - 5));
        assert!(limits.fit(section(MAX_TAG_BYTES).as_bytes()));
        assert!(!limits.fit(section(MAX_TAG_BYTES + 1).as_bytes()));
    }

    #[test]
    fn huge_unterminated_line_is_reported_once_and_skipped() {
        let mut codec = LineCodec::new();
        let most = codec.limits().tags + codec.limits().body;
        let mut buf = BytesMut::from(&vec![b'x'; most + 10][..]);
        assert_eq!(codec.decode(&mut buf).unwrap(), Some(Frame::TooLong));
        buf.extend_from_slice(&vec![b'y'; most + 10]);
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
