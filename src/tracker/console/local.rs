//! The console on the tracker's own terminal: standard input becomes a
//! prompt once the tracker listens (after the password question), only
//! when standard input and output are both a terminal and the tracker is
//! in its foreground.
//!
//! The editor runs on its own thread and may be mid-line when the tracker
//! stops, so the terminal's settings are saved before it starts and
//! [`restore_terminal`] puts them back on every way out (a clean stop, a
//! second Ctrl+C, a failed start).

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

use super::editor::{self, Backend, Ended};
use super::{Executor, Origin, Outcome, diagnostics};

/// The prompt.
pub const PROMPT: &str = "tracker> ";

/// The terminal's settings before the console changed them.
static SAVED: Mutex<Option<rustix::termios::Termios>> = Mutex::new(None);

struct InProcess {
    executor: Executor,
    runtime: tokio::runtime::Handle,
}

impl Backend for InProcess {
    fn run(&self, line: &str) -> Outcome {
        self.runtime
            .block_on(self.executor.run(line, Origin::Terminal))
    }
    fn names(&self) -> (Vec<String>, Vec<String>) {
        self.runtime.block_on(self.executor.names())
    }
}

/// Opens the console on standard input if it and standard output are a
/// terminal; returns whether it did. Diagnostics go above its prompt from
/// now on, until it closes.
pub fn start(executor: Executor, runtime: tokio::runtime::Handle) -> bool {
    if !std::io::stdin().is_terminal() || !std::io::stdout().is_terminal() {
        return false;
    }
    // Started in the background (`tracker &`): taking the terminal would
    // stop the tracker (SIGTTOU), so no console; `tracker console` works.
    let foreground = rustix::termios::tcgetpgrp(std::io::stdin())
        .is_ok_and(|group| group == rustix::process::getpgrp());
    if !foreground {
        return false;
    }
    save_terminal();
    let (queue, diagnostics) = std::sync::mpsc::sync_channel(diagnostics::LOCAL_QUEUE);
    diagnostics::set_local(Some(queue));
    let backend = Arc::new(InProcess { executor, runtime });
    let spawned = std::thread::Builder::new()
        .name("console".into())
        .spawn(move || {
            println!("console: type help for the commands; Ctrl+C or stop stops the tracker");
            let ended = editor::run(
                PROMPT,
                backend,
                diagnostics,
                diagnostics::take_local_dropped,
                // Ctrl+C at the prompt is Ctrl+C to the tracker: the same
                // signal, so the same stop (and a second one ends it now).
                || {
                    let _ = rustix::process::kill_process(
                        rustix::process::getpid(),
                        rustix::process::Signal::INT,
                    );
                    true
                },
            );
            diagnostics::set_local(None);
            // The editor put the terminal back itself.
            SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
            match ended {
                Ended::Eof | Ended::Exit | Ended::Interrupted => println!(
                    "console closed; the tracker keeps running (Ctrl+C stops it, tracker console attaches)"
                ),
                Ended::Failed(e) => eprintln!("console: {e}"),
            }
        });
    if spawned.is_err() {
        diagnostics::set_local(None);
        SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
        return false;
    }
    true
}

/// Remembers the terminal's settings for [`restore_terminal`].
pub(super) fn save_terminal() {
    if let Ok(t) = rustix::termios::tcgetattr(std::io::stdin()) {
        *SAVED.lock().unwrap_or_else(|e| e.into_inner()) = Some(t);
    }
}

/// Puts the terminal back as it was before the console (if the console is
/// still open) and sends diagnostics to stderr again. Safe to call more
/// than once and from any thread.
pub fn restore_terminal() {
    diagnostics::set_local(None);
    let saved = SAVED.lock().unwrap_or_else(|e| e.into_inner()).take();
    if let Some(t) = saved {
        let _ =
            rustix::termios::tcsetattr(std::io::stdin(), rustix::termios::OptionalActions::Now, &t);
        // Bracketed paste off (the editor turned it on), and the prompt
        // line cleared so what follows starts on a clean line.
        let mut out = std::io::stdout();
        let _ = out.write_all(b"\x1b[?2004l\r\x1b[K");
        let _ = out.flush();
    }
}
