//! Taking over the terminal and giving it back. The guard restores it when
//! dropped, so every way out of the UI (an error, `?`, a return) leaves the
//! terminal as it was; the panic hook restores it before the panic message
//! is printed, so the message lands on the normal screen, readable.

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
