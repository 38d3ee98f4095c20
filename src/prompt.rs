//! Questions asked on the terminal before the chat starts: the tracker's
//! server password, the client's trust question, password and username.
//!
//! Why not `rpassword`: it turns echo off and leaves the signal handling to
//! the terminal, so Ctrl+C at a password prompt killed the process with echo
//! still off (shells like dash do not repair it). Here the terminal is put
//! in non-canonical mode with signals off for the length of one question, so
//! Ctrl+C arrives as a byte and becomes [`PromptError::Interrupted`]; the
//! saved settings are restored by a guard on every way out, a panic
//! included. Line editing (backspace, Ctrl+U, Ctrl+W) is done by
//! [`LineEditor`], which is pure and tested without a terminal.

use std::io::{self, Read, Write};

use rustix::termios::{self, LocalModes, OptionalActions, SpecialCodeIndex, Termios};
use thiserror::Error;

/// Longest answer accepted; more is ignored (a paste gone wrong).
const MAX_ANSWER: usize = 4096;

#[derive(Debug, Error)]
pub enum PromptError {
    #[error("no terminal to ask on")]
    NoTerminal,
    #[error("cancelled")]
    Interrupted,
    #[error("input ended")]
    Eof,
    #[error("terminal error: {0}")]
    Io(#[from] io::Error),
}

/// What one key press (byte) did to the answer being typed.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    /// Keep reading.
    More,
    /// Enter: the answer is complete.
    Done(String),
    /// Ctrl+C.
    Interrupted,
    /// Ctrl+D on an empty line.
    Eof,
}

/// A minimal line editor over raw bytes. With `hidden` nothing of the
/// answer is echoed, not even its length.
#[derive(Debug, Default)]
pub struct LineEditor {
    hidden: bool,
    buf: Vec<u8>,
    /// Inside an escape sequence (arrow keys and the like): skipped.
    escape: Escape,
}

#[derive(Debug, Default, PartialEq, Eq)]
enum Escape {
    #[default]
    None,
    /// After ESC.
    Started,
    /// After `ESC [` or `ESC O`: until a final byte.
    Sequence,
}

impl LineEditor {
    pub fn new(hidden: bool) -> Self {
        LineEditor {
            hidden,
            buf: Vec::new(),
            escape: Escape::None,
        }
    }

    /// Feeds one byte; what should appear on the terminal is appended to
    /// `echo`.
    pub fn feed(&mut self, byte: u8, echo: &mut Vec<u8>) -> Step {
        match self.escape {
            Escape::Started => {
                self.escape = if byte == b'[' || byte == b'O' {
                    Escape::Sequence
                } else {
                    Escape::None
                };
                return Step::More;
            }
            Escape::Sequence => {
                if (0x40..=0x7e).contains(&byte) {
                    self.escape = Escape::None;
                }
                return Step::More;
            }
            Escape::None => {}
        }
        match byte {
            b'\r' | b'\n' => {
                echo.extend_from_slice(b"\r\n");
                let answer = String::from_utf8_lossy(&self.buf).into_owned();
                zero(&mut self.buf);
                Step::Done(answer)
            }
            0x03 => {
                zero(&mut self.buf);
                echo.extend_from_slice(b"^C\r\n");
                Step::Interrupted
            }
            0x04 if self.buf.is_empty() => {
                echo.extend_from_slice(b"\r\n");
                Step::Eof
            }
            0x7f | 0x08 => {
                if self.pop_char() {
                    self.erase(1, echo);
                }
                Step::More
            }
            0x15 => {
                let mut n = 0;
                while self.pop_char() {
                    n += 1;
                }
                self.erase(n, echo);
                Step::More
            }
            0x17 => {
                let mut n = 0;
                while self.buf.last() == Some(&b' ') && self.pop_char() {
                    n += 1;
                }
                while self.buf.last().is_some_and(|b| *b != b' ') && self.pop_char() {
                    n += 1;
                }
                self.erase(n, echo);
                Step::More
            }
            0x1b => {
                self.escape = Escape::Started;
                Step::More
            }
            b if b < 0x20 => Step::More,
            b => {
                if self.buf.len() < MAX_ANSWER {
                    self.buf.push(b);
                    if !self.hidden {
                        echo.push(b);
                    }
                }
                Step::More
            }
        }
    }

    /// Removes the last (UTF-8) character; false when empty.
    fn pop_char(&mut self) -> bool {
        let Some(mut b) = self.buf.pop() else {
            return false;
        };
        // Continuation bytes are 0b10xx_xxxx: keep popping to the lead byte.
        while b & 0xc0 == 0x80 {
            match self.buf.pop() {
                Some(prev) => b = prev,
                None => break,
            }
        }
        true
    }

    fn erase(&self, chars: usize, echo: &mut Vec<u8>) {
        if !self.hidden {
            for _ in 0..chars {
                echo.extend_from_slice(b"\x08 \x08");
            }
        }
    }
}

impl Drop for LineEditor {
    fn drop(&mut self) {
        zero(&mut self.buf);
    }
}

/// Overwrites a buffer that may hold a password before it is freed.
fn zero(buf: &mut Vec<u8>) {
    zeroize::Zeroize::zeroize(buf);
}

/// Restores the terminal settings it saved when dropped.
struct TermGuard {
    saved: Termios,
}

impl Drop for TermGuard {
    fn drop(&mut self) {
        let _ = termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, &self.saved);
    }
}

/// Asks `question` on the terminal (stdin for keys, stderr for text) and
/// returns the answer; `hidden` for passwords.
pub fn ask(question: &str, hidden: bool) -> Result<String, PromptError> {
    let stdin = rustix::stdio::stdin();
    if !termios::isatty(stdin) {
        return Err(PromptError::NoTerminal);
    }
    let saved = termios::tcgetattr(stdin).map_err(io::Error::from)?;
    let mut raw = saved.clone();
    // Keys one at a time, no echo, and Ctrl+C as a byte rather than SIGINT;
    // output processing (newline translation) is left as it was.
    raw.local_modes
        .remove(LocalModes::ICANON | LocalModes::ECHO | LocalModes::ISIG | LocalModes::IEXTEN);
    raw.special_codes[SpecialCodeIndex::VMIN] = 1;
    raw.special_codes[SpecialCodeIndex::VTIME] = 0;
    let _guard = TermGuard { saved };
    termios::tcsetattr(stdin, OptionalActions::Now, &raw).map_err(io::Error::from)?;

    let mut err = io::stderr().lock();
    err.write_all(question.as_bytes())?;
    err.flush()?;
    let mut editor = LineEditor::new(hidden);
    let mut input = io::stdin().lock();
    let mut byte = [0u8; 1];
    let mut echo = Vec::new();
    loop {
        if input.read(&mut byte)? == 0 {
            err.write_all(b"\r\n")?;
            return Err(PromptError::Eof);
        }
        echo.clear();
        let step = editor.feed(byte[0], &mut echo);
        err.write_all(&echo)?;
        err.flush()?;
        match step {
            Step::More => {}
            Step::Done(answer) => return Ok(answer),
            Step::Interrupted => return Err(PromptError::Interrupted),
            Step::Eof => return Err(PromptError::Eof),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn type_keys(hidden: bool, keys: &[u8]) -> (Vec<Step>, String) {
        let mut ed = LineEditor::new(hidden);
        let mut echo = Vec::new();
        let steps = keys
            .iter()
            .map(|b| ed.feed(*b, &mut echo))
            .filter(|s| *s != Step::More)
            .collect();
        (steps, String::from_utf8_lossy(&echo).into_owned())
    }

    #[test]
    fn hidden_answer_echoes_nothing_but_the_newline() {
        let (steps, echo) = type_keys(true, b"s3cret pw\r");
        assert_eq!(steps, [Step::Done("s3cret pw".into())]);
        assert_eq!(echo, "\r\n");
    }

    #[test]
    fn editing_keys() {
        // Backspace over a two-byte character, Ctrl+W, Ctrl+U, arrows ignored.
        let (steps, _) = type_keys(false, "caf\u{e9}\x7fe bar\x17baz\x1b[D\n".as_bytes());
        assert_eq!(steps, [Step::Done("cafe baz".into())]);
        let (steps, _) = type_keys(false, b"gone\x15kept\r");
        assert_eq!(steps, [Step::Done("kept".into())]);
        let (_, echo) = type_keys(false, b"ab\x7f");
        assert_eq!(echo, "ab\x08 \x08");
        // Other control characters never reach the answer.
        let (steps, _) = type_keys(false, b"a\x01\x07b\r");
        assert_eq!(steps, [Step::Done("ab".into())]);
    }

    #[test]
    fn ctrl_c_and_ctrl_d() {
        assert_eq!(type_keys(true, b"half\x03").0, [Step::Interrupted]);
        assert_eq!(type_keys(false, b"\x04").0, [Step::Eof]);
        // Ctrl+D with text typed is ignored, as in a shell.
        assert_eq!(type_keys(false, b"x\x04\r").0, [Step::Done("x".into())]);
    }

    #[test]
    fn overlong_answer_is_capped() {
        let mut keys = vec![b'x'; MAX_ANSWER + 100];
        keys.push(b'\r');
        let (steps, _) = type_keys(true, &keys);
        assert_eq!(steps, [Step::Done("x".repeat(MAX_ANSWER))]);
    }
}
