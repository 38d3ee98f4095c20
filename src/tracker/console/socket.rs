//! The console socket: `console.sock` in the tracker's data folder (mode
//! 0600, and the peer's uid checked with `SO_PEERCRED`), through which
//! `tracker console` attaches. The line protocol is in ARCHITECTURE.md
//! ("The console socket"); in short:
//!
//! - the tracker first sends `confab-console 1 <server name>`, or
//!   `refused <why>` and closes;
//! - the console sends `run <command line>` or `names`;
//! - the tracker answers each in order: `out <text>` lines (a command's
//!   output) or `name user|room <name>` lines, then `ok`;
//! - at any time the tracker may send `diag <text>` (a diagnostic line),
//!   and `bye <why>` before it closes.
//!
//! Each attached console is its own task: one that stops reading blocks
//! only itself (and misses diagnostic lines), never the hub or chat.

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use futures_util::StreamExt;
use tokio::io::{AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{UnixListener, UnixStream};
use tokio_util::codec::{FramedRead, LinesCodec, LinesCodecError};
use tokio_util::sync::CancellationToken;

use super::{Executor, Origin, diagnostics};

/// The socket's name in the data folder.
pub const SOCKET_NAME: &str = "console.sock";
/// The first words of the tracker's greeting.
pub const PROTOCOL: &str = "confab-console 1";
/// Longest line either side may send, in bytes.
pub const MAX_LINE: usize = 4096;
/// Consoles attached at once; more are refused.
pub const MAX_ATTACHED: usize = 16;

/// Where the console socket of a tracker with `data_dir` is.
pub fn path_in(data_dir: &Path) -> PathBuf {
    data_dir.join(SOCKET_NAME)
}

#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    #[error("{0} is in use by another running tracker; this one has no console socket")]
    InUse(String),
    #[error("{0} exists and is not a socket; not replacing it")]
    NotASocket(String),
    #[error("cannot open the console socket {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// The listening socket; closed (and its file removed) when dropped.
pub struct ConsoleSocket {
    path: PathBuf,
    inode: u64,
    token: CancellationToken,
}

impl ConsoleSocket {
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ConsoleSocket {
    fn drop(&mut self) {
        self.token.cancel();
        // Only our own file: a tracker started since may have replaced it.
        if std::fs::metadata(&self.path).is_ok_and(|m| m.ino() == self.inode) {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Listens at `path` (inside the runtime). A socket left by a tracker that
/// crashed is replaced; one a running tracker answers on is not.
pub fn listen(
    path: &Path,
    executor: Executor,
    server_name: String,
) -> Result<ConsoleSocket, SocketError> {
    let shown = path.display().to_string();
    let io = |source| SocketError::Io {
        path: shown.clone(),
        source,
    };
    if let Ok(meta) = std::fs::symlink_metadata(path) {
        if !meta.file_type().is_socket() {
            return Err(SocketError::NotASocket(shown));
        }
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(SocketError::InUse(shown));
        }
        std::fs::remove_file(path).map_err(io)?;
        tracing::info!(
            "replaced a stale console socket {shown} (a tracker that did not stop cleanly)"
        );
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    // The folder is private already; the socket is too, and each peer's
    // uid is checked as well (root passes file modes).
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(io)?;
    let inode = std::fs::metadata(path).map_err(io)?.ino();
    let token = CancellationToken::new();
    let accept_token = token.clone();
    let slots = Arc::new(tokio::sync::Semaphore::new(MAX_ATTACHED));
    tokio::spawn(async move {
        loop {
            let stream = tokio::select! {
                _ = accept_token.cancelled() => return,
                accepted = listener.accept() => match accepted {
                    Ok((stream, _)) => stream,
                    Err(e) => {
                        tracing::warn!("console socket: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
            };
            let (executor, name, token) =
                (executor.clone(), server_name.clone(), accept_token.clone());
            let slot = slots.clone().try_acquire_owned();
            tokio::spawn(async move {
                let Ok(_slot) = slot else {
                    let mut stream = stream;
                    let _ = stream
                        .write_all(
                            format!("refused {MAX_ATTACHED} consoles are attached already\n")
                                .as_bytes(),
                        )
                        .await;
                    return;
                };
                serve(stream, executor, name, token).await;
            });
        }
    });
    Ok(ConsoleSocket {
        path: path.to_path_buf(),
        inode,
        token,
    })
}

/// How long a console still gets to take its last answer and the `bye`
/// once the tracker stops.
const FAREWELL: std::time::Duration = std::time::Duration::from_millis(200);

/// Writes `text`; once the tracker is stopping, only for `FAREWELL` more
/// (a console that stopped reading must not hold up the stop).
async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    text: &str,
    token: &CancellationToken,
) -> std::io::Result<()> {
    let write = async {
        w.write_all(text.as_bytes()).await?;
        w.flush().await
    };
    tokio::pin!(write);
    tokio::select! {
        r = &mut write => r,
        _ = token.cancelled() => match tokio::time::timeout(FAREWELL, &mut write).await {
            Ok(r) => r,
            Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
        },
    }
}

/// `prefix text` for each line of `text`.
fn lines_of(prefix: &str, text: &str) -> String {
    let mut out = String::new();
    for l in text.lines() {
        out.push_str(prefix);
        out.push(' ');
        out.push_str(l);
        out.push('\n');
    }
    out
}

async fn serve(
    stream: UnixStream,
    executor: Executor,
    server_name: String,
    token: CancellationToken,
) {
    let me = rustix::process::geteuid().as_raw();
    let peer = match stream.peer_cred() {
        Ok(cred) => cred.uid(),
        Err(e) => {
            tracing::warn!("console socket: cannot tell who connected ({e}); refused");
            return;
        }
    };
    let (read, write) = stream.into_split();
    let mut w = BufWriter::new(write);
    if peer != me {
        tracing::warn!(
            "console socket: refused uid {peer}: only the tracker's own user (uid {me}) may attach"
        );
        let why = format!(
            "refused only the user running the tracker (uid {me}) may use its console; you are uid {peer}\n"
        );
        let _ = send(&mut w, &why, &token).await;
        return;
    }
    tracing::info!("a console attached");
    let mut lines = FramedRead::new(read, LinesCodec::new_with_max_length(MAX_LINE));
    let mut diagnostics = diagnostics::subscribe();
    if send(&mut w, &format!("{PROTOCOL} {server_name}\n"), &token)
        .await
        .is_err()
    {
        return;
    }
    loop {
        let written = tokio::select! {
            biased;
            _ = token.cancelled() => {
                let _ = send(&mut w, "bye the tracker is stopping\n", &token).await;
                return;
            }
            line = lines.next() => match line {
                None => break,
                Some(Err(LinesCodecError::MaxLineLengthExceeded)) => {
                    let _ = send(&mut w, &format!("bye line longer than {MAX_LINE} bytes\n"), &token).await;
                    break;
                }
                Some(Err(_)) => break,
                Some(Ok(line)) => {
                    let answer = answer(&executor, &line).await;
                    send(&mut w, &answer, &token).await
                }
            },
            Some(text) = diagnostics.lines.recv() => {
                send(&mut w, &lines_of("diag", &text), &token).await
            }
        };
        if written.is_err() {
            break;
        }
    }
    tracing::info!("a console detached");
}

/// The answer to one request, `ok` included.
async fn answer(executor: &Executor, line: &str) -> String {
    let line = line.trim_end_matches('\r');
    let mut out = String::new();
    if let Some(command) = line.strip_prefix("run ") {
        for l in executor.run(command, Origin::Attached).await.lines {
            out.push_str(&lines_of("out", &l));
        }
    } else if line == "names" {
        let (users, rooms) = executor.names().await;
        for u in users {
            out.push_str(&format!("name user {u}\n"));
        }
        for r in rooms {
            out.push_str(&format!("name room {r}\n"));
        }
    } else if !line.is_empty() {
        out.push_str("out unknown request (run <command> or names)\n");
    }
    out.push_str("ok\n");
    out
}
