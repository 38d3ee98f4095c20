//! `tracker console`: attaches to a running tracker's console socket and
//! gives the same console as the tracker's terminal (commands, Tab
//! completion, history, diagnostics above the prompt). Detaching (Ctrl+D,
//! Ctrl+C, `exit`) leaves the tracker running; `stop` stops it.
//!
//! Without a terminal on standard input it reads commands from it, one a
//! line, and prints their output: `echo online | tracker console`.

use std::io::{BufRead, BufReader, IsTerminal, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::editor::{self, Backend, Ended};
use super::socket::{MAX_LINE, PROTOCOL};
use super::{Command, Outcome, parse};
use crate::proto::sanitize::for_display;

/// How long to wait for the tracker's greeting and for each answer.
const ANSWER_WAIT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(
        "no tracker is running with the console socket {0} (is it running? with which --data-dir?)"
    )]
    NotRunning(String),
    #[error(
        "cannot attach to {0}: permission denied: only the user running the tracker may use its console"
    )]
    PermissionDenied(String),
    #[error("the tracker refused: {0}")]
    Refused(String),
    #[error("{path} did not answer as a tracker's console (it said {said:?})")]
    NotAConsole { path: String, said: String },
    #[error("cannot attach to {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// What the tracker sent that the waiting side needs.
enum Reply {
    Name(bool, String),
    Done,
}

struct Remote {
    writer: Mutex<UnixStream>,
    replies: Mutex<Receiver<Reply>>,
}

impl Remote {
    /// Sends a request and waits for its `ok`; the names it listed, if any.
    fn request(&self, line: &str) -> Option<(Vec<String>, Vec<String>)> {
        let replies = self.replies.lock().unwrap_or_else(|e| e.into_inner());
        {
            let mut w = self.writer.lock().unwrap_or_else(|e| e.into_inner());
            w.write_all(format!("{line}\n").as_bytes()).ok()?;
        }
        let mut names = (Vec::new(), Vec::new());
        loop {
            match replies.recv_timeout(ANSWER_WAIT).ok()? {
                Reply::Name(true, n) => names.0.push(n),
                Reply::Name(false, n) => names.1.push(n),
                Reply::Done => return Some(names),
            }
        }
    }
}

impl Backend for Remote {
    fn run(&self, line: &str) -> Outcome {
        if parse(line) == Ok(Command::Exit) {
            return Outcome {
                lines: Vec::new(),
                exit: true,
            };
        }
        // Cut to what one protocol line carries.
        let line = crate::proto::sanitize::clip(line, MAX_LINE - 8);
        match self.request(&format!("run {line}")) {
            Some(_) => Outcome::default(),
            None => Outcome {
                lines: vec!["the tracker did not answer".into()],
                exit: false,
            },
        }
    }

    fn names(&self) -> (Vec<String>, Vec<String>) {
        self.request("names").unwrap_or_default()
    }
}

/// Reads the tracker's lines: output is printed at once (the editor is
/// waiting for the answer then), diagnostics go to `diagnostics` (above
/// the prompt) or to stderr, answers' ends and names to the waiting side.
/// When the tracker says `bye` or closes, the terminal is restored and
/// the program ends.
fn read_tracker(
    reader: BufReader<UnixStream>,
    replies: std::sync::mpsc::Sender<Reply>,
    diagnostics: Option<SyncSender<String>>,
) {
    let mut why = "the tracker closed the connection".to_string();
    for line in reader.lines() {
        let Ok(line) = line else { break };
        let (kind, rest) = line.split_once(' ').unwrap_or((line.as_str(), ""));
        match kind {
            "out" => println!("{}", for_display(rest)),
            "diag" => {
                let text = format!("{}\n", for_display(rest));
                match &diagnostics {
                    // A full queue loses the line rather than hold answers.
                    Some(q) => {
                        let _ = q.try_send(text);
                    }
                    None => eprint!("{text}"),
                }
            }
            "name" => {
                if let Some((k, n)) = rest.split_once(' ') {
                    let _ = replies.send(Reply::Name(k == "user", n.to_string()));
                }
            }
            "ok" => {
                let _ = replies.send(Reply::Done);
            }
            "bye" => {
                why = for_display(rest);
                break;
            }
            _ => {}
        }
    }
    super::local::restore_terminal();
    println!("detached: {why}");
    std::process::exit(0);
}

/// Attaches to the console socket at `path` until detached or the tracker
/// stops.
pub fn attach(path: &Path) -> Result<(), AttachError> {
    let shown = path.display().to_string();
    let stream = UnixStream::connect(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => {
            AttachError::NotRunning(shown.clone())
        }
        std::io::ErrorKind::PermissionDenied => AttachError::PermissionDenied(shown.clone()),
        _ => AttachError::Io {
            path: shown.clone(),
            source: e,
        },
    })?;
    let io = |source| AttachError::Io {
        path: shown.clone(),
        source,
    };
    stream.set_read_timeout(Some(ANSWER_WAIT)).map_err(io)?;
    let mut reader = BufReader::new(stream.try_clone().map_err(io)?);
    let mut hello = String::new();
    reader.read_line(&mut hello).map_err(io)?;
    let hello = hello.trim_end();
    if let Some(why) = hello.strip_prefix("refused ") {
        return Err(AttachError::Refused(for_display(why)));
    }
    let Some(server) = hello.strip_prefix(PROTOCOL) else {
        return Err(AttachError::NotAConsole {
            path: shown,
            said: for_display(hello),
        });
    };
    stream.set_read_timeout(None).map_err(io)?;
    let server = for_display(server.trim());
    let (reply_tx, reply_rx) = std::sync::mpsc::channel();
    let remote = Arc::new(Remote {
        writer: Mutex::new(stream),
        replies: Mutex::new(reply_rx),
    });
    let interactive = std::io::stdin().is_terminal() && std::io::stdout().is_terminal();
    if !interactive {
        std::thread::spawn(move || read_tracker(reader, reply_tx, None));
        for line in std::io::stdin().lock().lines() {
            let Ok(line) = line else { break };
            if line.trim().is_empty() {
                continue;
            }
            let outcome = remote.run(&line);
            for l in &outcome.lines {
                println!("{l}");
            }
            if outcome.exit {
                break;
            }
        }
        return Ok(());
    }
    let (diag_tx, diag_rx) = std::sync::mpsc::sync_channel(super::diagnostics::LOCAL_QUEUE);
    std::thread::spawn(move || read_tracker(reader, reply_tx, Some(diag_tx)));
    println!(
        "attached to {server} at {shown}: type help for the commands; Ctrl+D or exit detaches (the tracker keeps running)"
    );
    super::local::save_terminal();
    let ended = editor::run(super::local::PROMPT, remote, diag_rx, || 0, || false);
    super::local::restore_terminal();
    match ended {
        Ended::Eof | Ended::Exit | Ended::Interrupted => {
            println!("detached; the tracker keeps running");
            Ok(())
        }
        Ended::Failed(e) => Err(AttachError::Io {
            path: shown,
            source: std::io::Error::other(e),
        }),
    }
}
