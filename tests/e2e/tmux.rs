//! Programs in a real pseudo-terminal: each [`Tmux`] is a private tmux
//! server (its own socket) running one command in a detached session.
//! Keys go in with `send-keys`, the screen comes out with `capture-pane`.
//! Dropping one kills its server, then whatever its panes started that is
//! still running a second later: no test leaves a program behind.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::harness::WAIT;

/// Whether an executable called `name` is on PATH.
pub fn on_path(name: &str) -> bool {
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            let p = dir.join(name);
            p.is_file()
                && std::fs::metadata(&p)
                    .map(|m| {
                        use std::os::unix::fs::PermissionsExt;
                        m.permissions().mode() & 0o111 != 0
                    })
                    .unwrap_or(false)
        })
    })
}

/// True when all `tools` are installed. When one is missing the test is
/// skipped with a message, except under CI (`CI` set), where `.ci/run`
/// installs them and a skip would hide a broken setup.
pub fn have(tools: &[&str]) -> bool {
    let missing: Vec<&str> = tools.iter().copied().filter(|t| !on_path(t)).collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{missing:?} must be installed in CI (.ci/run installs them with apt-get)");
    }
    eprintln!("skipped: {missing:?} not installed (apt-get install {missing:?})");
    false
}

/// Polls `check` every 50 ms until it returns `Some`, for up to `WAIT`;
/// on timeout panics with `what` and whatever `diag` reports.
pub fn poll<T>(what: &str, mut check: impl FnMut() -> Option<T>, diag: impl Fn() -> String) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(v) = check() {
            return v;
        }
        if Instant::now() > deadline {
            panic!("timed out waiting for {what}\n{}", diag());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

pub struct Tmux {
    socket: String,
    session: String,
    /// Processes the panes ran, noted before the server was killed, so
    /// the drop can end any that outlive their terminal.
    started: std::cell::RefCell<Vec<Proc>>,
}

impl Tmux {
    /// Runs `command` (a shell command line) in a `width`x`height` terminal,
    /// with `env` added to its environment and `unset` removed.
    pub fn start(name: &str, command: &str, env: &[(&str, &Path)], unset: &[&str]) -> Tmux {
        let tag = format!("confab-e2e-{}-{name}", std::process::id());
        let t = Tmux {
            socket: tag.clone(),
            session: tag,
            started: Default::default(),
        };
        let mut cmd = t.command();
        for (k, v) in env {
            cmd.env(k, v);
        }
        for k in unset {
            cmd.env_remove(k);
        }
        let out = cmd
            .args([
                "new-session",
                "-d",
                "-s",
                &t.session,
                "-x",
                "200",
                "-y",
                "50",
            ])
            .arg(command)
            .output()
            .expect("run tmux");
        assert!(
            out.status.success(),
            "tmux new-session failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        t
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new("tmux");
        cmd.arg("-L")
            .arg(&self.socket)
            .env_remove("TMUX")
            .env("TERM", "xterm")
            .env("TZ", "UTC")
            .stdin(Stdio::null());
        cmd
    }

    fn tmux(&self, args: &[&str]) -> Output {
        self.command().args(args).output().expect("run tmux")
    }

    /// Types `text` literally (no key names), without Enter.
    pub fn type_text(&self, text: &str) {
        let ok = self
            .tmux(&["send-keys", "-t", &self.session, "-l", text])
            .status
            .success();
        assert!(ok, "tmux send-keys failed");
    }

    /// Presses keys by tmux name: "Enter", "C-c", "BSpace".
    pub fn press(&self, key: &str) {
        let ok = self
            .tmux(&["send-keys", "-t", &self.session, key])
            .status
            .success();
        assert!(ok, "tmux send-keys {key} failed");
    }

    /// Types `line` and presses Enter.
    pub fn type_line(&self, line: &str) {
        if !line.is_empty() {
            self.type_text(line);
        }
        self.press("Enter");
    }

    /// What the terminal shows now (empty once the session is gone).
    pub fn screen(&self) -> String {
        let out = self.tmux(&["capture-pane", "-p", "-t", &self.session]);
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Pastes `text` as a terminal would: inside bracketed-paste marks
    /// when the program asked for them, line breaks as CR.
    pub fn paste(&self, text: &str) {
        let ok = self.tmux(&["set-buffer", "--", text]).status.success()
            && self
                .tmux(&["paste-buffer", "-p", "-d", "-t", &self.session])
                .status
                .success();
        assert!(ok, "tmux paste failed");
    }

    /// A tmux format about the pane, like `#{alternate_on}`.
    pub fn pane_format(&self, format: &str) -> String {
        let out = self.tmux(&["display-message", "-p", "-t", &self.session, format]);
        String::from_utf8_lossy(&out.stdout).trim_end().to_string()
    }

    /// Resizes the terminal, as a person dragging the window would.
    pub fn resize(&self, width: u16, height: u16) {
        let ok = self
            .tmux(&[
                "resize-window",
                "-t",
                &self.session,
                "-x",
                &width.to_string(),
                "-y",
                &height.to_string(),
            ])
            .status
            .success();
        assert!(ok, "tmux resize-window failed");
    }

    pub fn alive(&self) -> bool {
        self.tmux(&["has-session", "-t", &self.session])
            .status
            .success()
    }

    /// Waits until the screen shows `text`; returns the screen. Trailing
    /// spaces are not compared: capture-pane drops them.
    pub fn wait_screen(&self, text: &str) -> String {
        let text = text.trim_end();
        poll(
            &format!("the screen to show {text:?}"),
            || Some(self.screen()).filter(|s| s.contains(text)),
            || format!("screen:\n{}", self.screen()),
        )
    }

    /// Waits until `text` appears `n` times on the screen.
    pub fn wait_count(&self, text: &str, n: usize) -> String {
        let text = text.trim_end();
        poll(
            &format!("the screen to show {text:?} {n} times"),
            || Some(self.screen()).filter(|s| s.matches(text).count() >= n),
            || format!("screen:\n{}", self.screen()),
        )
    }

    /// Kills the tmux server, which closes the pty master under every
    /// pane: the terminal is gone. The processes stay (ended by the drop).
    pub fn close_terminal(&self) {
        self.note_processes();
        let _ = self.tmux(&["kill-server"]);
    }

    /// Notes every process under the panes: once the server is gone
    /// there is no asking it, and they may have moved to a new parent.
    fn note_processes(&self) {
        let out = self.tmux(&["list-panes", "-a", "-F", "#{pane_pid}"]);
        let panes: Vec<u32> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect();
        self.started.borrow_mut().extend(Proc::tree(&panes));
    }
}

/// A process, told from a later one with the same pid by its start time.
#[derive(Clone, Copy, PartialEq)]
struct Proc {
    pid: u32,
    started: u64,
}

impl Proc {
    /// Parent pid and start time from `/proc/<pid>/stat`; `None` for a
    /// process that is gone or a zombie (dead, only not yet reaped).
    fn stat(pid: u32) -> Option<(u32, u64)> {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // The command name, in parentheses, may hold spaces and ')'.
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        if fields.first() == Some(&"Z") {
            return None;
        }
        Some((fields.get(1)?.parse().ok()?, fields.get(19)?.parse().ok()?))
    }

    /// `roots` and all their descendants that are running now.
    fn tree(roots: &[u32]) -> Vec<Proc> {
        let all: Vec<(u32, u32, u64)> = std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter_map(|pid| Proc::stat(pid).map(|(ppid, started)| (pid, ppid, started)))
            .collect();
        let mut found: Vec<Proc> = all
            .iter()
            .filter(|(pid, _, _)| roots.contains(pid))
            .map(|&(pid, _, started)| Proc { pid, started })
            .collect();
        let mut i = 0;
        while i < found.len() {
            let parent = found[i].pid;
            for &(pid, ppid, started) in &all {
                if ppid == parent && !found.iter().any(|p| p.pid == pid) {
                    found.push(Proc { pid, started });
                }
            }
            i += 1;
        }
        found
    }

    fn alive(self) -> bool {
        Proc::stat(self.pid).is_some_and(|(_, started)| started == self.started)
    }
}

/// How long the panes' programs have to end on their own once their
/// terminal is gone (the hangup) before they are killed.
const HANGUP_GRACE: Duration = Duration::from_secs(1);

/// The server goes, and with it every pane's terminal; whatever the panes
/// started and is still running a moment later is killed, so a failing
/// test never leaves a program behind (one spinning on its dead terminal,
/// say).
impl Drop for Tmux {
    fn drop(&mut self) {
        self.note_processes();
        let _ = self.tmux(&["kill-server"]);
        let started = self.started.borrow();
        let deadline = Instant::now() + HANGUP_GRACE;
        while started.iter().any(|p| p.alive()) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(20));
        }
        for p in started.iter().filter(|p| p.alive()) {
            let _ = Command::new("kill")
                .arg("-KILL")
                .arg(p.pid.to_string())
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// Waits until the screen of `term` satisfies `ok`, and returns it.
pub fn wait_until(term: &Tmux, what: &str, ok: impl Fn(&str) -> bool) -> String {
    poll(
        what,
        || Some(term.screen()).filter(|s| ok(s)),
        || term.screen(),
    )
}

/// `client` full-screen as `name` in its own terminal (`session` names it,
/// unique among tests running at once), password from the environment,
/// fingerprint pinned unless `--no-tls` is among `extra`, `extra` added;
/// returns once it has joined.
pub fn client_in_terminal(
    session: &str,
    tracker: &crate::harness::Tracker,
    name: &str,
    extra: &[&str],
) -> Tmux {
    use crate::harness::{PASSWORD, client_bin};
    let known = tracker.dir.join("known_trackers").display().to_string();
    let target = format!("127.0.0.1:{}", tracker.port);
    let mut args = vec![target.as_str(), "--user", name, "--known-trackers", &known];
    if !extra.contains(&"--no-tls") {
        args.extend(["--fingerprint", &tracker.fingerprint]);
    }
    args.extend(extra);
    let term = Tmux::start(
        session,
        &crate::terminal::wrapped(&tracker.dir, client_bin(), &args),
        &[("CONFAB_PASSWORD", Path::new(PASSWORD))],
        &[],
    );
    term.wait_screen("#general --> you joined");
    term
}
