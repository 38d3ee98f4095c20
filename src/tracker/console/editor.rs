//! The line editor both consoles use (rustyline): a prompt with history
//! and Tab completion, and diagnostics printed above it while a command is
//! being typed, the half-typed line redrawn intact below them.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc::Receiver;

use rustyline::completion::Completer;
use rustyline::error::ReadlineError;
use rustyline::highlight::Highlighter;
use rustyline::hint::Hinter;
use rustyline::history::DefaultHistory;
use rustyline::validate::Validator;
use rustyline::{CompletionType, Config, Editor, ExternalPrinter};

use super::Outcome;

/// Commands kept in a console's history.
const HISTORY: usize = 1000;

/// Where a console's commands go: the hub in-process, or a tracker
/// through the socket. Blocking calls, from the editor's thread.
pub(super) trait Backend: Send + Sync {
    fn run(&self, line: &str) -> Outcome;
    /// Users online and rooms, for Tab completion.
    fn names(&self) -> (Vec<String>, Vec<String>);
}

struct Helper {
    backend: Arc<dyn Backend>,
}

impl Completer for Helper {
    type Candidate = String;
    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &rustyline::Context<'_>,
    ) -> rustyline::Result<(usize, Vec<String>)> {
        Ok(super::complete(line, pos, || self.backend.names()))
    }
}

impl Hinter for Helper {
    type Hint = String;
}
impl Highlighter for Helper {}
impl Validator for Helper {}
impl rustyline::Helper for Helper {}

/// How the editing loop ended.
#[derive(Debug)]
pub(super) enum Ended {
    /// Ctrl+D on an empty line.
    Eof,
    /// Ctrl+C, when `on_interrupt` said to stop reading.
    Interrupted,
    /// `exit` or `quit`.
    Exit,
    /// The terminal could not be used.
    Failed(String),
}

/// Reads commands at `prompt` until Ctrl+D, `exit`, or Ctrl+C when
/// `on_interrupt` returns false. `diagnostics` are printed above the
/// prompt as they come; `dropped` tells how many were lost meanwhile.
pub(super) fn run(
    prompt: &str,
    backend: Arc<dyn Backend>,
    diagnostics: Receiver<String>,
    dropped: fn() -> u64,
    mut on_interrupt: impl FnMut() -> bool,
) -> Ended {
    let config = Config::builder()
        .completion_type(CompletionType::List)
        .auto_add_history(false)
        .bracketed_paste(true);
    let config = match config.max_history_size(HISTORY) {
        Ok(c) => c,
        Err(e) => return Ended::Failed(e.to_string()),
    };
    let config = match config.history_ignore_dups(true) {
        Ok(c) => c.build(),
        Err(e) => return Ended::Failed(e.to_string()),
    };
    let mut editor: Editor<Helper, DefaultHistory> = match Editor::with_config(config) {
        Ok(e) => e,
        Err(e) => return Ended::Failed(e.to_string()),
    };
    editor.set_helper(Some(Helper {
        backend: backend.clone(),
    }));
    let mut printer = match editor.create_external_printer() {
        Ok(p) => p,
        Err(e) => return Ended::Failed(e.to_string()),
    };
    // Its own thread: the printer waits while the editor is busy, and
    // nobody else may wait for that.
    std::thread::Builder::new()
        .name("console-printer".into())
        .spawn(move || {
            for text in diagnostics {
                let lost = dropped();
                if lost > 0 {
                    let note = format!(
                        "({lost} diagnostic line(s) dropped: the console could not keep up)\n"
                    );
                    if printer.print(note).is_err() {
                        return;
                    }
                }
                if printer.print(text).is_err() {
                    return;
                }
            }
        })
        .ok();
    loop {
        match editor.readline(prompt) {
            Ok(line) => {
                let line = line.trim();
                if line.is_empty() {
                    continue;
                }
                let _ = editor.add_history_entry(line);
                let outcome = backend.run(line);
                let mut out = std::io::stdout().lock();
                for l in &outcome.lines {
                    let _ = writeln!(out, "{l}");
                }
                let _ = out.flush();
                if outcome.exit {
                    return Ended::Exit;
                }
            }
            Err(ReadlineError::Interrupted) => {
                if !on_interrupt() {
                    return Ended::Interrupted;
                }
            }
            Err(ReadlineError::Eof) => return Ended::Eof,
            Err(e) => return Ended::Failed(e.to_string()),
        }
    }
}
