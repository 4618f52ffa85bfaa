//! multilingual-e5-small from an `E5S1` file: the Unigram tokenizer built from the stored pieces and
//! normalisation table, and the encoder dequantised to f32 (word table kept Q4_0).

use std::collections::HashMap;
use std::path::Path;

use candle_core::{Device, Tensor};
use candle_nn::LayerNorm;
use tokenizers::models::unigram::Unigram;
use tokenizers::pre_tokenizers::metaspace::{Metaspace, PrependScheme};
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{Tokenizer, TruncationParams};

use super::bert::{
    BertConfig, BertEncoder, LayerNames, LayerWeights, WeightSource, WordEmbeddings,
};
use super::e5s1::E5S1File;
use super::{EmbedModel, TextRole};
use crate::error::{KbError, Result};

/// The tokenizer: per-codepoint normalisation, whitespace collapsing, then SentencePiece Unigram.
pub struct E5Tokenizer {
    normalisation: HashMap<char, Vec<char>>,
    inner: Tokenizer,
}

impl E5Tokenizer {
    fn new(file: &E5S1File, max_positions: usize) -> Result<Self> {
        let v = &file.vocab;
        let unigram = Unigram::from(v.pieces.clone(), Some(v.unk as usize), false)
            .map_err(|e| KbError::Tokenizer(e.to_string()))?;
        let mut inner = Tokenizer::new(unigram);
        inner.with_pre_tokenizer(Some(Metaspace::new(
            '\u{2581}',
            PrependScheme::Always,
            false,
        )));
        let bos = v.pieces[v.bos as usize].0.clone();
        let eos = v.pieces[v.eos as usize].0.clone();
        let template = TemplateProcessing::builder()
            .try_single(format!("{bos} $A {eos}"))
            .map_err(KbError::Tokenizer)?
            .special_tokens(vec![(bos, v.bos), (eos, v.eos)])
            .build()
            .map_err(|e| KbError::Tokenizer(e.to_string()))?;
        inner.with_post_processor(Some(template));
        inner
            .with_truncation(Some(TruncationParams {
                max_length: max_positions,
                ..Default::default()
            }))
            .map_err(|e| KbError::Tokenizer(e.to_string()))?;
        Ok(Self {
            normalisation: v.normalisation.clone(),
            inner,
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
        let enc = self
            .inner
            .encode(self.normalise(text), true)
            .map_err(|e| KbError::Tokenizer(e.to_string()))?;
        Ok(enc.get_ids().to_vec())
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
        let n: usize = shape.iter().product();
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

impl E5Model {
    /// Loads `e5-small-q4.bin`.
    pub fn load(path: &Path) -> Result<Self> {
        let file = E5S1File::open(path)?;
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
            blocks: file.q4_bytes("emb.word", hd.vocab_rows * h)?.into(),
            rows: hd.vocab_rows,
            dim: h,
        };
        let positions = Tensor::from_vec(
            file.f32_tensor("emb.pos", cfg.max_positions * h)?,
            (cfg.max_positions, h),
            &device,
        )?;
        let types = file.f32_tensor("emb.type", 2 * h)?;
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
                path: path.to_path_buf(),
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
