//! Int8 codes of vectors for the exact index's first pass: a quarter of the bytes to scan, and for
//! every code the error bound that lets the index re-score only the rows that could still be in the
//! f32 top-k — so the result is the f32 exact top-k, found at int8 speed.

/// One vector's code: `values[i] ≈ row.scale × codes[i]`, with `|x·y − x̂·ŷ|` bounded by the norms.
#[derive(Debug, Clone, PartialEq)]
pub struct Code {
    pub codes: Vec<i8>,
    /// What the index keeps per row besides the codes.
    pub row: RowCode,
    /// ‖x‖.
    pub exact_norm: f32,
}

/// A code's scale and the norms its error bound needs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RowCode {
    pub scale: f32,
    /// ‖x − x̂‖: how far the code is from the vector.
    pub error: f32,
    /// ‖x̂‖: the code's own length.
    pub norm: f32,
}

/// Symmetric per-vector quantisation to [-127, 127].
pub fn quantize(values: &[f32]) -> Code {
    let max = values.iter().fold(0f32, |m, x| m.max(x.abs()));
    let scale = if max > 0.0 && max.is_finite() {
        max / 127.0
    } else {
        0.0
    };
    let codes: Vec<i8> = values
        .iter()
        .map(|x| {
            if scale == 0.0 {
                0
            } else {
                (x / scale).round().clamp(-127.0, 127.0) as i8
            }
        })
        .collect();
    let (mut err2, mut norm2, mut exact2) = (0f64, 0f64, 0f64);
    for (x, c) in values.iter().zip(&codes) {
        let approx = f64::from(scale) * f64::from(*c);
        err2 += (f64::from(*x) - approx).powi(2);
        norm2 += approx * approx;
        exact2 += f64::from(*x).powi(2);
    }
    // Rounded up so that the bound stays a bound.
    Code {
        codes,
        row: RowCode {
            scale,
            error: (err2.sqrt() as f32) * (1.0 + 1e-6),
            norm: (norm2.sqrt() as f32) * (1.0 + 1e-6),
        },
        exact_norm: (exact2.sqrt() as f32) * (1.0 + 1e-6),
    }
}

/// A query's code with what every row's estimate needs precomputed.
pub struct QueryCode {
    code: Code,
    /// The rounding of an f32 sum of `dim` products, per unit of `‖q‖‖x‖`.
    rounding: f32,
}

impl QueryCode {
    pub fn new(query: &[f32]) -> Self {
        let code = quantize(query);
        let rounding = 2.0 * (query.len() as f32 + 2.0) * f32::EPSILON * code.exact_norm;
        Self { code, rounding }
    }

    /// The query's int8 codes.
    pub fn codes(&self) -> &[i8] {
        &self.code.codes
    }

    /// The approximate dot product with a row, from the int8 dot product of their codes, and
    /// how far the f32 dot product can be from it: `|q·x − q̂·x̂| ≤ ‖q‖‖x − x̂‖ + ‖q − q̂‖‖x̂‖`,
    /// plus the f32 rounding (`dim·ε·‖q‖‖x‖`, with `‖x‖ ≤ ‖x̂‖ + ‖x − x̂‖`).
    pub fn estimate(&self, codes_dot: i32, row: &RowCode) -> (f32, f32) {
        let q = &self.code;
        let approx = q.row.scale * row.scale * codes_dot as f32;
        let bound = q.exact_norm * row.error
            + q.row.error * row.norm
            + self.rounding * (row.norm + row.error);
        (approx, bound * (1.0 + 1e-5) + 1e-7)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::index::exact::dot;

    fn pseudo_random(seed: &mut u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                (*seed % 20_001) as f32 / 10_000.0 - 1.0
            })
            .collect()
    }

    #[test]
    fn the_bound_holds_for_random_and_degenerate_vectors() {
        let mut seed = 11u64;
        let mut vectors: Vec<Vec<f32>> = (0..200).map(|_| pseudo_random(&mut seed, 384)).collect();
        vectors.push(vec![0.0; 384]);
        let mut spike = vec![0.0; 384];
        spike[3] = 1.0;
        vectors.push(spike);
        vectors.push(
            (0..384)
                .map(|i| if i % 2 == 0 { 1e-4 } else { 0.9 })
                .collect(),
        );
        let codes: Vec<Code> = vectors.iter().map(|v| quantize(v)).collect();
        for (q, qc) in vectors.iter().zip(&codes).step_by(7) {
            for (x, xc) in vectors.iter().zip(&codes) {
                let query = QueryCode::new(q);
                let codes_dot = crate::embed::kernels::dot_i8_portable(&qc.codes, &xc.codes);
                let (approx, bound) = query.estimate(codes_dot, &xc.row);
                let exact = dot(q, x);
                assert!(
                    (exact - approx).abs() <= bound,
                    "exact {exact}, approx {approx}, bound {bound}"
                );
            }
        }
        assert_eq!(quantize(&[0.0, 0.0]).codes, vec![0, 0]);
        assert_eq!(quantize(&[0.5, -1.0]).codes, vec![64, -127]);
    }
}
