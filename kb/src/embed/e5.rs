//! multilingual-e5-small from an `E5S1` file: the Unigram tokenizer (`unigram.rs`) over the stored pieces and
//! normalisation table, and the encoder dequantised to f32 (word table kept Q4_0).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::LayerNorm;

use super::bert::{
    BertConfig, BertEncoder, LayerNames, LayerWeights, WeightSource, WordEmbeddings,
};
use super::e5s1::E5S1File;
use super::unigram::Unigram;
use super::{EmbedModel, TextRole};
use crate::error::{KbError, Result};

/// The tokenizer: per-codepoint normalisation, whitespace collapsing, spaces as `▁` with one
/// leading, then SentencePiece Unigram (`<s>` … `</s>` around at most `max_positions` ids).
pub struct E5Tokenizer {
    normalisation: HashMap<char, Vec<char>>,
    unigram: Unigram,
    bos: u32,
    eos: u32,
    max_positions: usize,
}

/// SentencePiece's word-boundary mark, standing for a space.
const METASPACE: char = '\u{2581}';

impl E5Tokenizer {
    fn new(file: &E5S1File, max_positions: usize) -> Result<Self> {
        let v = &file.vocab;
        let in_vocab = |id: u32| (id as usize) < v.pieces.len();
        if !in_vocab(v.bos) || !in_vocab(v.eos) || max_positions < 2 {
            return Err(KbError::Tokenizer(
                "sentence markers outside the vocabulary".into(),
            ));
        }
        Ok(Self {
            normalisation: v.normalisation.clone(),
            unigram: Unigram::new(&v.pieces, v.unk)?,
            bos: v.bos,
            eos: v.eos,
            max_positions,
        })
    }

    /// Applies the stored per-codepoint map and collapses runs of spaces.
    pub fn normalise(&self, text: &str) -> String {
        let mut out = String::with_capacity(text.len());
        for ch in text.chars() {
            match self.normalisation.get(&ch) {
                Some(repl) => repl.iter().for_each(|c| push_collapsing(&mut out, *c)),
                None => push_collapsing(&mut out, ch),
            }
        }
        out
    }

    /// Token ids with `<s>` … `</s>`, truncated to the model's positions.
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let mut pieces_text: String = self
            .normalise(text)
            .chars()
            .map(|c| if c == ' ' { METASPACE } else { c })
            .collect();
        if !pieces_text.is_empty() && !pieces_text.starts_with(METASPACE) {
            pieces_text.insert(0, METASPACE);
        }
        let mut ids = self.unigram.encode(&pieces_text);
        ids.truncate(self.max_positions - 2);
        ids.insert(0, self.bos);
        ids.push(self.eos);
        Ok(ids)
    }
}

fn push_collapsing(out: &mut String, ch: char) {
    if ch == ' ' && out.ends_with(' ') {
        return;
    }
    out.push(ch);
}

struct E5Weights<'a> {
    file: &'a E5S1File,
    device: &'a Device,
}

impl WeightSource for E5Weights<'_> {
    fn tensor(&self, name: &str, shape: &[usize]) -> Result<Tensor> {
        let n = elements(self.file, shape)?;
        // Linear weights (2-D) are Q4_0; vectors are f32.
        let values = if shape.len() == 2 {
            self.file.q4_dequantized(name, n)?
        } else {
            self.file.f32_tensor(name, n)?
        };
        Ok(Tensor::from_vec(values, shape, self.device)?)
    }
}

fn layer_names(l: usize) -> LayerNames {
    let n = |s: &str| format!("l{l}.{s}");
    LayerNames {
        q_w: n("q.w"),
        q_b: n("q.b"),
        k_w: n("k.w"),
        k_b: n("k.b"),
        v_w: n("v.w"),
        v_b: n("v.b"),
        out_w: n("ao.w"),
        out_b: n("ao.b"),
        attn_norm_w: n("aln.w"),
        attn_norm_b: n("aln.b"),
        ffn_in_w: n("fi.w"),
        ffn_in_b: n("fi.b"),
        ffn_out_w: n("fo.w"),
        ffn_out_b: n("fo.b"),
        ffn_norm_w: n("oln.w"),
        ffn_norm_b: n("oln.b"),
    }
}

/// multilingual-e5-small, ready to embed.
pub struct E5Model {
    tokenizer: std::sync::Arc<E5Tokenizer>,
    encoder: BertEncoder,
}

/// The element count of a tensor of `shape`, refused when a hostile header makes it overflow.
fn elements(file: &E5S1File, shape: &[usize]) -> Result<usize> {
    shape
        .iter()
        .try_fold(1usize, |n, d| n.checked_mul(*d))
        .ok_or_else(|| KbError::ModelFormat {
            path: file.path().to_path_buf(),
            reason: format!("tensor shape {shape:?} is too large"),
        })
}

impl E5Model {
    /// Loads `e5-small-q4.bin`.
    pub fn load(path: &Path) -> Result<Self> {
        Self::from_file(E5S1File::open(path)?)
    }

    /// The model in a parsed file (every size in its header checked against the file).
    pub fn from_file(file: E5S1File) -> Result<Self> {
        let path = file.path().to_path_buf();
        let hd = &file.header;
        let cfg = BertConfig {
            hidden: hd.hidden,
            layers: hd.layers,
            heads: hd.heads,
            ffn: hd.ffn,
            max_positions: hd.max_positions,
            layer_norm_eps: hd.layer_norm_eps,
        };
        let device = Device::Cpu;
        let src = E5Weights {
            file: &file,
            device: &device,
        };
        let h = cfg.hidden;
        let word = WordEmbeddings::Q4 {
            blocks: file
                .q4_bytes("emb.word", elements(&file, &[hd.vocab_rows, h])?)?
                .into(),
            rows: hd.vocab_rows,
            dim: h,
        };
        let positions = Tensor::from_vec(
            file.f32_tensor("emb.pos", elements(&file, &[cfg.max_positions, h])?)?,
            (cfg.max_positions, h),
            &device,
        )?;
        let types = file.f32_tensor("emb.type", elements(&file, &[2, h])?)?;
        let token_type = Tensor::from_slice(&types[..h], h, &device)?;
        let embed_norm = LayerNorm::new(
            src.tensor("emb.ln.w", &[h])?,
            src.tensor("emb.ln.b", &[h])?,
            cfg.layer_norm_eps,
        );
        let layers = (0..cfg.layers)
            .map(|l| LayerWeights::load(&src, &layer_names(l), &cfg))
            .collect::<Result<Vec<_>>>()?;
        let tokenizer = E5Tokenizer::new(&file, cfg.max_positions)?;
        if file.vocab.pieces.len() > hd.vocab_rows {
            return Err(KbError::ModelFormat {
                path,
                reason: "vocabulary larger than the embedding table".into(),
            });
        }
        let encoder = BertEncoder {
            cfg,
            word,
            positions,
            token_type,
            embed_norm,
            layers,
            device,
        };
        Ok(Self {
            tokenizer: std::sync::Arc::new(tokenizer),
            encoder,
        })
    }

    /// The tokenizer (exposed for tests and token counting).
    pub fn tokenizer(&self) -> &E5Tokenizer {
        &self.tokenizer
    }
}

impl EmbedModel for E5Model {
    fn tokenize(&self, text: &str, role: TextRole) -> Result<Vec<u32>> {
        let prefix = match role {
            TextRole::Query => "query: ",
            TextRole::Passage => "passage: ",
        };
        self.tokenizer.encode(&format!("{prefix}{text}"))
    }

    fn encoder(&self) -> &BertEncoder {
        &self.encoder
    }

    fn encoder_mut(&mut self) -> &mut BertEncoder {
        &mut self.encoder
    }

    fn with_encoder(&self, encoder: BertEncoder) -> Box<dyn EmbedModel> {
        Box::new(Self {
            tokenizer: std::sync::Arc::clone(&self.tokenizer),
            encoder,
        })
    }
}
