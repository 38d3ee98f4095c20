//! The full-screen client's keys: one table that both [`super::view`]
//! (what a key does) and `/help` (what the keys are) read, so the two
//! cannot drift apart. The README's key table is checked against it by a
//! test.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a key does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyAction {
    /// Ctrl+C: clears what is typed; on an empty input, leaves.
    ClearOrLeave,
    /// Ctrl+D: leaves on an empty input (as a shell does), else nothing.
    LeaveIfEmpty,
    Repaint,
    NextWindow,
    PrevWindow,
    /// Alt+1..9 to windows 1..9, Alt+0 to window 10.
    WindowByDigit,
    ToggleStatusLines,
    /// Alt+Y: accept the direct session offered in the window in view
    /// (or the one offer waiting, from any window).
    AcceptSession,
    Send,
    Newline,
    Left,
    Right,
    WordLeft,
    WordRight,
    Home,
    End,
    Backspace,
    Delete,
    DeleteWordBack,
    DeleteWordForward,
    KillToStart,
    KillToEnd,
    HistoryPrev,
    HistoryNext,
    PageUp,
    PageDown,
    Complete,
}

/// A key as the table names it.
#[derive(Clone, Copy, Debug)]
pub enum Key {
    /// Without Ctrl or Alt.
    Plain(KeyCode),
    /// With Ctrl held.
    Ctrl(char),
    /// With Alt held (and not Ctrl).
    Alt(char),
    /// A special key with Ctrl held.
    CtrlCode(KeyCode),
    /// A special key with Alt held (and not Ctrl).
    AltCode(KeyCode),
    /// Alt and a digit.
    AltDigit,
}

impl Key {
    fn matches(&self, k: &KeyEvent) -> bool {
        let ctrl = k.modifiers.contains(KeyModifiers::CONTROL);
        let alt = k.modifiers.contains(KeyModifiers::ALT);
        let same_char = |want: char| match k.code {
            KeyCode::Char(c) => c.eq_ignore_ascii_case(&want),
            _ => false,
        };
        match *self {
            Key::Plain(code) => !ctrl && !alt && k.code == code,
            Key::Ctrl(c) => ctrl && same_char(c),
            Key::Alt(c) => alt && !ctrl && same_char(c),
            Key::CtrlCode(code) => ctrl && k.code == code,
            Key::AltCode(code) => alt && !ctrl && k.code == code,
            Key::AltDigit => alt && !ctrl && matches!(k.code, KeyCode::Char('0'..='9')),
        }
    }
}

/// One line of the table: the keys, how help names them, what they do.
pub struct Binding {
    pub keys: &'static [Key],
    /// As `/help` and the README write them.
    pub label: &'static str,
    pub action: KeyAction,
    pub help: &'static str,
}

use Key::*;
use KeyAction as A;

/// Every key of the full-screen client, in the order `/help` lists them.
pub const KEYS: &[Binding] = &[
    Binding {
        keys: &[Plain(KeyCode::Enter)],
        label: "Enter",
        action: A::Send,
        help: "send; in a DM window the line goes to that person",
    },
    Binding {
        keys: &[Ctrl('c')],
        label: "Ctrl+C",
        action: A::ClearOrLeave,
        help: "clear the input; on an empty input, leave",
    },
    Binding {
        keys: &[Ctrl('d')],
        label: "Ctrl+D",
        action: A::LeaveIfEmpty,
        help: "leave, on an empty input",
    },
    Binding {
        keys: &[AltDigit],
        label: "Alt+1 … Alt+9, Alt+0",
        action: A::WindowByDigit,
        help: "go to window 1 … 9, 10",
    },
    Binding {
        keys: &[Ctrl('n')],
        label: "Ctrl+N",
        action: A::NextWindow,
        help: "next window",
    },
    Binding {
        keys: &[Ctrl('p')],
        label: "Ctrl+P",
        action: A::PrevWindow,
        help: "previous window",
    },
    Binding {
        keys: &[Alt('s')],
        label: "Alt+S",
        action: A::ToggleStatusLines,
        help: "show or hide status changes (ACTIVE, BUSY, INACTIVE) in the conversation; the side list always shows them",
    },
    Binding {
        keys: &[Alt('y')],
        label: "Alt+Y",
        action: A::AcceptSession,
        help: "accept the direct session offered in the session window in view (or the one offer waiting)",
    },
    Binding {
        keys: &[Plain(KeyCode::PageUp), Plain(KeyCode::PageDown)],
        label: "PgUp / PgDn",
        action: A::PageUp,
        help: "scroll (also the mouse wheel); PgUp at the top asks the tracker for older history",
    },
    Binding {
        keys: &[Plain(KeyCode::Up), Plain(KeyCode::Down)],
        label: "Up / Down",
        action: A::HistoryPrev,
        help: "the lines you sent before",
    },
    Binding {
        keys: &[Plain(KeyCode::Tab)],
        label: "Tab",
        action: A::Complete,
        help: "complete a name or a command; again for the next match",
    },
    Binding {
        keys: &[
            Plain(KeyCode::Left),
            Plain(KeyCode::Right),
            Ctrl('b'),
            Ctrl('f'),
        ],
        label: "Left / Right (Ctrl+B / Ctrl+F)",
        action: A::Left,
        help: "move by character",
    },
    Binding {
        keys: &[
            CtrlCode(KeyCode::Left),
            CtrlCode(KeyCode::Right),
            AltCode(KeyCode::Left),
            AltCode(KeyCode::Right),
            Alt('b'),
            Alt('f'),
        ],
        label: "Ctrl+Left / Ctrl+Right (Alt+B / Alt+F)",
        action: A::WordLeft,
        help: "move by word",
    },
    Binding {
        keys: &[
            Plain(KeyCode::Home),
            Plain(KeyCode::End),
            Ctrl('a'),
            Ctrl('e'),
        ],
        label: "Home / End (Ctrl+A / Ctrl+E)",
        action: A::Home,
        help: "to the start or end of the input",
    },
    Binding {
        keys: &[Plain(KeyCode::Backspace), Plain(KeyCode::Delete)],
        label: "Backspace / Delete",
        action: A::Backspace,
        help: "delete a character",
    },
    Binding {
        keys: &[
            Ctrl('w'),
            Ctrl('h'),
            CtrlCode(KeyCode::Backspace),
            AltCode(KeyCode::Backspace),
        ],
        label: "Ctrl+W (Alt+Backspace)",
        action: A::DeleteWordBack,
        help: "delete the word before the cursor",
    },
    Binding {
        keys: &[Alt('d')],
        label: "Alt+D",
        action: A::DeleteWordForward,
        help: "delete the word after the cursor",
    },
    Binding {
        keys: &[Ctrl('u'), Ctrl('k')],
        label: "Ctrl+U / Ctrl+K",
        action: A::KillToStart,
        help: "delete to the start or to the end of the input",
    },
    Binding {
        keys: &[AltCode(KeyCode::Enter)],
        label: "Alt+Enter",
        action: A::Newline,
        help: "a line break in the input",
    },
    Binding {
        keys: &[Ctrl('l')],
        label: "Ctrl+L",
        action: A::Repaint,
        help: "redraw the screen",
    },
];

/// What `key` does, if anything in the table.
///
/// A binding may list a pair of keys doing the two directions of one
/// thing (Left / Right): the second key of such a pair maps to the
/// opposite action, which [`opposite`] names.
pub fn lookup(key: &KeyEvent) -> Option<KeyAction> {
    for b in KEYS {
        for (i, k) in b.keys.iter().enumerate() {
            if k.matches(key) {
                return Some(if i % 2 == 1 {
                    opposite(b.action)
                } else {
                    b.action
                });
            }
        }
    }
    None
}

/// The other direction of a paired binding; an action without a pair is
/// its own opposite (Ctrl+W and Ctrl+H both delete a word back).
fn opposite(a: KeyAction) -> KeyAction {
    match a {
        A::PageUp => A::PageDown,
        A::HistoryPrev => A::HistoryNext,
        A::Left => A::Right,
        A::WordLeft => A::WordRight,
        A::Home => A::End,
        A::Backspace => A::Delete,
        A::KillToStart => A::KillToEnd,
        other => other,
    }
}

/// The keys as `/help` shows them.
pub fn help_lines() -> Vec<String> {
    let mut out = vec!["Keys:".to_string()];
    out.extend(KEYS.iter().map(|b| format!("  {:<40} {}", b.label, b.help)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crossterm::event::{KeyEventKind, KeyEventState};

    fn key(code: KeyCode, modifiers: KeyModifiers) -> KeyEvent {
        KeyEvent {
            code,
            modifiers,
            kind: KeyEventKind::Press,
            state: KeyEventState::NONE,
        }
    }

    #[test]
    fn pairs_and_modifiers() {
        let none = KeyModifiers::NONE;
        let ctrl = KeyModifiers::CONTROL;
        let alt = KeyModifiers::ALT;
        assert_eq!(lookup(&key(KeyCode::Left, none)), Some(A::Left));
        assert_eq!(lookup(&key(KeyCode::Right, none)), Some(A::Right));
        assert_eq!(lookup(&key(KeyCode::Char('b'), ctrl)), Some(A::Left));
        assert_eq!(lookup(&key(KeyCode::Char('f'), ctrl)), Some(A::Right));
        assert_eq!(lookup(&key(KeyCode::Right, ctrl)), Some(A::WordRight));
        assert_eq!(lookup(&key(KeyCode::Char('f'), alt)), Some(A::WordRight));
        assert_eq!(lookup(&key(KeyCode::Char('k'), ctrl)), Some(A::KillToEnd));
        assert_eq!(
            lookup(&key(KeyCode::Char('h'), ctrl)),
            Some(A::DeleteWordBack)
        );
        assert_eq!(
            lookup(&key(KeyCode::Backspace, alt)),
            Some(A::DeleteWordBack)
        );
        assert_eq!(lookup(&key(KeyCode::Backspace, none)), Some(A::Backspace));
        assert_eq!(lookup(&key(KeyCode::Delete, none)), Some(A::Delete));
        assert_eq!(lookup(&key(KeyCode::Down, none)), Some(A::HistoryNext));
        assert_eq!(lookup(&key(KeyCode::Enter, alt)), Some(A::Newline));
        assert_eq!(
            lookup(&key(KeyCode::Char('7'), alt)),
            Some(A::WindowByDigit)
        );
        assert_eq!(
            lookup(&key(KeyCode::Char('s'), alt)),
            Some(A::ToggleStatusLines)
        );
        assert_eq!(lookup(&key(KeyCode::Char('x'), none)), None, "typed text");
    }

    /// The README's key table names every key of this table.
    #[test]
    fn readme_lists_every_key() {
        let readme = include_str!("../../../README.md");
        for b in KEYS {
            assert!(
                readme.contains(&format!("| {} |", b.label)),
                "README's key table lacks {:?}",
                b.label
            );
        }
        assert!(help_lines().iter().any(|l| l.contains("Ctrl+C")));
    }
}
