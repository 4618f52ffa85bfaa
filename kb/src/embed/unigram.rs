//! SentencePiece Unigram tokenization for multilingual-e5-small: the best-scoring segmentation of a
//! text into the model's 250k pieces (Viterbi, exactly as the `tokenizers` crate's optimised Unigram
//! encoder decides it, ties and unknown characters included), with the pieces held in an `fst` map
//! — a few MB where `tokenizers`' byte trie of hash maps takes ~250 MB of the server's memory.

use fst::raw::Output;
use fst::{Map, MapBuilder};

use crate::error::{KbError, Result};

/// What an unknown character costs below the lowest piece score (SentencePiece's `kUnkPenalty`).
const UNK_PENALTY: f64 = 10.0;

/// The pieces (string → id, the last id where a string repeats) and their scores.
pub struct Unigram {
    pieces: Map<Vec<u8>>,
    scores: Vec<f64>,
    unk: u32,
    unk_score: f64,
}

/// The best path ending at one byte offset: the piece that ends there, where it starts, the total.
#[derive(Clone, Copy)]
struct Best {
    id: u32,
    starts_at: Option<usize>,
    score: f64,
}

impl Unigram {
    /// Builds the model from `(piece, score)` in id order, `unk` naming the unknown piece.
    pub fn new(pieces: &[(String, f64)], unk: u32) -> Result<Self> {
        if unk as usize >= pieces.len() {
            return Err(KbError::Tokenizer(format!(
                "unknown-piece id {unk} outside a vocabulary of {}",
                pieces.len()
            )));
        }
        let mut sorted: Vec<(&[u8], u64)> = pieces
            .iter()
            .enumerate()
            .map(|(id, (p, _))| (p.as_bytes(), id as u64))
            .collect();
        // By bytes, and for a repeated string the last id first so that it is the one kept.
        sorted.sort_by(|a, b| a.0.cmp(b.0).then(b.1.cmp(&a.1)));
        sorted.dedup_by(|later, first| later.0 == first.0);
        let mut builder = MapBuilder::memory();
        for (bytes, id) in sorted {
            builder
                .insert(bytes, id)
                .map_err(|e| KbError::Tokenizer(e.to_string()))?;
        }
        let pieces_map = Map::new(
            builder
                .into_inner()
                .map_err(|e| KbError::Tokenizer(e.to_string()))?,
        )
        .map_err(|e| KbError::Tokenizer(e.to_string()))?;
        let scores: Vec<f64> = pieces.iter().map(|(_, s)| *s).collect();
        let min_score = scores.iter().copied().fold(f64::INFINITY, f64::min);
        Ok(Self {
            pieces: pieces_map,
            scores,
            unk,
            unk_score: min_score - UNK_PENALTY,
        })
    }

    /// The pieces that `text[start..]` begins with, as (end offset, id), shortest first.
    fn prefixes(&self, text: &str, start: usize, mut found: impl FnMut(usize, u32)) {
        let fst = self.pieces.as_fst();
        let mut node = fst.root();
        let mut out = Output::zero();
        for (i, &b) in text.as_bytes()[start..].iter().enumerate() {
            let Some(t) = node.find_input(b).map(|at| node.transition(at)) else {
                return;
            };
            out = out.cat(t.out);
            node = fst.node(t.addr);
            if node.is_final() {
                found(start + i + 1, out.cat(node.final_output()).value() as u32);
            }
        }
    }

    /// The ids of the best segmentation of `text`; runs of characters no piece covers become one
    /// unknown piece (or the piece that run happens to spell).
    pub fn encode(&self, text: &str) -> Vec<u32> {
        let size = text.len();
        let mut best = vec![
            Best {
                id: 0,
                starts_at: None,
                score: 0.0,
            };
            size + 1
        ];
        let mut start = 0;
        while start < size {
            let so_far = best[start].score;
            let char_len = text[start..].chars().next().map_or(1, char::len_utf8);
            let mut covers_char = false;
            self.prefixes(text, start, |end, id| {
                let candidate = self.scores[id as usize] + so_far;
                let b = &mut best[end];
                if b.starts_at.is_none() || candidate > b.score {
                    *b = Best {
                        id,
                        starts_at: Some(start),
                        score: candidate,
                    };
                }
                covers_char |= end - start == char_len;
            });
            if !covers_char {
                let candidate = self.unk_score + so_far;
                let b = &mut best[start + char_len];
                if b.starts_at.is_none() || candidate > b.score {
                    *b = Best {
                        id: self.unk,
                        starts_at: Some(start),
                        score: candidate,
                    };
                }
            }
            start += char_len;
        }
        let mut ids = Vec::new();
        let mut unknown_run_start: Option<usize> = None;
        let mut unknown_run_end = size;
        let mut end = size;
        while end > 0 {
            let node = best[end];
            let Some(starts_at) = node.starts_at else {
                break;
            };
            if node.id == self.unk {
                if unknown_run_start.is_none() {
                    unknown_run_end = end;
                }
                unknown_run_start = Some(starts_at);
            } else {
                if let Some(s) = unknown_run_start.take() {
                    ids.push(self.fused_unknown(&text[s..unknown_run_end]));
                }
                ids.push(node.id);
            }
            end = starts_at;
        }
        if let Some(s) = unknown_run_start {
            ids.push(self.fused_unknown(&text[s..unknown_run_end]));
        }
        ids.reverse();
        ids
    }

    /// The id of a run of unknown characters: the piece it spells, if any, else the unknown piece.
    fn fused_unknown(&self, run: &str) -> u32 {
        self.pieces
            .get(run.as_bytes())
            .map_or(self.unk, |id| id as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model() -> Unigram {
        let pieces = [
            ("<unk>", 0.0),
            ("▁", -2.0),
            ("a", -3.0),
            ("b", -3.0),
            ("ab", -4.0),
            ("▁ab", -4.5),
            ("茶", -5.0),
            ("茶叶", -6.0),
            ("ab", -3.5),
        ];
        let pieces: Vec<(String, f64)> = pieces.iter().map(|(p, s)| (p.to_string(), *s)).collect();
        Unigram::new(&pieces, 0).expect("model")
    }

    #[test]
    fn picks_the_best_scoring_segmentation() {
        let m = model();
        // "▁ab" (-4.5) beats "▁" + "ab" (-2 - 3.5) and "▁" + "a" + "b".
        assert_eq!(m.encode("▁ab"), vec![5]);
        // A repeated piece keeps its last id (and that id's score).
        assert_eq!(m.encode("ab"), vec![8]);
        assert_eq!(m.encode("茶叶"), vec![7]);
        assert_eq!(m.encode(""), Vec::<u32>::new());
    }

    #[test]
    fn unknown_characters_fuse_into_one_unknown_piece() {
        let m = model();
        assert_eq!(m.encode("xyz"), vec![0]);
        assert_eq!(m.encode("a🙂🙂b"), vec![2, 0, 3]);
        assert_eq!(m.encode("🙂a"), vec![0, 2]);
    }

    #[test]
    fn an_unknown_piece_id_outside_the_vocabulary_is_refused() {
        let pieces = vec![("a".to_string(), -1.0)];
        assert!(Unigram::new(&pieces, 3).is_err());
    }
}
