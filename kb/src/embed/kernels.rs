//! Hand-written SIMD kernels, picked at run time by CPU feature (AVX2 on x86-64), each with a
//! portable twin that is also its scalar reference in the tests. The only module of the workspace
//! allowed `unsafe`: every use is an intrinsic call or an unaligned load inside a slice's bounds.
#![allow(unsafe_code)]

use std::sync::OnceLock;

/// `out[r]` = the int8 dot product (in i32) of `query` and row `r` of `rows`, the rows laid end to
/// end (each `query.len()` long): one call for a run of rows, so the per-call work is paid once.
/// Codes must be in [-127, 127] (the AVX2 kernel's sign trick negates them as i8).
pub fn dot_i8_rows(query: &[i8], rows: &[i8], out: &mut [i32]) {
    let dim = query.len();
    if dim == 0 {
        out.fill(0);
        return;
    }
    let rows = rows.chunks_exact(dim);
    #[cfg(target_arch = "x86_64")]
    if has_avx2() {
        for (o, row) in out.iter_mut().zip(rows) {
            // SAFETY: the CPU supports AVX2 (checked above); `row` has `dim` elements like `query`.
            *o = unsafe { x86::dot_i8_avx2(query, row) };
        }
        return;
    }
    for (o, row) in out.iter_mut().zip(rows) {
        *o = dot_i8_portable(query, row);
    }
}

/// Whether this CPU runs the AVX2 kernels (checked once).
pub fn has_avx2() -> bool {
    static AVX2: OnceLock<bool> = OnceLock::new();
    *AVX2.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// The portable kernel: sixteen independent lanes the compiler vectorises with the baseline ISA.
pub fn dot_i8_portable(a: &[i8], b: &[i8]) -> i32 {
    const LANES: usize = 16;
    let mut acc = [0i32; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: i32 = ca
        .remainder()
        .iter()
        .zip(cb.remainder())
        .map(|(x, y)| i32::from(*x) * i32::from(*y))
        .sum();
    for (x, y) in ca.zip(cb) {
        for i in 0..LANES {
            acc[i] += i32::from(x[i]) * i32::from(y[i]);
        }
    }
    acc.iter().sum::<i32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    /// 32 products per step: `|a| × (b with a's sign)` as u8 × i8 pairs summed to i16
    /// (`maddubs`, at most 2 × 127 × 127, no saturation), then pairs of those to i32.
    ///
    /// # Safety
    /// The CPU must support AVX2; `a` and `b` must have the same length.
    #[target_feature(enable = "avx2")]
    #[inline]
    pub unsafe fn dot_i8_avx2(a: &[i8], b: &[i8]) -> i32 {
        let n = a.len();
        debug_assert_eq!(n, b.len());
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_si256();
        let mut i = 0;
        while i + 32 <= n {
            // SAFETY: `i + 32 <= n` keeps both 32-byte loads inside the slices.
            let (va, vb) = unsafe {
                (
                    _mm256_loadu_si256(a.as_ptr().add(i).cast::<__m256i>()),
                    _mm256_loadu_si256(b.as_ptr().add(i).cast::<__m256i>()),
                )
            };
            let magnitude = _mm256_sign_epi8(va, va);
            let signed = _mm256_sign_epi8(vb, va);
            let pairs = _mm256_maddubs_epi16(magnitude, signed);
            acc = _mm256_add_epi32(acc, _mm256_madd_epi16(pairs, ones));
            i += 32;
        }
        let sum = _mm_add_epi32(
            _mm256_castsi256_si128(acc),
            _mm256_extracti128_si256(acc, 1),
        );
        let sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b01_00_11_10));
        let sum = _mm_add_epi32(sum, _mm_shuffle_epi32(sum, 0b10_11_00_01));
        let tail: i32 = a[i..]
            .iter()
            .zip(&b[i..])
            .map(|(x, y)| i32::from(*x) * i32::from(*y))
            .sum();
        _mm_cvtsi128_si32(sum) + tail
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Pseudo-random codes covering all of [-127, 127].
    fn codes(seed: &mut u64, n: usize) -> Vec<i8> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                ((*seed % 255) as i32 - 127) as i8
            })
            .collect()
    }

    fn scalar(a: &[i8], b: &[i8]) -> i32 {
        a.iter()
            .zip(b)
            .map(|(x, y)| i32::from(*x) * i32::from(*y))
            .sum()
    }

    #[test]
    fn dot_i8_kernels_match_the_scalar_sum_on_random_and_edge_shapes() {
        let mut seed = 0xD07_u64;
        for n in [
            0, 1, 2, 15, 16, 17, 31, 32, 33, 63, 64, 65, 127, 384, 385, 512, 1024,
        ] {
            let (a, b) = (codes(&mut seed, n), codes(&mut seed, n));
            let want = scalar(&a, &b);
            assert_eq!(dot_i8_portable(&a, &b), want, "portable, length {n}");
            let mut got = [0];
            dot_i8_rows(&a, &b, &mut got);
            assert_eq!(got[0], want, "dispatched, length {n}");
        }
        for (x, y) in [(127i8, 127i8), (-127, -127), (-127, 127), (0, -127)] {
            let (a, b) = (vec![x; 384], vec![y; 384]);
            let mut got = [0];
            dot_i8_rows(&a, &b, &mut got);
            assert_eq!(got[0], scalar(&a, &b), "{x} × {y}");
        }
        let (q, rows) = (codes(&mut seed, 384), codes(&mut seed, 384 * 5));
        let mut out = vec![0; 5];
        dot_i8_rows(&q, &rows, &mut out);
        let want: Vec<i32> = rows.chunks(384).map(|r| scalar(&q, r)).collect();
        assert_eq!(out, want, "rows");
    }

    #[cfg(target_arch = "x86_64")]
    #[test]
    fn the_avx2_kernel_is_tested_where_the_cpu_has_it() {
        if !has_avx2() {
            eprintln!("no AVX2 on this CPU: the portable kernel alone was tested");
            return;
        }
        let mut seed = 0xA7_u64;
        for n in [32, 33, 384, 777] {
            let (a, b) = (codes(&mut seed, n), codes(&mut seed, n));
            // SAFETY: AVX2 checked above; equal lengths.
            let got = unsafe { x86::dot_i8_avx2(&a, &b) };
            assert_eq!(got, scalar(&a, &b), "length {n}");
        }
    }
}
