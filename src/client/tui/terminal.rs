//! Taking over the terminal and giving it back. The guard restores it when
//! dropped, so every way out of the UI (an error, `?`, a return) leaves the
//! terminal as it was; the panic hook restores it before the panic message
//! is printed, so the message lands on the normal screen, readable.
//! [`TerminalGone`] tells the UI loops when the terminal has gone away.

use std::io::{self, Write};
use std::sync::Once;

use crossterm::cursor::Show;
use crossterm::event::{
    DisableBracketedPaste, DisableFocusChange, EnableBracketedPaste, EnableFocusChange,
};
use crossterm::terminal::{
    EnterAlternateScreen, LeaveAlternateScreen, disable_raw_mode, enable_raw_mode,
};
use crossterm::{Command, execute};

/// Raw mode, the alternate screen, mouse reports (for the wheel),
/// bracketed paste (so a pasted block arrives as one text, not as keys
/// that would send each line) and focus reports (a window is read only
/// while the terminal has the focus, where the terminal says so) while it
/// lives.
pub struct TerminalGuard {
    _private: (),
}

impl TerminalGuard {
    pub fn enter() -> io::Result<TerminalGuard> {
        install_panic_hook();
        // The guard exists before the first change, so a failure halfway
        // undoes what was done.
        let guard = TerminalGuard { _private: () };
        enable_raw_mode()?;
        execute!(
            io::stdout(),
            EnterAlternateScreen,
            MouseButtons(true),
            EnableBracketedPaste,
            EnableFocusChange
        )?;
        Ok(guard)
    }
}

impl Drop for TerminalGuard {
    fn drop(&mut self) {
        restore();
    }
}

/// Mouse reports for buttons and the wheel only (xterm's 1000 mode, in
/// SGR encoding). crossterm's `EnableMouseCapture` also asks for every
/// motion, which would wake the client each time the pointer crosses the
/// window.
struct MouseButtons(bool);

impl Command for MouseButtons {
    fn write_ansi(&self, f: &mut impl std::fmt::Write) -> std::fmt::Result {
        f.write_str(if self.0 {
            "\x1b[?1000h\x1b[?1006h"
        } else {
            "\x1b[?1006l\x1b[?1000l"
        })
    }
}

/// Puts the terminal back: harmless when it was never taken, so it can
/// run twice (panic hook, then the guard's drop while unwinding).
pub fn restore() {
    let mut out = io::stdout();
    let _ = execute!(
        out,
        DisableFocusChange,
        DisableBracketedPaste,
        MouseButtons(false),
        LeaveAlternateScreen,
        Show
    );
    let _ = out.flush();
    let _ = disable_raw_mode();
}

fn install_panic_hook() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            restore();
            previous(info);
        }));
    });
}

/// Resolves once the terminal the keys come from is gone (its pty master
/// closed, or the terminal hung up), whether or not a SIGHUP came.
///
/// crossterm's `EventStream` cannot say so: its reader loops on `read()`
/// and treats 0 (EOF, a hung-up terminal) and errors other than
/// `WouldBlock` (EIO, a pty whose master closed) as "try again", so the
/// stream neither ends nor yields an error; it spins on the dead terminal
/// for ever (thousands of reads a second). Counting its empty reads is
/// impossible from outside, and reading the terminal ourselves would steal
/// keys, so this watches a second descriptor of the same terminal for
/// POLLHUP, which the kernel reports in both cases (`hung_up_tty_poll`,
/// and `n_tty_poll` once the other side is closed), without reading: it
/// only wakes, cheaply, when a key arrives. Where the terminal cannot be
/// watched (no descriptor, no poll support) it never resolves, and the
/// signals are all there is, as before.
pub struct TerminalGone {
    tty: Option<tokio::io::unix::AsyncFd<std::os::fd::OwnedFd>>,
}

impl TerminalGone {
    /// Watches the terminal crossterm reads keys from: standard input when
    /// it is one, `/dev/tty` otherwise.
    pub fn watch() -> TerminalGone {
        use std::io::IsTerminal;
        use std::os::fd::AsFd;
        let fd = if io::stdin().is_terminal() {
            io::stdin().as_fd().try_clone_to_owned()
        } else {
            std::fs::File::open("/dev/tty").map(std::os::fd::OwnedFd::from)
        };
        let tty = fd.ok().and_then(|fd| {
            // SAFETY: an `OwnedFd` is open, and names the same file, for as
            // long as it is owned, and the `AsyncFd` owns it.
            unsafe {
                tokio::io::unix::AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE)
            }
            .ok()
        });
        TerminalGone { tty }
    }

    /// Waits until the terminal is gone.
    pub async fn gone(&self) {
        let Some(tty) = &self.tty else {
            return std::future::pending().await;
        };
        loop {
            let Ok(mut ready) = tty.ready(tokio::io::Interest::READABLE).await else {
                // The watch itself failed: the terminal is past use.
                return;
            };
            if ready.ready().is_read_closed() || ready.ready().is_error() {
                return;
            }
            // A key for crossterm to read: not ours, wait for the next.
            ready.clear_ready();
        }
    }
}
