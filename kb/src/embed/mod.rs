//! Sentence embedding: the `Embedder` trait, the bundled local models, and length-bucketed batching.

pub mod activation;
pub mod bert;
pub mod concat;
pub mod e5;
pub mod e5s1;
pub mod infer;
pub mod kernels;
pub mod minilm;
pub mod testing;
pub mod unigram;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{KbError, Result};

/// Whether a text is a question (query) or a piece of content (passage). Models such as e5 embed
/// the two differently; symmetric models ignore it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TextRole {
    Query,
    Passage,
}

/// Turns texts into L2-normalised vectors. Implementations are thread-safe and blocking: call them
/// from a blocking thread in async code.
pub trait Embedder: Send + Sync {
    /// Stable model name stored with every knowledge base built by it.
    fn model_name(&self) -> &str;
    /// Vector length.
    fn dim(&self) -> usize;
    /// One vector per text, in order.
    fn embed(&self, texts: &[&str], role: TextRole) -> Result<Vec<Vec<f32>>>;
    /// This model with a fine-tuned delta applied, sharing every weight the delta does not
    /// replace; `None` when the embedder cannot be tuned.
    fn tuned(&self, _delta: &crate::finetune::EncoderDelta) -> Option<Result<Arc<dyn Embedder>>> {
        None
    }
    /// The encoders a joined embedder is made of (`concat::ConcatEmbedder`), so that caches can
    /// keep each one's vectors under its own name; `None` for a single encoder.
    fn joined_parts(&self) -> Option<&[Arc<dyn Embedder>]> {
        None
    }
}

/// A transformer model split into tokenisation and a batched forward pass.
pub trait EmbedModel: Send + Sync {
    fn tokenize(&self, text: &str, role: TextRole) -> Result<Vec<u32>>;
    /// Pooled vectors of already-tokenised texts.
    fn encode(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.encoder().encode(batch)
    }
    fn dim(&self) -> usize {
        self.encoder().cfg.hidden
    }
    /// The transformer (fine-tuning reads and replaces its layers).
    fn encoder(&self) -> &bert::BertEncoder;
    fn encoder_mut(&mut self) -> &mut bert::BertEncoder;
    /// The same model (tokenizer shared) running `encoder`.
    fn with_encoder(&self, encoder: bert::BertEncoder) -> Box<dyn EmbedModel>;
}

/// The models Kefu ships support for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelName {
    /// Chinese + English (+~100 languages). The default.
    MultilingualE5Small,
    /// English only, about twice as fast.
    AllMiniLmL6V2,
}

/// The default model name.
pub const DEFAULT_MODEL: &str = "multilingual-e5-small";

impl ModelName {
    /// Parses a model name as used on the command line.
    pub fn parse(name: &str) -> Result<Self> {
        match name.trim().to_ascii_lowercase().as_str() {
            "multilingual-e5-small" | "e5-small" | "e5" => Ok(Self::MultilingualE5Small),
            "all-minilm-l6-v2" | "minilm" => Ok(Self::AllMiniLmL6V2),
            _ => Err(KbError::UnknownModel(name.to_string())),
        }
    }

    /// Canonical name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MultilingualE5Small => "multilingual-e5-small",
            Self::AllMiniLmL6V2 => "all-minilm-l6-v2",
        }
    }

    /// The file whose presence means the model is installed.
    fn marker(self, dir: &Path) -> PathBuf {
        match self {
            Self::MultilingualE5Small => dir.join("e5-small-q4.bin"),
            Self::AllMiniLmL6V2 => dir.join("model.safetensors"),
        }
    }
}

/// Checks that model `name` is installed under `model_dir` without loading it (cheap: for failing
/// fast at start-up); returns the model and its directory.
pub fn ensure_installed(name: &str, model_dir: &Path) -> Result<(ModelName, PathBuf)> {
    let model = ModelName::parse(name)?;
    let dir = model_dir.join(model.as_str());
    if !model.marker(&dir).is_file() {
        return Err(KbError::ModelMissing {
            name: model.as_str().to_string(),
            dir,
        });
    }
    Ok((model, dir))
}

/// Where models live: `KEFU_MODEL_DIR`, else `./models`.
pub fn default_model_dir() -> PathBuf {
    std::env::var_os("KEFU_MODEL_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("models"))
}

/// Loads a model from `<model_dir>/<name>/`; a missing model is a clear error naming the script that
/// fetches it (nothing is ever downloaded at run time).
pub fn load_embedder(name: &str, model_dir: &Path) -> Result<Arc<dyn Embedder>> {
    Ok(Arc::new(load_batching(name, model_dir, true)?))
}

/// Loads a model as `load_embedder` does; `centred = false` skips language centring (e5 only), giving
/// the encoder's raw pooled vectors (used to check the encoder against reference implementations).
pub fn load_batching(name: &str, model_dir: &Path, centred: bool) -> Result<BatchingEmbedder> {
    let (model, dir) = ensure_installed(name, model_dir)?;
    let inner: Box<dyn EmbedModel> = match model {
        ModelName::MultilingualE5Small => Box::new(e5::E5Model::load(&model.marker(&dir))?),
        ModelName::AllMiniLmL6V2 => Box::new(minilm::MiniLmModel::load(&dir)?),
    };
    let mut embedder = BatchingEmbedder::new(model.as_str(), inner);
    if centred && model == ModelName::MultilingualE5Small {
        embedder.centering = Some(LanguageCentering::e5_small()?);
    }
    Ok(embedder)
}

/// Loads `name` and applies a fine-tuned encoder delta to it (see `BatchingEmbedder::with_delta`).
pub fn load_tuned(
    name: &str,
    model_dir: &Path,
    delta: &crate::finetune::EncoderDelta,
) -> Result<Arc<dyn Embedder>> {
    Ok(Arc::new(
        load_batching(name, model_dir, true)?.with_delta(delta)?,
    ))
}

/// The separator between a stock model's name and a fine-tuned encoder's id
/// (`multilingual-e5-small+ft-1a2b3c4d5e6f`).
pub const TUNED_SEPARATOR: &str = "+ft-";

/// Where fine-tuned retrieval encoders live: `<data_dir>/encoders/<id>/`.
pub fn encoders_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("encoders")
}

/// Loads a model by name: a stock model (`load_embedder`), or `<stock>+ft-<id>`, the stock model
/// with the fine-tuned encoder saved under `encoders/<id>` applied.
pub fn load_named(name: &str, model_dir: &Path, encoders: &Path) -> Result<Arc<dyn Embedder>> {
    match name.split_once(TUNED_SEPARATOR) {
        None => load_embedder(name, model_dir),
        Some((base, id)) => load_tuned(base, model_dir, &load_delta(encoders, name, id)?),
    }
}

/// The fine-tuned retrieval encoder `id` (of model name `name`) saved under `encoders`.
pub fn load_delta(encoders: &Path, name: &str, id: &str) -> Result<crate::finetune::EncoderDelta> {
    let dir = encoders.join(id);
    let valid_id = !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric());
    if !valid_id || !crate::finetune::EncoderDelta::exists(&dir) {
        return Err(KbError::UnknownModel(format!(
            "{name} (no fine-tuned encoder in {})",
            encoders.display()
        )));
    }
    crate::finetune::EncoderDelta::load(&dir)
}

/// The stock model a (possibly fine-tuned) model name is built on.
pub fn base_model(name: &str) -> &str {
    name.split_once(TUNED_SEPARATOR).map_or(name, |(b, _)| b)
}

/// Per-language mean vectors subtracted from every embedding (then re-normalised): multilingual
/// models cluster by language, which drowns cross-language matches and compresses scores. The
/// means come from everyday sentences in each language (see `kb/calibration/`).
#[derive(Debug, Clone)]
pub struct LanguageCentering {
    cjk: Vec<f32>,
    other: Vec<f32>,
}

/// The two mean vectors of a `LanguageCentering`, as stored (`e5_language_means.json`, a tuned
/// encoder's `encoder.json`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LanguageMeans {
    pub zh: Vec<f32>,
    pub en: Vec<f32>,
}

/// Everyday Chinese and English sentences the centring means are measured on.
const CALIBRATION_ZH: &str = include_str!("../../calibration/zh-general.txt");
const CALIBRATION_EN: &str = include_str!("../../calibration/en-general.txt");

impl LanguageCentering {
    /// The means for multilingual-e5-small, compiled in.
    pub fn e5_small() -> Result<Self> {
        let m: LanguageMeans = serde_json::from_str(include_str!("e5_language_means.json"))
            .map_err(|e| KbError::Tokenizer(format!("language means: {e}")))?;
        Ok(Self::from_means(&m))
    }

    pub fn from_means(m: &LanguageMeans) -> Self {
        Self {
            cjk: m.zh.clone(),
            other: m.en.clone(),
        }
    }

    /// Measures the means on `embedder`'s own vectors of the calibration sentences
    /// (`kb/calibration/`): a fine-tuned encoder moves every vector, so the stock means would no
    /// longer remove the shared part and every score would rise.
    pub fn measure(embedder: &BatchingEmbedder) -> Result<LanguageMeans> {
        let mean = |text: &str| -> Result<Vec<f32>> {
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            let vectors = embedder.embed_uncentred(&lines, TextRole::Query)?;
            let mut m = vec![0f32; embedder.dim()];
            for v in &vectors {
                m.iter_mut().zip(v).for_each(|(a, x)| *a += x);
            }
            let n = vectors.len().max(1) as f32;
            m.iter_mut().for_each(|a| *a /= n);
            Ok(m)
        };
        Ok(LanguageMeans {
            zh: mean(CALIBRATION_ZH)?,
            en: mean(CALIBRATION_EN)?,
        })
    }

    /// Whether a text is mainly CJK: over a fifth of its letters are Han, kana or Hangul.
    pub fn is_cjk(text: &str) -> bool {
        let (mut letters, mut cjk) = (0usize, 0usize);
        for c in text.chars().filter(|c| c.is_alphanumeric()) {
            letters += 1;
            if matches!(c as u32, 0x3040..=0x30FF | 0x3400..=0x4DBF | 0x4E00..=0x9FFF | 0xAC00..=0xD7AF | 0xF900..=0xFAFF)
            {
                cjk += 1;
            }
        }
        letters > 0 && cjk * 5 > letters
    }

    /// Centres and re-normalises one vector of `text`.
    pub fn apply(&self, text: &str, v: &mut [f32]) {
        let mean = if Self::is_cjk(text) {
            &self.cjk
        } else {
            &self.other
        };
        if mean.len() != v.len() {
            return;
        }
        v.iter_mut().zip(mean).for_each(|(x, m)| *x -= m);
        let norm = v.iter().map(|x| x * x).sum::<f32>().sqrt().max(1e-12);
        v.iter_mut().for_each(|x| *x /= norm);
    }
}

/// Most sequences run through the encoder together.
pub const MAX_BATCH: usize = 32;
/// Token budget of one forward pass (batch x padded length), bounding activation memory.
pub const MAX_BATCH_TOKENS: usize = 8192;

/// Wraps a model: tokenises, groups texts of similar length (less padding), runs batches, and
/// returns vectors in input order.
pub struct BatchingEmbedder {
    name: String,
    model: Box<dyn EmbedModel>,
    /// Applied to every output vector when set.
    pub centering: Option<LanguageCentering>,
}

impl BatchingEmbedder {
    pub fn new(name: &str, model: Box<dyn EmbedModel>) -> Self {
        Self {
            name: name.to_string(),
            model,
            centering: None,
        }
    }
}

impl BatchingEmbedder {
    /// Token ids of one text (with special tokens), as the model sees it: a question is read
    /// with the standard spelling of chat words (`colloquial`).
    pub fn tokenize(&self, text: &str, role: TextRole) -> Result<Vec<u32>> {
        match role {
            TextRole::Query => self
                .model
                .tokenize(&crate::colloquial::standard(text), role),
            TextRole::Passage => self.model.tokenize(text, role),
        }
    }

    /// The transformer inside.
    pub fn encoder(&self) -> &bert::BertEncoder {
        self.model.encoder()
    }

    /// Replaces the encoder's top layers with a fine-tuned delta for this model; the embedder is
    /// then named after the delta (`<base>+ft-<id>`), so cached vectors of the stock model are
    /// never mixed with the tuned one's.
    pub fn with_delta(mut self, delta: &crate::finetune::EncoderDelta) -> Result<Self> {
        if delta.meta.base_model != self.name {
            return Err(KbError::InvalidInput(format!(
                "the fine-tuned encoder was trained from {}, not {}",
                delta.meta.base_model, self.name
            )));
        }
        delta.apply(self.model.encoder_mut())?;
        if let (Some(_), Some(m)) = (&self.centering, &delta.meta.centering) {
            self.centering = Some(LanguageCentering::from_means(m));
        }
        self.name = delta.model_name();
        Ok(self)
    }

    /// A copy with a fine-tuned delta applied (see `with_delta`) that shares the tokenizer, the
    /// word table and the layers the delta does not replace with this one.
    pub fn tuned_copy(&self, delta: &crate::finetune::EncoderDelta) -> Result<Self> {
        let copy = Self {
            name: self.name.clone(),
            model: self.model.with_encoder(self.model.encoder().clone()),
            centering: self.centering.clone(),
        };
        copy.with_delta(delta)
    }

    /// The encoder's normalised vectors in input order, before language centring (texts of
    /// similar length run together, so batches pad little).
    pub fn embed_uncentred(&self, texts: &[&str], role: TextRole) -> Result<Vec<Vec<f32>>> {
        let tokens = texts
            .iter()
            .map(|t| self.tokenize(t, role))
            .collect::<Result<Vec<_>>>()?;
        let mut order: Vec<usize> = (0..tokens.len()).collect();
        order.sort_by_key(|&i| tokens[i].len());
        let mut out: Vec<Vec<f32>> = vec![Vec::new(); tokens.len()];
        let mut start = 0;
        while start < order.len() {
            // Sorted ascending, so the last member of a group is its longest.
            let mut end = start + 1;
            while end < order.len()
                && end - start < MAX_BATCH
                && (end - start + 1) * tokens[order[end]].len() <= MAX_BATCH_TOKENS
            {
                end += 1;
            }
            let batch: Vec<Vec<u32>> = order[start..end]
                .iter()
                .map(|&i| tokens[i].clone())
                .collect();
            let vectors = self.model.encode(&batch)?;
            for (&i, v) in order[start..end].iter().zip(vectors) {
                out[i] = v;
            }
            start = end;
        }
        Ok(out)
    }

    /// Runs the encoder on already-tokenised inputs (no centring): for benchmarks and references.
    pub fn encode_ids(&self, batch: &[Vec<u32>]) -> Result<Vec<Vec<f32>>> {
        self.model.encode(batch)
    }
}

impl Embedder for BatchingEmbedder {
    fn model_name(&self) -> &str {
        &self.name
    }

    fn tuned(&self, delta: &crate::finetune::EncoderDelta) -> Option<Result<Arc<dyn Embedder>>> {
        if self.name.contains(TUNED_SEPARATOR) {
            // Already tuned for retrieval: the delta applies to the stock model only.
            return None;
        }
        Some(
            self.tuned_copy(delta)
                .map(|e| Arc::new(e) as Arc<dyn Embedder>),
        )
    }

    fn dim(&self) -> usize {
        self.model.dim()
    }

    fn embed(&self, texts: &[&str], role: TextRole) -> Result<Vec<Vec<f32>>> {
        let mut out = self.embed_uncentred(texts, role)?;
        if let Some(c) = &self.centering {
            for (text, v) in texts.iter().zip(out.iter_mut()) {
                c.apply(text, v);
            }
        }
        Ok(out)
    }
}

/// Cosine similarity of two L2-normalised vectors (their dot product).
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    crate::index::exact::dot(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_cjk_text() {
        assert!(LanguageCentering::is_cjk("多久发货？"));
        assert!(LanguageCentering::is_cjk("订单号 SO-42 的物流"));
        assert!(!LanguageCentering::is_cjk("How long does shipping take?"));
        assert!(!LanguageCentering::is_cjk("🙂"));
    }

    #[test]
    fn centring_removes_the_mean_and_renormalises() {
        let c = LanguageCentering {
            cjk: vec![0.5, 0.0],
            other: vec![0.0, 0.5],
        };
        let mut v = vec![0.6, 0.8];
        c.apply("hello", &mut v);
        assert!((v[0] - 0.6 / 0.67082).abs() < 1e-3);
        assert!(((v[0] * v[0] + v[1] * v[1]) - 1.0).abs() < 1e-5);
    }
}
