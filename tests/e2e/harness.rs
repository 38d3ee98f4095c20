//! Starting real `tracker` and `client` processes and reading what they say.
//!
//! Every wait is for an event (a line of output, a process exit, a line in
//! chat.log) with a generous deadline; nothing sleeps for a fixed time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const PASSWORD: &str = "correct horse";
pub const WAIT: Duration = Duration::from_secs(15);

pub fn tracker_bin() -> &'static str {
    env!("CARGO_BIN_EXE_tracker")
}

pub fn client_bin() -> &'static str {
    env!("CARGO_BIN_EXE_client")
}

/// Lines from a pipe, collected by a thread.
pub struct Lines {
    rx: Receiver<String>,
    pub seen: Vec<String>,
}

impl Lines {
    pub fn spawn(pipe: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Lines {
            rx,
            seen: Vec::new(),
        }
    }

    /// Waits for the next line satisfying `pred`; panics with everything
    /// seen so far if it does not come.
    pub fn wait_for(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(line) => {
                    self.seen.push(line.clone());
                    if pred(&line) {
                        return line;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "timed out waiting for {what:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "stream ended waiting for {what:?}; seen:\n{}",
                    self.seen.join("\n")
                ),
            }
        }
    }

    /// Reads everything until the stream ends.
    pub fn drain(&mut self) -> &[String] {
        let deadline = Instant::now() + WAIT;
        while let Ok(line) = self
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            self.seen.push(line);
        }
        &self.seen
    }
}

/// A client line without its `HH:MM:SS ` prefix.
pub fn body(line: &str) -> &str {
    let b = line.as_bytes();
    if b.len() > 9 && b[2] == b':' && b[5] == b':' && b[8] == b' ' {
        &line[9..]
    } else {
        line
    }
}

pub fn wait_exit(child: &mut Child, within: Duration) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("process {} did not exit within {within:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

pub fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(child.id().to_string())
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill -{sig} failed");
}

pub struct Tracker {
    pub child: Child,
    pub port: u16,
    pub fingerprint: String,
    pub dir: PathBuf,
    pub stdout: Lines,
    pub stderr: Arc<Mutex<Vec<String>>>,
}

impl Tracker {
    /// Starts a tracker in `dir` (logs/ and data/ inside) with the test password.
    pub fn start_in(dir: &Path, extra: &[&str]) -> Tracker {
        Tracker::start_wrapped(dir, extra, "")
    }

    /// Like `start_in`, with shell commands run first in the process that
    /// then becomes the tracker (`ulimit`, `trap`): `shell` is run by
    /// `sh -c` before an `exec`.
    pub fn start_wrapped(dir: &Path, extra: &[&str], shell: &str) -> Tracker {
        let mut command = if shell.is_empty() {
            Command::new(tracker_bin())
        } else {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{shell}\nexec \"$0\" \"$@\""))
                .arg(tracker_bin());
            c
        };
        if !extra.contains(&"--bind") {
            command.args(["--bind", "127.0.0.1"]);
        }
        // Tests that watch the tracker stop with its last member don't wait
        // out the default grace; tests of the grace itself pass their own.
        if !extra.contains(&"--exit-grace") {
            command.args(["--exit-grace", "0"]);
        }
        // Only the discovery tests announce (in network namespaces).
        if !extra.contains(&"--no-announce") {
            command.arg("--no-announce");
        }
        let child = command
            .args(["--port", "0"])
            .arg("--log-dir")
            .arg(dir.join("logs"))
            .arg("--data-dir")
            .arg(dir.join("data"))
            .args(extra)
            .env("CONFAB_PASSWORD", PASSWORD)
            // No configuration file of the machine's user may leak in.
            .env("XDG_CONFIG_HOME", dir)
            .env("RUST_LOG", "confab=debug")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start tracker");
        Tracker::from_child(child, dir)
    }

    /// Reads a just-started tracker's start-up lines (where it listens,
    /// its fingerprint, the join hint); `dir` is where its files are.
    pub fn from_child(mut child: Child, dir: &Path) -> Tracker {
        let mut stdout = Lines::spawn(child.stdout.take().expect("stdout"));
        let stderr = Arc::new(Mutex::new(Vec::new()));
        let sink = stderr.clone();
        let err_pipe = child.stderr.take().expect("stderr");
        std::thread::spawn(move || {
            for line in BufReader::new(err_pipe).lines().map_while(Result::ok) {
                sink.lock().unwrap().push(line);
            }
        });
        let listening = stdout.wait_for("listening on", |l| l.starts_with("listening on "));
        let port = listening.rsplit(':').next().unwrap().parse().unwrap();
        let fp_line = stdout.wait_for("fingerprint", |l| l.starts_with("fingerprint "));
        let fingerprint = fp_line.trim_start_matches("fingerprint ").to_string();
        stdout.wait_for("join hint", |l| l.starts_with("clients join with: "));
        Tracker {
            child,
            port,
            fingerprint,
            dir: dir.to_path_buf(),
            stdout,
            stderr,
        }
    }

    pub fn log_path(&self) -> PathBuf {
        self.dir.join("logs").join("chat.log")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// chat.log lines without their timestamps, and message lines without
    /// their tags (msgid, source: `durable.rs` checks those).
    pub fn log_events(&self) -> Vec<String> {
        self.log()
            .lines()
            .map(|l| match confab::tracker::review::format::parse_line(l) {
                Some(e) if !e.tags.is_empty() => format!("{} {}", e.event, e.detail),
                _ => l.split_once(' ').map_or(l, |(_, rest)| rest).to_string(),
            })
            .collect()
    }

    /// Waits until chat.log holds a line ending with `suffix`.
    pub fn wait_log(&self, suffix: &str) {
        let deadline = Instant::now() + WAIT;
        while !self.log_events().iter().any(|l| l == suffix) {
            assert!(
                Instant::now() < deadline,
                "chat.log never got {suffix:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr.lock().unwrap().join("\n")
    }

    /// Waits until the tracker's diagnostics (stderr) mention `text`.
    pub fn wait_stderr(&self, text: &str) {
        crate::tmux::poll(
            &format!("tracker stderr to say {text:?}"),
            || self.stderr_text().contains(text).then_some(()),
            || self.stderr_text(),
        );
    }

    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().expect("try_wait").is_none()
    }
}

impl Drop for Tracker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub struct ClientProc {
    pub child: Child,
    pub name: String,
    stdin: Option<ChildStdin>,
    pub out: Lines,
    pub err: Lines,
}

pub fn client_command(tracker: &Tracker, extra: &[&str]) -> Command {
    let mut cmd = Command::new(client_bin());
    cmd.arg(format!("127.0.0.1:{}", tracker.port))
        .arg("--plain")
        .arg("--known-trackers")
        .arg(tracker.dir.join("known_trackers"))
        .args(extra)
        .env("CONFAB_PASSWORD", PASSWORD)
        .env("TZ", "UTC")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

impl ClientProc {
    pub fn spawn(mut cmd: Command, name: &str) -> ClientProc {
        let mut child = cmd.spawn().expect("start client");
        let out = Lines::spawn(child.stdout.take().expect("stdout"));
        let err = Lines::spawn(child.stderr.take().expect("stderr"));
        let stdin = child.stdin.take();
        ClientProc {
            child,
            name: name.to_string(),
            stdin,
            out,
            err,
        }
    }

    /// Starts `client --plain` as `name` and waits until it is in #general.
    pub fn join(tracker: &Tracker, name: &str) -> ClientProc {
        let mut c = ClientProc::spawn(
            client_command(
                tracker,
                &["--user", name, "--fingerprint", &tracker.fingerprint],
            ),
            name,
        );
        c.expect("#general --> you joined");
        c
    }

    pub fn send(&mut self, line: &str) {
        let stdin = self.stdin.as_mut().expect("stdin open");
        writeln!(stdin, "{line}").expect("write to client");
        stdin.flush().expect("flush");
    }

    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Waits for a line whose text after the clock is exactly `text`.
    pub fn expect(&mut self, text: &str) -> String {
        let who = format!("{}: {text}", self.name);
        self.out.wait_for(&who, |l| body(l) == text)
    }

    pub fn expect_matching(&mut self, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let who = format!("{}: {what}", self.name);
        self.out.wait_for(&who, |l| pred(body(l)))
    }

    /// Everything shown so far, without clocks.
    pub fn bodies(&self) -> Vec<String> {
        self.out.seen.iter().map(|l| body(l).to_string()).collect()
    }

    pub fn wait_exit(&mut self) -> ExitStatus {
        wait_exit(&mut self.child, WAIT)
    }
}

impl Drop for ClientProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A bare IRC connection for protocol tests (plain TCP tracker).
pub struct Raw {
    stream: TcpStream,
    pub lines: Lines,
}

impl Raw {
    pub fn from_stream(stream: TcpStream) -> Raw {
        let lines = Lines::spawn(stream.try_clone().expect("clone"));
        Raw { stream, lines }
    }

    pub fn connect(port: u16) -> Raw {
        Raw::connect_from("127.0.0.1", port)
    }

    /// Connects from source address `from` (any 127.x.y.z works on
    /// loopback), for tests of per-address rules.
    pub fn connect_from(from: &str, port: u16) -> Raw {
        let stream = connect_from(from, port);
        let lines = Lines::spawn(stream.try_clone().expect("clone"));
        Raw { stream, lines }
    }

    pub fn send(&mut self, line: &str) {
        self.stream
            .write_all(format!("{line}\r\n").as_bytes())
            .expect("send");
    }

    pub fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("send");
    }

    /// Sends what the peer accepts before it closes (a flood the tracker
    /// cuts off midway).
    pub fn send_all_lossy(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes)
    }

    /// Waits for a line containing `needle`.
    pub fn expect(&mut self, needle: &str) -> String {
        self.lines.wait_for(needle, |l| l.contains(needle))
    }

    /// Registers with the test password and waits for the end of the burst.
    pub fn register(port: u16, nick: &str) -> Raw {
        Raw::register_from("127.0.0.1", port, nick)
    }

    pub fn register_from(from: &str, port: u16, nick: &str) -> Raw {
        let mut r = Raw::connect_from(from, port);
        r.send(&format!("PASS :{PASSWORD}"));
        r.send(&format!("NICK {nick}"));
        r.send(&format!("USER {nick} 0 * :{nick} raw"));
        r.expect(" 366 ");
        r
    }

    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}

/// A TCP connection to the tracker on 127.0.0.1 from source address `from`.
pub fn connect_from(from: &str, port: u16) -> TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    let local: std::net::SocketAddr = format!("{from}:0").parse().expect("source address");
    socket.bind(&local.into()).expect("bind source address");
    let remote: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().expect("address");
    socket.connect(&remote.into()).expect("connect");
    socket.into()
}

/// What `tracker hash-password` prints for `password` (read from its
/// standard input, as a script would give it), for an `[[oper]]` table.
pub fn operator_hash(password: &str) -> String {
    let out = Command::new(tracker_bin())
        .arg("hash-password")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            c.stdin
                .take()
                .expect("stdin")
                .write_all(format!("{password}\n").as_bytes())?;
            c.wait_with_output()
        })
        .expect("hash-password");
    assert!(out.status.success());
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// Logs in as `nick` asking for `caps`, with SASL PLAIN as the account
/// `nick` when `password` is given; returns once the #general join ended.
pub fn login_with_caps(port: u16, nick: &str, caps: &str, password: Option<&str>) -> Raw {
    use base64::Engine;
    let mut r = Raw::connect(port);
    r.send(&format!("CAP REQ :{caps}"));
    r.expect(" ACK ");
    r.send(&format!("PASS :{PASSWORD}"));
    r.send(&format!("NICK {nick}"));
    r.send(&format!("USER {nick} 0 * :{nick}"));
    if let Some(password) = password {
        r.send("AUTHENTICATE PLAIN");
        r.expect("AUTHENTICATE +");
        let plain =
            base64::engine::general_purpose::STANDARD.encode(format!("{nick}\0{nick}\0{password}"));
        r.send(&format!("AUTHENTICATE {plain}"));
        r.expect(" 903 ");
    }
    r.send("CAP END");
    r.expect(" 366 ");
    r
}
