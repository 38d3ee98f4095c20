//! The input line: text, a cursor, the edits people expect from a shell or
//! irssi, history and Tab completion. Pure; tested without a terminal.

use unicode_segmentation::UnicodeSegmentation;
use unicode_width::UnicodeWidthStr;

use crate::proto::nick::casefold;

/// Most bytes the input holds; a paste past it is cut (one IRC message
/// carries about 400 bytes, so this is already many messages).
pub const MAX_INPUT: usize = 64 * 1024;
/// Lines kept for Up/Down.
pub const HISTORY: usize = 500;
/// How a newline in the input is shown: visibly, so a pasted block is not
/// mistaken for one line.
pub const NEWLINE_MARK: &str = "⏎";

#[derive(Debug, Default)]
pub struct Editor {
    text: String,
    /// A byte offset on a grapheme boundary.
    cursor: usize,
    history: Vec<String>,
    /// Position in `history` while browsing it, and what was being typed
    /// before browsing started.
    browsing: Option<(usize, String)>,
    completion: Option<Completion>,
}

#[derive(Debug)]
struct Completion {
    /// Where the completed word starts.
    start: usize,
    candidates: Vec<String>,
    next: usize,
    /// The cursor right after the last completion: any other edit ends it.
    cursor: usize,
}

fn is_word(g: &str) -> bool {
    g.chars().any(|c| !c.is_whitespace())
}

impl Editor {
    pub fn text(&self) -> &str {
        &self.text
    }

    pub fn cursor(&self) -> usize {
        self.cursor
    }

    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    fn edited(&mut self) {
        self.completion = None;
    }

    /// Inserts typed or pasted text at the cursor. Line breaks become
    /// `\n`; other control characters are dropped, tabs become spaces.
    /// Returns false when the text was cut at [`MAX_INPUT`].
    pub fn insert(&mut self, s: &str) -> bool {
        self.edited();
        let mut clean = String::with_capacity(s.len());
        let mut chars = s.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    clean.push('\n');
                }
                '\n' => clean.push('\n'),
                '\t' => clean.push(' '),
                c if c.is_control() => {}
                c => clean.push(c),
            }
        }
        let room = MAX_INPUT.saturating_sub(self.text.len());
        let whole = clean.len() <= room;
        let clean = crate::proto::sanitize::clip(&clean, room);
        self.text.insert_str(self.cursor, clean);
        self.cursor += clean.len();
        whole
    }

    fn prev_boundary(&self, from: usize) -> Option<usize> {
        self.text[..from]
            .grapheme_indices(true)
            .next_back()
            .map(|(i, _)| i)
    }

    fn next_boundary(&self, from: usize) -> Option<usize> {
        self.text[from..]
            .graphemes(true)
            .next()
            .map(|g| from + g.len())
    }

    /// The start of the word before `from` (skipping spaces first).
    fn word_start(&self, from: usize) -> usize {
        let mut seen_word = false;
        for (i, g) in self.text[..from].grapheme_indices(true).rev() {
            if is_word(g) {
                seen_word = true;
            } else if seen_word {
                return i + g.len();
            }
        }
        0
    }

    /// The end of the word after `from` (skipping spaces first).
    fn word_end(&self, from: usize) -> usize {
        let mut seen_word = false;
        for (i, g) in self.text[from..].grapheme_indices(true) {
            if is_word(g) {
                seen_word = true;
            } else if seen_word {
                return from + i;
            }
        }
        self.text.len()
    }

    pub fn left(&mut self) {
        self.edited();
        if let Some(i) = self.prev_boundary(self.cursor) {
            self.cursor = i;
        }
    }

    pub fn right(&mut self) {
        self.edited();
        if let Some(i) = self.next_boundary(self.cursor) {
            self.cursor = i;
        }
    }

    pub fn home(&mut self) {
        self.edited();
        self.cursor = 0;
    }

    pub fn end(&mut self) {
        self.edited();
        self.cursor = self.text.len();
    }

    pub fn word_left(&mut self) {
        self.edited();
        self.cursor = self.word_start(self.cursor);
    }

    pub fn word_right(&mut self) {
        self.edited();
        self.cursor = self.word_end(self.cursor);
    }

    pub fn backspace(&mut self) {
        self.edited();
        if let Some(i) = self.prev_boundary(self.cursor) {
            self.text.replace_range(i..self.cursor, "");
            self.cursor = i;
        }
    }

    pub fn delete(&mut self) {
        self.edited();
        if let Some(i) = self.next_boundary(self.cursor) {
            self.text.replace_range(self.cursor..i, "");
        }
    }

    /// Ctrl+W, Alt+Backspace.
    pub fn delete_word_back(&mut self) {
        self.edited();
        let start = self.word_start(self.cursor);
        self.text.replace_range(start..self.cursor, "");
        self.cursor = start;
    }

    /// Alt+D.
    pub fn delete_word_forward(&mut self) {
        self.edited();
        let end = self.word_end(self.cursor);
        self.text.replace_range(self.cursor..end, "");
    }

    /// Ctrl+U.
    pub fn kill_to_start(&mut self) {
        self.edited();
        self.text.replace_range(..self.cursor, "");
        self.cursor = 0;
    }

    /// Ctrl+K.
    pub fn kill_to_end(&mut self) {
        self.edited();
        self.text.truncate(self.cursor);
    }

    fn set(&mut self, text: String) {
        self.edited();
        self.text = text;
        self.cursor = self.text.len();
    }

    /// Enter: empties the input and returns what it held, remembered in
    /// the history.
    pub fn take(&mut self) -> String {
        self.browsing = None;
        let text = std::mem::take(&mut self.text);
        self.set(String::new());
        if !text.trim().is_empty() && self.history.last() != Some(&text) {
            if self.history.len() == HISTORY {
                self.history.remove(0);
            }
            self.history.push(text.clone());
        }
        text
    }

    /// Enter on a password: empties the input and returns it, kept
    /// nowhere (not in the history).
    pub fn take_secret(&mut self) -> String {
        self.browsing = None;
        let text = std::mem::take(&mut self.text);
        self.set(String::new());
        text
    }

    /// Up: the previous line of the history.
    pub fn history_prev(&mut self) {
        let at = match &self.browsing {
            Some((i, _)) => *i,
            None => self.history.len(),
        };
        if at == 0 {
            return;
        }
        let draft = match self.browsing.take() {
            Some((_, d)) => d,
            None => self.text.clone(),
        };
        self.browsing = Some((at - 1, draft));
        self.set(self.history[at - 1].clone());
    }

    /// Down: the next line of the history, then what was being typed.
    pub fn history_next(&mut self) {
        let Some((at, draft)) = self.browsing.take() else {
            return;
        };
        if at + 1 < self.history.len() {
            self.browsing = Some((at + 1, draft));
            self.set(self.history[at + 1].clone());
        } else {
            self.set(draft);
        }
    }

    /// Tab: completes the word before the cursor from `commands` (after a
    /// `/` at the start of the line) or `names`; pressed again, offers the
    /// next candidate. A name at the start of the line gets `: `.
    pub fn complete(&mut self, commands: &[&str], names: &[String]) {
        if let Some(c) = &mut self.completion
            && c.cursor == self.cursor
            && !c.candidates.is_empty()
        {
            let word = c.candidates[c.next].clone();
            c.next = (c.next + 1) % c.candidates.len();
            let start = c.start;
            self.text.replace_range(start..self.cursor, &word);
            self.cursor = start + word.len();
            if let Some(c) = &mut self.completion {
                c.cursor = self.cursor;
            }
            return;
        }
        let start = self.text[..self.cursor]
            .rfind([' ', '\n'])
            .map_or(0, |i| i + 1);
        let word = &self.text[start..self.cursor];
        if word.is_empty() {
            return;
        }
        let mut candidates: Vec<String> = if start == 0 && word.starts_with('/') {
            let prefix = word[1..].to_ascii_lowercase();
            commands
                .iter()
                .filter(|c| c.starts_with(&prefix))
                .map(|c| format!("/{c} "))
                .collect()
        } else {
            let prefix = casefold(word.trim_start_matches('@'));
            let at = if word.starts_with('@') { "@" } else { "" };
            let suffix = if start == 0 && at.is_empty() && !word.starts_with('#') {
                ": "
            } else {
                " "
            };
            names
                .iter()
                .filter(|n| casefold(n).starts_with(&prefix))
                .map(|n| format!("{at}{n}{suffix}"))
                .collect()
        };
        candidates.sort();
        candidates.dedup();
        if candidates.is_empty() {
            return;
        }
        self.completion = Some(Completion {
            start,
            candidates,
            next: 0,
            cursor: self.cursor,
        });
        self.complete(commands, names);
    }

    /// What the input line shows, with newlines made visible, and the
    /// column of the cursor in it.
    pub fn display(&self) -> (String, usize) {
        let before = self.text[..self.cursor].replace('\n', NEWLINE_MARK);
        let col = before.width();
        let after = self.text[self.cursor..].replace('\n', NEWLINE_MARK);
        (before + &after, col)
    }

    /// The lines Enter would send (a paste keeps its line breaks).
    pub fn line_count(&self) -> usize {
        self.text.lines().filter(|l| !l.trim().is_empty()).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ed(text: &str) -> Editor {
        let mut e = Editor::default();
        e.insert(text);
        e
    }

    #[test]
    fn cursor_moves_by_characters_and_words() {
        let mut e = ed("héllo wörld 漢字");
        e.left();
        e.left();
        assert_eq!(&e.text()[e.cursor()..], "漢字");
        e.word_left();
        assert_eq!(&e.text()[e.cursor()..], "wörld 漢字");
        e.word_left();
        assert_eq!(e.cursor(), 0);
        e.word_right();
        assert_eq!(&e.text()[..e.cursor()], "héllo");
        e.right();
        e.right();
        assert_eq!(&e.text()[..e.cursor()], "héllo w");
        e.end();
        e.backspace();
        assert_eq!(e.text(), "héllo wörld 漢");
        e.home();
        e.delete();
        assert_eq!(e.text(), "éllo wörld 漢");
    }

    #[test]
    fn emoji_and_combining_marks_are_one_step() {
        // A family emoji (ZWJ sequence) and an e with a combining accent.
        let mut e = ed("a👨‍👩‍👧e\u{301}");
        e.backspace();
        assert_eq!(e.text(), "a👨‍👩‍👧");
        e.backspace();
        assert_eq!(e.text(), "a");
    }

    #[test]
    fn word_and_line_deletes() {
        let mut e = ed("one two  three");
        e.delete_word_back();
        assert_eq!(e.text(), "one two  ");
        e.delete_word_back();
        assert_eq!(e.text(), "one ");
        let mut e = ed("one two three");
        e.home();
        e.delete_word_forward();
        assert_eq!(e.text(), " two three");
        e.word_right();
        e.kill_to_end();
        assert_eq!(e.text(), " two");
        e.left();
        e.kill_to_start();
        assert_eq!((e.text(), e.cursor()), ("o", 0));
    }

    #[test]
    fn paste_keeps_lines_and_drops_controls() {
        let e = ed("first\r\nsecond\rthird\n\x1b[2J\x07tab\there");
        assert_eq!(e.text(), "first\nsecond\nthird\n[2Jtab here");
        assert_eq!(e.line_count(), 4);
        let (shown, col) = e.display();
        assert_eq!(shown, "first⏎second⏎third⏎[2Jtab here");
        assert_eq!(col, shown.width());
        let mut e = Editor::default();
        assert!(!e.insert(&"x".repeat(MAX_INPUT + 5)));
        assert_eq!(e.text().len(), MAX_INPUT);
    }

    #[test]
    fn history_browses_and_returns_to_the_draft() {
        let mut e = Editor::default();
        for l in ["one", "two", "two", "  "] {
            e.insert(l);
            e.take();
        }
        e.insert("draft");
        e.history_prev();
        assert_eq!(e.text(), "two");
        e.history_prev();
        assert_eq!(e.text(), "one");
        e.history_prev();
        assert_eq!(e.text(), "one");
        e.history_next();
        assert_eq!(e.text(), "two");
        e.history_next();
        assert_eq!(e.text(), "draft");
        e.history_next();
        assert_eq!(e.text(), "draft");
    }

    #[test]
    fn tab_completes_names_and_commands() {
        let names: Vec<String> = ["alice", "Albert", "bob", "#general"]
            .map(String::from)
            .to_vec();
        let cmds = ["help", "info", "join"];
        let mut e = ed("al");
        e.complete(&cmds, &names);
        assert_eq!(e.text(), "Albert: ");
        e.complete(&cmds, &names);
        assert_eq!(e.text(), "alice: ");
        e.complete(&cmds, &names);
        assert_eq!(e.text(), "Albert: ");
        e.insert("hi b");
        e.complete(&cmds, &names);
        assert_eq!(e.text(), "Albert: hi bob ");
        let mut e = ed("/in");
        e.complete(&cmds, &names);
        assert_eq!(e.text(), "/info ");
        e.insert("B");
        e.complete(&cmds, &names);
        assert_eq!(e.text(), "/info bob ");
        let mut e = ed("@a");
        e.complete(&cmds, &names);
        assert_eq!(e.text(), "@Albert ");
        let mut e = ed("zz");
        e.complete(&cmds, &names);
        assert_eq!(e.text(), "zz");
    }
}
