//! Generated tokens into text, piece by piece: bytes that do not yet form
//! whole characters wait, text that may begin a stop sequence waits, and
//! text the consumer has no room for waits too, to go out joined with the
//! next piece.

use tokenizers::Tokenizer;
use tokio::sync::mpsc::{self, error::TrySendError};

#[derive(Default)]
pub(super) struct TextStream {
    /// Tokens `prefix..read` are the last ones already turned into text;
    /// decoding them again gives the context the next piece needs (some
    /// tokenizers decode a token differently at the start of a text).
    prefix: usize,
    read: usize,
    text: String,
    /// Bytes of `text` already sent.
    emitted: usize,
}

impl TextStream {
    /// Decodes what `ids` (every token generated so far) add to the text.
    /// Without `flush`, a piece that ends inside a character waits.
    pub(super) fn push(&mut self, tokenizer: &Tokenizer, ids: &[u32], flush: bool) {
        let decode = |ids: &[u32]| tokenizer.decode(ids, true).unwrap_or_default();
        let before = decode(&ids[self.prefix..self.read]);
        let now = decode(&ids[self.prefix..]);
        if now.len() <= before.len() || (!flush && now.ends_with('\u{FFFD}')) {
            return;
        }
        if let Some(new) = now.get(before.len()..) {
            self.text.push_str(new);
        }
        self.prefix = self.read;
        self.read = ids.len();
    }

    /// Cuts the text at the first stop sequence, if one has appeared.
    pub(super) fn cut_at_stop(&mut self, stops: &[String]) -> bool {
        let from = floor_char_boundary(&self.text, self.emitted);
        let hit = stops
            .iter()
            .filter_map(|s| self.text[from..].find(s.as_str()))
            .min();
        match hit {
            Some(i) => {
                self.text.truncate(from + i);
                true
            }
            None => false,
        }
    }

    /// Sends `tx` the text not yet sent, minus any tail that could begin a
    /// stop sequence (unless the generation is over). Never waits: when
    /// `tx` is full the text stays unsent and goes with the next offer; when
    /// nobody listens any more it counts as sent.
    pub(super) fn offer(&mut self, tx: &mpsc::Sender<String>, stops: &[String], finished: bool) {
        let end = if finished {
            self.text.len()
        } else {
            let tail = &self.text[self.emitted.min(self.text.len())..];
            self.text.len() - held_back(tail, stops)
        };
        if end <= self.emitted {
            return;
        }
        match tx.try_send(self.text[self.emitted..end].to_owned()) {
            Ok(()) | Err(TrySendError::Closed(_)) => self.emitted = end,
            Err(TrySendError::Full(_)) => {}
        }
    }

    pub(super) fn into_text(self) -> String {
        self.text
    }
}

/// Bytes at the end of `tail` that are the start of some stop sequence.
fn held_back(tail: &str, stops: &[String]) -> usize {
    stops
        .iter()
        .flat_map(|s| {
            s.char_indices()
                .skip(1)
                .map(|(i, _)| &s[..i])
                .filter(|prefix| tail.ends_with(prefix))
                .map(str::len)
                .collect::<Vec<_>>()
        })
        .max()
        .unwrap_or(0)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    i = i.min(s.len());
    while !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(text: &str) -> TextStream {
        TextStream {
            text: text.into(),
            ..Default::default()
        }
    }

    fn drain(rx: &mut mpsc::Receiver<String>) -> Vec<String> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    #[test]
    fn text_that_may_start_a_stop_sequence_is_held_back() {
        let stops = vec!["\nUser:".to_owned(), "END".to_owned()];
        assert_eq!(held_back("hello\nUs", &stops), 3);
        assert_eq!(held_back("hello E", &stops), 1);
        assert_eq!(held_back("hello", &stops), 0);
        let (tx, mut rx) = mpsc::channel(8);
        let mut t = stream("answer\nUs");
        t.offer(&tx, &stops, false);
        assert_eq!(drain(&mut rx), ["answer"]);
        t.text.push_str("er: next");
        assert!(t.cut_at_stop(&stops));
        assert_eq!(t.text, "answer");
        t.offer(&tx, &stops, true);
        assert!(drain(&mut rx).is_empty(), "nothing of the stop was sent");
    }

    #[test]
    fn a_full_consumer_gets_the_held_text_joined_with_the_next_piece() {
        let (tx, mut rx) = mpsc::channel(1);
        let mut t = stream("one ");
        t.offer(&tx, &[], false);
        t.text.push_str("two ");
        t.offer(&tx, &[], false);
        t.text.push_str("three");
        t.offer(&tx, &[], false);
        assert_eq!(drain(&mut rx), ["one "], "the rest waits, not the worker");
        t.offer(&tx, &[], true);
        assert_eq!(drain(&mut rx), ["two three"]);
        assert_eq!(t.into_text(), "one two three");
    }

    #[test]
    fn a_consumer_that_went_away_is_not_waited_for() {
        let (tx, rx) = mpsc::channel(1);
        drop(rx);
        let mut t = stream("lost");
        t.offer(&tx, &[], false);
        t.text.push_str(" and more");
        t.offer(&tx, &[], true);
        assert_eq!(t.into_text(), "lost and more");
    }
}
