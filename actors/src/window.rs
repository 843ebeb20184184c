//! The chat window: the bounded slice of a lead's history that a lead actor keeps in memory
//! and shows the model.
//!
//! Owns: the two bounds (a message count and a byte budget) and the accounting of the bytes
//! the window holds. Must not: grow with the length of the stored history — a lead with
//! 10,000 stored messages costs what a lead with 50 does. The seed's workers held
//! 500-message histories as dictionaries and were OOM-killed; this is the fix.

use std::collections::VecDeque;
use std::mem::size_of;

use crate::ports::{ChatLine, Role};

/// Bounds of a window. Both always hold after any operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct WindowLimits {
    pub max_messages: usize,
    pub max_bytes: usize,
}

#[derive(Debug, Clone)]
pub struct ChatWindow {
    limits: WindowLimits,
    lines: VecDeque<ChatLine>,
    text_bytes: usize,
}

/// A line longer than the whole byte budget keeps its beginning, with this marker: the
/// opening of a long text usually carries the question.
const CUT_MARKER: &str = " […]";

impl ChatWindow {
    pub fn new(limits: WindowLimits) -> Self {
        Self {
            limits,
            lines: VecDeque::with_capacity(limits.max_messages.min(64)),
            text_bytes: 0,
        }
    }

    /// Builds a window from history, oldest first; keeps only what the limits allow.
    pub fn from_history(limits: WindowLimits, history: impl IntoIterator<Item = ChatLine>) -> Self {
        let mut w = Self::new(limits);
        for line in history {
            w.push(line);
        }
        w
    }

    /// Appends a line, evicting the oldest lines until both bounds hold again.
    pub fn push(&mut self, mut line: ChatLine) {
        if self.limits.max_messages == 0 || self.limits.max_bytes == 0 {
            return;
        }
        if line.text.len() > self.limits.max_bytes {
            line.text = cut_to_bytes(&line.text, self.limits.max_bytes);
        }
        // Evict by count before pushing so the deque never grows past its bound, even
        // for a moment (its capacity is part of what the window accounts for).
        while self.lines.len() >= self.limits.max_messages {
            self.pop_oldest();
        }
        self.text_bytes += line.text.len();
        self.lines.push_back(line);
        while self.text_bytes > self.limits.max_bytes {
            self.pop_oldest();
        }
    }

    fn pop_oldest(&mut self) {
        if let Some(old) = self.lines.pop_front() {
            self.text_bytes -= old.text.len();
        }
    }

    pub fn push_text(&mut self, role: Role, text: &str) {
        self.push(ChatLine {
            role,
            text: text.to_string(),
        });
    }

    pub fn lines(&self) -> impl ExactSizeIterator<Item = &ChatLine> {
        self.lines.iter()
    }

    pub fn len(&self) -> usize {
        self.lines.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lines.is_empty()
    }

    pub fn text_bytes(&self) -> usize {
        self.text_bytes
    }

    /// The bytes this window accounts for: its text plus the per-line bookkeeping. This is
    /// the figure the supervisor compares with the lead's memory budget.
    pub fn accounted_bytes(&self) -> usize {
        size_of::<Self>() + self.lines.capacity() * size_of::<ChatLine>() + self.text_bytes
    }

    pub fn limits(&self) -> WindowLimits {
        self.limits
    }
}

fn cut_to_bytes(text: &str, max_bytes: usize) -> String {
    if max_bytes <= CUT_MARKER.len() {
        let mut end = max_bytes;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        return text[..end].to_string();
    }
    let mut end = max_bytes - CUT_MARKER.len();
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}{CUT_MARKER}", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(i: usize) -> ChatLine {
        ChatLine {
            role: if i.is_multiple_of(2) {
                Role::Lead
            } else {
                Role::Agent
            },
            text: format!("message number {i}"),
        }
    }

    #[test]
    fn the_window_keeps_the_newest_messages_within_the_count() {
        let w = ChatWindow::from_history(
            WindowLimits {
                max_messages: 5,
                max_bytes: 10_000,
            },
            (0..100).map(line),
        );
        let texts: Vec<_> = w.lines().map(|l| l.text.clone()).collect();
        assert_eq!(texts.len(), 5);
        assert_eq!(texts[0], "message number 95");
        assert_eq!(texts[4], "message number 99");
    }

    #[test]
    fn the_window_keeps_within_its_byte_budget() {
        let limits = WindowLimits {
            max_messages: 1000,
            max_bytes: 100,
        };
        let w = ChatWindow::from_history(limits, (0..10_000).map(line));
        assert!(w.text_bytes() <= 100);
        assert_eq!(
            w.text_bytes(),
            w.lines().map(|l| l.text.len()).sum::<usize>()
        );
        assert_eq!(w.lines().last().unwrap().text, "message number 9999");
    }

    #[test]
    fn a_line_larger_than_the_budget_is_cut_not_dropped() {
        let mut w = ChatWindow::new(WindowLimits {
            max_messages: 10,
            max_bytes: 50,
        });
        w.push_text(Role::Lead, &"ü".repeat(200));
        assert_eq!(w.len(), 1);
        assert!(w.text_bytes() <= 50);
        assert!(w.lines().next().unwrap().text.ends_with(CUT_MARKER));
    }

    #[test]
    fn accounted_memory_does_not_grow_with_history_length() {
        let limits = WindowLimits {
            max_messages: 50,
            max_bytes: 8192,
        };
        let small = ChatWindow::from_history(limits, (0..50).map(line));
        let big = ChatWindow::from_history(limits, (0..10_000).map(line));
        // The big history's lines are a few bytes longer ("9999" vs "49"), nothing more.
        assert!(big.accounted_bytes() <= small.accounted_bytes() + 50 * 4);
    }
}
