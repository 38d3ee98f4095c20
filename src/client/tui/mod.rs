//! The full-screen UI: the chat loop that ties the connection, the keys
//! and the screen together. The application state is the same [`App`] the
//! plain mode uses; `view` holds what is shown, `draw` draws it,
//! `terminal` takes the terminal and always gives it back.
//!
//! One `select!` on one thread, like the plain loop: the connection, the
//! terminal's events (crossterm's `EventStream`, whose reader thread blocks
//! on the terminal), the terminal going away, signals and the keep-alive
//! timer. The screen is drawn only when something changed and nothing else
//! is ready, so a burst of messages costs one frame and an idle client does
//! nothing at all.

pub mod draw;
pub mod editor;
pub mod keys;
pub mod terminal;
#[cfg(test)]
mod tests_history;
pub mod view;

use std::io::{self, Stdout, Write};
use std::time::Duration;

use crossterm::event::{Event as TermEvent, EventStream};
use futures_util::StreamExt;
use jiff::Timestamp;
use jiff::tz::TimeZone;
use ratatui::Terminal;
use ratatui::backend::CrosstermBackend;
use tokio::signal::unix::{SignalKind, signal};

use super::session::{self, ClientError, Keepalive, LoggedIn, Outcome};
use super::state::{App, Window};
use view::{Action, Conn, Outgoing, View};

/// How long an unanswered keep-alive PING waits before the status bar
/// says the connection is being checked.
const SLOW_ANSWER: Duration = Duration::from_secs(10);
/// Most messages handled between two frames in a flood, so the screen
/// keeps up even when the connection is always ready.
const FRAME_EVERY: usize = 256;

fn term_err(e: io::Error) -> ClientError {
    ClientError::Terminal(e)
}

/// Runs the chat full-screen until the user leaves or the link ends. The
/// terminal is restored before this returns (and on a panic), and then
/// how it ended is printed on the normal screen.
pub async fn run(mut session: LoggedIn, tls: bool) -> Result<Outcome, ClientError> {
    let guard = terminal::TerminalGuard::enter().map_err(term_err)?;
    let result = match Terminal::new(CrosstermBackend::new(io::stdout())) {
        Ok(mut term) => chat(&mut session, &mut term, tls).await,
        Err(e) => Err(term_err(e)),
    };
    drop(guard);
    // Lines the tracker never confirmed are said on the normal screen, where
    // they can still be copied: they may not have reached anyone.
    if let Some(super::state::Event::Unsent { lines, .. }) =
        session.app.take_unsent(Timestamp::now())
    {
        for (window, text) in lines {
            let place = super::plain::place(&window);
            let _ = writeln!(io::stderr(), "client: not sent: {place} {text}");
        }
    }
    if let Ok(Outcome::Left) = result {
        // Not println!: after a hangup there is no terminal, and a failed
        // write must not turn a clean leave into a panic.
        let _ = writeln!(io::stdout(), "*** you left the tracker");
    }
    result
}

async fn chat(
    session: &mut LoggedIn,
    term: &mut Terminal<CrosstermBackend<Stdout>>,
    tls: bool,
) -> Result<Outcome, ClientError> {
    let mut links = session.direct_links();
    let LoggedIn {
        conn, app, pending, ..
    } = session;
    let mut view = View::new(&app.me, &app.tracker, tls, TimeZone::system());
    let size = term.size().map_err(term_err)?;
    view.resize(size.width, size.height);
    view.apply(pending);
    view.sync(app);
    let mut keys = EventStream::new();
    let tty = terminal::TerminalGone::watch();
    let mut sigterm = signal(SignalKind::terminate()).map_err(term_err)?;
    let mut sighup = signal(SignalKind::hangup()).map_err(term_err)?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut alive = Keepalive::new();
    let mut dirty = true;
    let mut since_frame = 0;
    // The window last in view, for its read marker.
    let mut in_view: Option<Window> = None;
    let quit_reason: String = 'chat: loop {
        if dirty {
            mark_read(app, &view, conn, &mut in_view, Timestamp::now()).await?;
        }
        let timer = match alive.waiting_since() {
            Some(sent) if view.conn == Conn::Connected => sent + SLOW_ANSWER,
            _ => alive.deadline(),
        };
        // A read marker held back (one per window per second) goes then.
        let marker_at = app.next_mark_read().map(|at| {
            let left = at.duration_since(Timestamp::now());
            tokio::time::Instant::now() + Duration::try_from(left).unwrap_or_default()
        });
        tokio::select! {
            // Keys first: typing stays responsive during a flood.
            biased;
            ev = keys.next() => {
                let now = Timestamp::now();
                match ev {
                    Some(Ok(TermEvent::Key(k))) => match view.on_key(k, now) {
                        Action::None => {}
                        Action::Repaint => term.clear().map_err(term_err)?,
                        Action::Quit(reason) => break 'chat reason,
                        Action::Older { window, before } => {
                            let up = app.older_history(&window, before);
                            session::send_all(conn, &up.send).await?;
                        }
                        Action::Send(lines) => {
                            if let Some(reason) = send(app, &mut view, conn, &mut links, lines, now).await? {
                                break 'chat reason;
                            }
                        }
                    },
                    Some(Ok(TermEvent::Paste(text))) => view.on_paste(&text, now),
                    Some(Ok(TermEvent::Mouse(m))) => {
                        if !view.on_mouse(m) {
                            continue;
                        }
                    }
                    Some(Ok(TermEvent::Resize(w, h))) => view.resize(w, h),
                    Some(Ok(TermEvent::FocusGained)) => view.set_focus(true),
                    Some(Ok(TermEvent::FocusLost)) => view.set_focus(false),
                    Some(Err(e)) => return Err(term_err(e)),
                    // The terminal is gone: nobody to show anything to.
                    None => break 'chat "Leaving".into(),
                }
                dirty = true;
            }
            incoming = conn.recv() => {
                let Some(msg) = session::received(incoming)? else { continue };
                alive.heard();
                view.conn = Conn::Connected;
                let up = app.on_message(&msg, Timestamp::now());
                view.apply(&up.events);
                view.sync(app);
                session::send_all(conn, &up.send).await?;
                links.apply_all(up.direct);
                if let Some(reason) = session::closed(&up.events) {
                    conn.close().await;
                    return Ok(Outcome::ClosedByTracker(reason));
                }
                dirty = true;
                since_frame += 1;
            }
            event = links.next() => {
                let up = app.on_direct(event, Timestamp::now());
                view.apply(&up.events);
                view.sync(app);
                session::send_all(conn, &up.send).await?;
                links.apply_all(up.direct);
                dirty = true;
            }
            _ = &mut ctrl_c => break 'chat "Leaving".into(),
            _ = sigterm.recv() => break 'chat "Leaving".into(),
            _ = sighup.recv() => break 'chat "Leaving".into(),
            // Closed without a SIGHUP (a killed tmux server, a revoked pty).
            _ = tty.gone() => break 'chat "Leaving".into(),
            _ = tokio::time::sleep_until(marker_at.unwrap_or(timer)), if marker_at.is_some() => {
                session::send_all(conn, &app.due_mark_reads(Timestamp::now())).await?;
            }
            _ = tokio::time::sleep_until(timer) => {
                if timer == alive.deadline() {
                    if let Some(ping) = alive.due()? {
                        session::send_all(conn, &[ping]).await?;
                    }
                } else {
                    view.conn = Conn::Checking;
                    dirty = true;
                }
            }
            // Reached only when nothing above is ready.
            _ = std::future::ready(()), if dirty => {
                frame(term, &view)?;
                dirty = false;
                since_frame = 0;
            }
        }
        if since_frame >= FRAME_EVERY {
            frame(term, &view)?;
            dirty = false;
            since_frame = 0;
        }
    };
    for msg in session::leave(conn, &quit_reason).await {
        app.on_message(&msg, Timestamp::now());
    }
    Ok(Outcome::Left)
}

/// Tells the tracker how far the window in view is read (MARKREAD, held
/// back to one per window per second while lines keep coming), and sends
/// the marker held for a window the moment it is left.
async fn mark_read(
    app: &mut App,
    view: &View,
    conn: &mut super::connection::Connection,
    in_view: &mut Option<Window>,
    now: Timestamp,
) -> Result<(), ClientError> {
    let mut send = Vec::new();
    let Some((window, upto)) = view.in_view() else {
        // Away from the terminal: what was held goes now; nothing more
        // is read until the focus comes back (which counts as a switch).
        if let Some(left) = in_view.take() {
            send.extend(app.left_window(&left, now));
        }
        return session::send_all(conn, &send).await;
    };
    let switched = in_view.as_ref() != Some(&window);
    if switched && let Some(left) = in_view.take() {
        send.extend(app.left_window(&left, now));
    }
    if let Some(upto) = upto {
        send.extend(app.mark_read(&window, upto, now, switched));
    }
    *in_view = Some(window);
    session::send_all(conn, &send).await
}

fn frame(term: &mut Terminal<CrosstermBackend<Stdout>>, view: &View) -> Result<(), ClientError> {
    term.draw(|f| draw::draw(f, view)).map_err(term_err)?;
    Ok(())
}

/// Hands what Enter produced to the application, in order, and sends what
/// it says to send. Returns the QUIT reason if one of the lines was /exit.
async fn send(
    app: &mut App,
    view: &mut View,
    conn: &mut super::connection::Connection,
    links: &mut super::direct::DirectLinks,
    lines: Vec<Outgoing>,
    now: Timestamp,
) -> Result<Option<String>, ClientError> {
    app.focus(&view.active().target);
    for line in lines {
        let up = match line {
            Outgoing::Typed(l) => app.on_input(&l, now),
            Outgoing::Text(t) => app.on_text(&t, now),
            Outgoing::Secret(secret) => app.on_secret(&secret, now),
        };
        view.apply(&up.events);
        session::send_all(conn, &up.send).await?;
        links.apply_all(up.direct);
        if up.quit.is_some() {
            return Ok(up.quit);
        }
    }
    view.sync(app);
    Ok(None)
}
