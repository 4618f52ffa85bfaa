//! Hand-written SIMD kernels, picked at run time by CPU feature (AVX2 + FMA on x86-64), each with a
//! portable twin that is also its scalar reference in the tests. The only module of the workspace
//! allowed `unsafe`: every use is an intrinsic call, a call into a function compiled for a CPU
//! feature that was checked, or a load/store inside bounds asserted before the kernel runs.
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

/// Whether this CPU runs the AVX2 + FMA (+ F16C) float kernels (checked once).
pub fn has_avx2_fma() -> bool {
    static AVX2_FMA: OnceLock<bool> = OnceLock::new();
    *AVX2_FMA.get_or_init(|| {
        #[cfg(target_arch = "x86_64")]
        {
            std::arch::is_x86_feature_detected!("avx2")
                && std::arch::is_x86_feature_detected!("fma")
                && std::arch::is_x86_feature_detected!("f16c")
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    })
}

/// A row-major f32 matrix view: `rows` rows of `cols` values, row `r` starting at `r * stride`.
#[derive(Clone, Copy)]
pub struct MatRef<'a> {
    pub data: &'a [f32],
    pub rows: usize,
    pub cols: usize,
    pub stride: usize,
}

impl<'a> MatRef<'a> {
    /// A view of `data` as `rows` × `cols` with the given row stride (panics when it does not fit).
    pub fn new(data: &'a [f32], rows: usize, cols: usize, stride: usize) -> Self {
        check_fits(rows, cols, data.len(), stride);
        Self {
            data,
            rows,
            cols,
            stride,
        }
    }

    fn at(&self, r: usize, c: usize) -> f32 {
        self.data[r * self.stride + c]
    }
}

/// Panics unless `rows` rows of `cols` values, `stride` apart, fit in `len` values.
fn check_fits(rows: usize, cols: usize, len: usize, stride: usize) {
    assert!(cols <= stride || rows <= 1, "row stride shorter than a row");
    assert!(
        rows == 0 || cols == 0 || (rows - 1) * stride + cols <= len,
        "matrix out of bounds"
    );
}

/// Panics unless `a` (m × k) times a `k_b` × n matrix, plus `bias`, fits `out` at `out_stride`;
/// false when there is nothing to compute.
fn check_product(
    a: MatRef,
    k_b: usize,
    n: usize,
    bias: Option<&[f32]>,
    out: &[f32],
    out_stride: usize,
) -> bool {
    assert_eq!(k_b, a.cols, "inner dimensions differ");
    check_fits(a.rows, n, out.len(), out_stride);
    if let Some(bias) = bias {
        assert!(bias.len() >= n, "bias shorter than a row");
    }
    a.rows > 0 && n > 0
}

/// `out = a · b (+ bias)`: `a` is m × k, `b` is k × n, `out` m × n with row stride `out_stride`,
/// `bias` (n values) added to every row. The AVX2 + FMA kernel computes 6 × 16 tiles of `out` in
/// registers, `b` read in place (row-major, no packing) and `a` in row tiles that stay in cache.
pub fn sgemm(a: MatRef, b: MatRef, bias: Option<&[f32]>, out: &mut [f32], out_stride: usize) {
    if !check_product(a, b.rows, b.cols, bias, out, out_stride) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: AVX2 and FMA are present (checked above); every view and the output were
        // bounds-checked against m, k, n and their strides above.
        unsafe { x86::sgemm_avx2(a, b, bias, out, out_stride) };
        return;
    }
    sgemm_portable(a, b, bias, out, out_stride);
}

/// Columns per panel of a `PanelsF16` matrix.
pub const PANEL: usize = 16;

/// A k × n matrix stored for `sgemm_panels`: in 16-column panels, panel `j` holding rows 0..k of
/// columns 16j..16j+16 (zeros past n), each row's 16 values together, as IEEE half floats. The
/// panels stream sequentially from memory and take half the bytes of f32.
#[derive(Clone, Copy)]
pub struct PanelsF16<'a> {
    pub data: &'a [u16],
    pub rows: usize,
    pub cols: usize,
}

impl PanelsF16<'_> {
    /// Packs a row-major k × n f32 matrix (row stride n) into panels.
    pub fn pack(values: &[f32], rows: usize, cols: usize) -> Vec<u16> {
        assert_eq!(values.len(), rows * cols, "matrix size");
        let panels = cols.div_ceil(PANEL);
        let mut out = vec![0u16; panels * rows * PANEL];
        for (j, panel) in out.chunks_exact_mut(rows * PANEL).enumerate() {
            let width = (cols - j * PANEL).min(PANEL);
            for (p, dst) in panel.chunks_exact_mut(PANEL).enumerate() {
                let src = &values[p * cols + j * PANEL..p * cols + j * PANEL + width];
                for (d, v) in dst.iter_mut().zip(src) {
                    *d = half::f16::from_f32(*v).to_bits();
                }
            }
        }
        out
    }
}

/// `out = a · b (+ bias)` with `b` in f16 panels. The AVX2 kernel widens each panel row (F16C)
/// inside its 6 × 16 register tiles; the portable one widens a panel at a time, then multiplies.
pub fn sgemm_panels(
    a: MatRef,
    b: PanelsF16,
    bias: Option<&[f32]>,
    out: &mut [f32],
    out_stride: usize,
) {
    assert_eq!(
        b.data.len(),
        b.cols.div_ceil(PANEL) * b.rows * PANEL,
        "panel data size"
    );
    if !check_product(a, b.rows, b.cols, bias, out, out_stride) {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: AVX2, FMA and F16C are present (checked above); `a`, the panels, the bias and
        // the output were bounds-checked against m, k, n and their strides above.
        unsafe { x86::sgemm_panels_avx2(a, b, bias, out, out_stride) };
        return;
    }
    sgemm_panels_portable(a, b, bias, out, out_stride);
}

/// The portable panel product (a panel widened at a time, then `sgemm_portable`), also the
/// reference of the AVX2 kernel in the tests. Shapes as `sgemm_panels`, which checks them.
pub fn sgemm_panels_portable(
    a: MatRef,
    b: PanelsF16,
    bias: Option<&[f32]>,
    out: &mut [f32],
    out_stride: usize,
) {
    let (k, n) = (a.cols, b.cols);
    let mut panel = vec![0f32; k * PANEL];
    for (j, packed) in b.data.chunks_exact(k * PANEL).enumerate() {
        let width = (n - j * PANEL).min(PANEL);
        f16_to_f32(packed, &mut panel);
        sgemm_portable(
            a,
            MatRef::new(&panel, k, width, PANEL),
            bias.map(|b| &b[j * PANEL..]),
            &mut out[j * PANEL..],
            out_stride,
        );
    }
}

/// Widens IEEE half floats to f32 (the portable panel product's step; the AVX2 kernel widens in
/// its registers).
pub fn f16_to_f32(src: &[u16], dst: &mut [f32]) {
    assert_eq!(src.len(), dst.len(), "lengths differ");
    for (d, s) in dst.iter_mut().zip(src) {
        *d = half::f16::from_bits(*s).to_f32();
    }
}

/// The portable matrix product, also the scalar reference of the tests.
pub fn sgemm_portable(
    a: MatRef,
    b: MatRef,
    bias: Option<&[f32]>,
    out: &mut [f32],
    out_stride: usize,
) {
    let (m, k, n) = (a.rows, a.cols, b.cols);
    for i in 0..m {
        let row = &mut out[i * out_stride..i * out_stride + n];
        match bias {
            Some(bias) => row.copy_from_slice(&bias[..n]),
            None => row.fill(0.0),
        }
        for p in 0..k {
            let x = a.at(i, p);
            let b_row = &b.data[p * b.stride..p * b.stride + n];
            for (o, w) in row.iter_mut().zip(b_row) {
                *o += x * w;
            }
        }
    }
}

/// `exp(x)` for f32, branch-free so that a loop over it vectorises: 2^n × a degree-6 polynomial
/// of the reduced argument (relative error ~2e-7; clamped to [-87.3, 88]).
#[inline(always)]
pub fn exp_f32(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    let x = x.clamp(-87.3, 88.0);
    let n = (x * LOG2E + 0.5).floor();
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (0.166_666_67
                    + r * (0.041_666_668 + r * (0.008_333_334 + r * 0.001_388_889)))));
    p * f32::from_bits(((n as i32 + 127) as u32) << 23)
}

/// Scales `row` by `scale`, then softmax in place (max subtracted first).
pub fn softmax_scaled(row: &mut [f32], scale: f32) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: AVX2 and FMA are present (checked above); the body is safe code.
        unsafe { x86::softmax_scaled_avx2(row, scale) };
        return;
    }
    softmax_scaled_portable(row, scale);
}

/// Separate passes (maximum, exponentials, sum, scaling), each free of a loop-carried dependency
/// except through eight independent lanes, so that every one vectorises.
#[inline(always)]
fn softmax_scaled_portable(row: &mut [f32], scale: f32) {
    let mut lanes = [f32::NEG_INFINITY; 8];
    let chunks = row.chunks_exact(8);
    let tail = chunks
        .remainder()
        .iter()
        .copied()
        .fold(f32::NEG_INFINITY, f32::max);
    for c in chunks {
        for i in 0..8 {
            lanes[i] = lanes[i].max(c[i]);
        }
    }
    let max = lanes.iter().copied().fold(tail, f32::max);
    for v in row.iter_mut() {
        *v = exp_f32((*v - max) * scale);
    }
    let inv = 1.0 / lanes_sum(row);
    for v in row.iter_mut() {
        *v *= inv;
    }
}

/// Exact-form GELU in place (`x/2 × (1 + erf(x/√2))`, erf from `activation::erf`).
pub fn gelu_in_place(values: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: AVX2 and FMA are present (checked above); the body is safe code.
        unsafe { x86::gelu_avx2(values) };
        return;
    }
    super::activation::gelu_erf_in_place(values);
}

/// `x = layer_norm(x + residual)` over each `dim`-long row, with gain `gamma` and shift `beta`.
pub fn add_layer_norm(
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    #[cfg(target_arch = "x86_64")]
    if has_avx2_fma() {
        // SAFETY: AVX2 and FMA are present (checked above); the body is safe code.
        unsafe { x86::add_layer_norm_avx2(x, residual, gamma, beta, eps) };
        return;
    }
    add_layer_norm_portable(x, residual, gamma, beta, eps);
}

#[inline(always)]
fn add_layer_norm_portable(
    x: &mut [f32],
    residual: Option<&[f32]>,
    gamma: &[f32],
    beta: &[f32],
    eps: f32,
) {
    let dim = gamma.len();
    assert_eq!(beta.len(), dim);
    assert_eq!(x.len() % dim.max(1), 0, "rows of unequal length");
    if let Some(residual) = residual {
        assert_eq!(residual.len(), x.len());
        for (v, r) in x.iter_mut().zip(residual) {
            *v += r;
        }
    }
    for row in x.chunks_exact_mut(dim.max(1)) {
        let mean = lanes_sum(row) / dim as f32;
        for v in row.iter_mut() {
            *v -= mean;
        }
        let var = lanes_sum_sq(row) / dim as f32;
        let inv = 1.0 / (var + eps).sqrt();
        for ((v, g), b) in row.iter_mut().zip(gamma).zip(beta) {
            *v = *v * inv * g + b;
        }
    }
}

/// A sum in eight independent lanes (so that it vectorises), then the lanes added.
#[inline(always)]
fn lanes_sum(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[inline(always)]
fn lanes_sum_sq(v: &[f32]) -> f32 {
    let mut acc = [0f32; 8];
    let chunks = v.chunks_exact(8);
    let tail: f32 = chunks.remainder().iter().map(|x| x * x).sum();
    for c in chunks {
        for i in 0..8 {
            acc[i] += c[i] * c[i];
        }
    }
    acc.iter().sum::<f32>() + tail
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    use super::MatRef;

    /// Rows of `a` per cache tile: about 128 KB of `a` stays in L2 while the 16-column panels of
    /// `b` go by.
    fn tile_rows(k: usize) -> usize {
        ((128 * 1024 / (4 * k.max(1))) / 6 * 6).max(6)
    }

    /// # Safety
    /// The CPU must support AVX2 and FMA; the views and `out` must hold m × k, k × n and m × n
    /// values at their strides (the caller asserts it).
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn sgemm_avx2(
        a: MatRef,
        b: MatRef,
        bias: Option<&[f32]>,
        out: &mut [f32],
        ldc: usize,
    ) {
        let (m, n) = (a.rows, b.cols);
        let bias = bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
        let c = out.as_mut_ptr();
        let tile = tile_rows(a.cols);
        let mut i0 = 0;
        while i0 < m {
            let i1 = (i0 + tile).min(m);
            let mut j = 0;
            while j < n {
                let cols = (n - j).min(16);
                // SAFETY: rows i0..i1 and columns j..j+cols lie inside every view (asserted by
                // the caller); the kernels read and write no further.
                unsafe {
                    let mut i = i0;
                    while i + 6 <= i1 {
                        panel::<6>(a, b, bias, c, ldc, i, j, cols);
                        i += 6;
                    }
                    match i1 - i {
                        5 => panel::<5>(a, b, bias, c, ldc, i, j, cols),
                        4 => panel::<4>(a, b, bias, c, ldc, i, j, cols),
                        3 => panel::<3>(a, b, bias, c, ldc, i, j, cols),
                        2 => panel::<2>(a, b, bias, c, ldc, i, j, cols),
                        1 => panel::<1>(a, b, bias, c, ldc, i, j, cols),
                        _ => {}
                    }
                }
                j += cols;
            }
            i0 = i1;
        }
    }

    /// # Safety
    /// The CPU must support AVX2, FMA and F16C; `a`, the panels, `bias` (n values) and `out`
    /// hold m × k, the k × n panels and m × n values at their strides (the caller asserts it).
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn sgemm_panels_avx2(
        a: MatRef,
        b: super::PanelsF16,
        bias: Option<&[f32]>,
        out: &mut [f32],
        ldc: usize,
    ) {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let bias = bias.map_or(std::ptr::null(), <[f32]>::as_ptr);
        let c = out.as_mut_ptr();
        let tile = tile_rows(k);
        let mut i0 = 0;
        while i0 < m {
            let i1 = (i0 + tile).min(m);
            for j in 0..n.div_ceil(16) {
                let cols = (n - 16 * j).min(16);
                // SAFETY: panel `j` is the k × 16 halves at `j * k * 16` (size asserted by the
                // caller); rows i0..i1 and columns 16j..16j+cols are inside `a` and the output.
                unsafe {
                    let panel = b.data.as_ptr().add(j * k * 16);
                    let mut i = i0;
                    while i + 6 <= i1 {
                        half_tile::<6>(a, panel, bias, c, ldc, i, 16 * j, cols);
                        i += 6;
                    }
                    match i1 - i {
                        5 => half_tile::<5>(a, panel, bias, c, ldc, i, 16 * j, cols),
                        4 => half_tile::<4>(a, panel, bias, c, ldc, i, 16 * j, cols),
                        3 => half_tile::<3>(a, panel, bias, c, ldc, i, 16 * j, cols),
                        2 => half_tile::<2>(a, panel, bias, c, ldc, i, 16 * j, cols),
                        1 => half_tile::<1>(a, panel, bias, c, ldc, i, 16 * j, cols),
                        _ => {}
                    }
                }
            }
            i0 = i1;
        }
    }

    /// R rows × 16 columns of the output from one f16 panel (its rows widened in registers);
    /// columns past `cols` are neither loaded from the bias nor stored.
    ///
    /// # Safety
    /// AVX2 + FMA + F16C; `panel` holds k × 16 halves; rows i..i+R of `a` and of the output and
    /// columns j..j+cols of the output and the bias are in bounds.
    #[target_feature(enable = "avx2,fma,f16c")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn half_tile<const R: usize>(
        a: MatRef,
        panel: *const u16,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        i: usize,
        j: usize,
        cols: usize,
    ) {
        let k = a.cols;
        let pa = a.data.as_ptr();
        let masks = [lane_mask(cols.min(8)), lane_mask(cols.saturating_sub(8))];
        let full = cols == 16;
        // SAFETY (whole body): offsets are `row * stride + column` inside the bounds above, the
        // panel is read at p * 16 for p < k, and masked lanes are neither read nor written.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); 2]; R];
            if !bias.is_null() {
                let high = if cols > 8 {
                    load_lanes(bias.add(j + 8), !full, masks[1])
                } else {
                    _mm256_setzero_ps()
                };
                let bv = [load_lanes(bias.add(j), !full, masks[0]), high];
                for row in acc.iter_mut() {
                    *row = bv;
                }
            }
            let a_rows: [*const f32; R] = std::array::from_fn(|r| pa.add((i + r) * a.stride));
            for p in 0..k {
                let row = panel.add(p * 16);
                let b0 = _mm256_cvtph_ps(_mm_loadu_si128(row.cast::<__m128i>()));
                let b1 = _mm256_cvtph_ps(_mm_loadu_si128(row.add(8).cast::<__m128i>()));
                for r in 0..R {
                    let x = _mm256_broadcast_ss(&*a_rows[r].add(p));
                    acc[r][0] = _mm256_fmadd_ps(x, b0, acc[r][0]);
                    acc[r][1] = _mm256_fmadd_ps(x, b1, acc[r][1]);
                }
            }
            for (r, row) in acc.iter().enumerate() {
                let out = c.add((i + r) * ldc + j);
                if full {
                    _mm256_storeu_ps(out, row[0]);
                    _mm256_storeu_ps(out.add(8), row[1]);
                } else {
                    _mm256_maskstore_ps(out, masks[0], row[0]);
                    if cols > 8 {
                        _mm256_maskstore_ps(out.add(8), masks[1], row[1]);
                    }
                }
            }
        }
    }

    /// R rows × up to 16 columns of the output, starting at (i, j).
    ///
    /// # Safety
    /// AVX2 + FMA; rows i..i+R and columns j..j+cols are inside the views and the output.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn panel<const R: usize>(
        a: MatRef,
        b: MatRef,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        i: usize,
        j: usize,
        cols: usize,
    ) {
        if cols == 16 {
            // SAFETY: forwarded from the caller.
            unsafe { tile::<R, 2, false>(a, b, bias, c, ldc, i, j, _mm256_setzero_si256()) }
        } else if cols == 8 {
            // SAFETY: forwarded from the caller.
            unsafe { tile::<R, 1, false>(a, b, bias, c, ldc, i, j, _mm256_setzero_si256()) }
        } else if cols > 8 {
            // SAFETY: forwarded; the mask keeps the second vector to the `cols - 8` columns.
            unsafe { tile::<R, 2, true>(a, b, bias, c, ldc, i, j, lane_mask(cols - 8)) }
        } else {
            // SAFETY: forwarded; the mask keeps the vector to the `cols` columns.
            unsafe { tile::<R, 1, true>(a, b, bias, c, ldc, i, j, lane_mask(cols)) }
        }
    }

    /// A mask of the first `lanes` (0..=8) of eight.
    #[target_feature(enable = "avx2")]
    fn lane_mask(lanes: usize) -> __m256i {
        let idx = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
        _mm256_cmpgt_epi32(_mm256_set1_epi32(lanes as i32), idx)
    }

    /// The register tile: R rows × V vectors of eight, the last vector masked when MASKED.
    ///
    /// # Safety
    /// AVX2 + FMA; rows i..i+R of `a` and of the output, rows 0..k of `b`, and the columns
    /// j..j+8V (or the masked lanes of the last vector) are in bounds.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    #[allow(clippy::too_many_arguments)]
    unsafe fn tile<const R: usize, const V: usize, const MASKED: bool>(
        a: MatRef,
        b: MatRef,
        bias: *const f32,
        c: *mut f32,
        ldc: usize,
        i: usize,
        j: usize,
        mask: __m256i,
    ) {
        let k = a.cols;
        let (pa, pb) = (a.data.as_ptr(), b.data.as_ptr());
        // SAFETY (whole body): every offset below is `row * stride + column` for a row and a
        // column inside the bounds stated above; masked lanes are neither read nor written.
        unsafe {
            let mut acc = [[_mm256_setzero_ps(); V]; R];
            if !bias.is_null() {
                let mut bv = [_mm256_setzero_ps(); V];
                for (v, slot) in bv.iter_mut().enumerate() {
                    *slot = load_lanes(bias.add(j + 8 * v), MASKED && v == V - 1, mask);
                }
                for row in acc.iter_mut() {
                    *row = bv;
                }
            }
            let a_rows: [*const f32; R] = std::array::from_fn(|r| pa.add((i + r) * a.stride));
            for p in 0..k {
                let b_row = pb.add(p * b.stride + j);
                let mut bv = [_mm256_setzero_ps(); V];
                for (v, slot) in bv.iter_mut().enumerate() {
                    *slot = load_lanes(b_row.add(8 * v), MASKED && v == V - 1, mask);
                }
                for r in 0..R {
                    let x = _mm256_broadcast_ss(&*a_rows[r].add(p));
                    for v in 0..V {
                        acc[r][v] = _mm256_fmadd_ps(x, bv[v], acc[r][v]);
                    }
                }
            }
            for (r, row) in acc.iter().enumerate() {
                let out = c.add((i + r) * ldc + j);
                for (v, value) in row.iter().enumerate() {
                    if MASKED && v == V - 1 {
                        _mm256_maskstore_ps(out.add(8 * v), mask, *value);
                    } else {
                        _mm256_storeu_ps(out.add(8 * v), *value);
                    }
                }
            }
        }
    }

    /// Eight floats from `p`, or only the lanes of `mask` when `masked`.
    ///
    /// # Safety
    /// AVX2; the eight floats (or the masked lanes) at `p` are readable.
    #[target_feature(enable = "avx2")]
    #[inline]
    unsafe fn load_lanes(p: *const f32, masked: bool, mask: __m256i) -> __m256 {
        // SAFETY: forwarded from the caller.
        unsafe {
            if masked {
                _mm256_maskload_ps(p, mask)
            } else {
                _mm256_loadu_ps(p)
            }
        }
    }

    /// The portable softmax compiled for AVX2 + FMA (the loops vectorise eight wide).
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn softmax_scaled_avx2(row: &mut [f32], scale: f32) {
        super::softmax_scaled_portable(row, scale)
    }

    /// The portable GELU compiled for AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn gelu_avx2(values: &mut [f32]) {
        super::super::activation::gelu_erf_in_place(values)
    }

    /// The portable residual + layer norm compiled for AVX2 + FMA.
    ///
    /// # Safety
    /// The CPU must support AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub unsafe fn add_layer_norm_avx2(
        x: &mut [f32],
        residual: Option<&[f32]>,
        gamma: &[f32],
        beta: &[f32],
        eps: f32,
    ) {
        super::add_layer_norm_portable(x, residual, gamma, beta, eps)
    }

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

    /// Pseudo-random floats in [-1, 1).
    fn floats(seed: &mut u64, n: usize) -> Vec<f32> {
        (0..n)
            .map(|_| {
                *seed ^= *seed << 13;
                *seed ^= *seed >> 7;
                *seed ^= *seed << 17;
                (*seed % 2_000_001) as f32 / 1_000_000.0 - 1.0
            })
            .collect()
    }

    /// The product in f64, the scalar reference of both matrix kernels.
    fn product_f64(a: MatRef, b: MatRef, bias: Option<&[f32]>) -> Vec<f64> {
        let (m, k, n) = (a.rows, a.cols, b.cols);
        let mut out = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                let mut sum = bias.map_or(0.0, |b| f64::from(b[j]));
                for p in 0..k {
                    sum += f64::from(a.at(i, p)) * f64::from(b.at(p, j));
                }
                out[i * n + j] = sum;
            }
        }
        out
    }

    #[test]
    fn sgemm_matches_the_scalar_product_on_odd_shapes_strides_and_bias() {
        let mut seed = 0x5EED_u64;
        for m in [1, 2, 5, 6, 7, 13, 130] {
            for n in [1, 3, 7, 8, 9, 15, 16, 17, 31, 32, 33, 48] {
                for k in [1, 2, 31, 32, 384] {
                    let (pad_a, pad_b, pad_c) = (m % 3, n % 2 * 5, 4);
                    let a_data = floats(&mut seed, m * (k + pad_a));
                    let b_data = floats(&mut seed, k * (n + pad_b));
                    let a = MatRef::new(&a_data, m, k, k + pad_a);
                    let b = MatRef::new(&b_data, k, n, n + pad_b);
                    let bias = floats(&mut seed, n);
                    let with_bias = (m + n + k) % 2 == 0;
                    let bias = with_bias.then_some(&bias[..]);
                    let want = product_f64(a, b, bias);
                    let ldc = n + pad_c;
                    // The output's padding must be left as it was.
                    let (mut fast, mut portable) = (vec![7f32; m * ldc], vec![7f32; m * ldc]);
                    sgemm(a, b, bias, &mut fast, ldc);
                    sgemm_portable(a, b, bias, &mut portable, ldc);
                    let tolerance = 1e-5 * (k as f64).sqrt() + 1e-6;
                    for i in 0..m {
                        for j in 0..ldc {
                            let (f, p) = (fast[i * ldc + j], portable[i * ldc + j]);
                            if j >= n {
                                assert_eq!((f, p), (7.0, 7.0), "padding written at {i},{j}");
                                continue;
                            }
                            let w = want[i * n + j];
                            assert!(
                                (f64::from(f) - w).abs() <= tolerance
                                    && (f64::from(p) - w).abs() <= tolerance,
                                "m {m} n {n} k {k} at {i},{j}: {f} / {p} vs {w}"
                            );
                        }
                    }
                }
            }
        }
    }

    fn want_without_bias(a: &[f32], b: &[f32], m: usize, k: usize, n: usize) -> Vec<f64> {
        product_f64(MatRef::new(a, m, k, k), MatRef::new(b, k, n, n), None)
    }

    #[test]
    fn panel_product_equals_the_product_of_the_f16_rounded_matrix() {
        let mut seed = 0xF16_u64;
        for (m, k, n) in [
            (1, 1, 1),
            (3, 7, 5),
            (7, 32, 16),
            (13, 33, 17),
            (6, 384, 1152),
            (200, 64, 40),
        ] {
            let a_data = floats(&mut seed, m * k);
            let b_data: Vec<f32> = floats(&mut seed, k * n).iter().map(|v| v * 3.0).collect();
            let bias = floats(&mut seed, n);
            let packed = PanelsF16::pack(&b_data, k, n);
            assert_eq!(packed.len(), n.div_ceil(PANEL) * k * PANEL);
            let mut widened = vec![0f32; packed.len()];
            f16_to_f32(&packed, &mut widened);
            for (i, (w, h)) in widened.iter().zip(&packed).enumerate() {
                assert_eq!(*w, half::f16::from_bits(*h).to_f32(), "widened [{i}]");
            }
            let rounded: Vec<f32> = b_data
                .iter()
                .map(|v| half::f16::from_f32(*v).to_f32())
                .collect();
            let a = MatRef::new(&a_data, m, k, k);
            let want = product_f64(a, MatRef::new(&rounded, k, n, n), Some(&bias));
            let ldc = n + 3;
            let b = PanelsF16 {
                data: &packed,
                rows: k,
                cols: n,
            };
            let (mut fast, mut portable) = (vec![9f32; m * ldc], vec![9f32; m * ldc]);
            sgemm_panels(a, b, Some(&bias), &mut fast, ldc);
            sgemm_panels_portable(a, b, Some(&bias), &mut portable, ldc);
            for (kernel, out) in [("dispatched", &fast), ("portable", &portable)] {
                for i in 0..m {
                    for j in 0..ldc {
                        let got = out[i * ldc + j];
                        if j >= n {
                            assert_eq!(got, 9.0, "{kernel}: padding written at {i},{j}");
                        } else {
                            let w = want[i * n + j];
                            assert!(
                                (f64::from(got) - w).abs() < 1e-4 * (k as f64).sqrt(),
                                "{kernel}: {m}x{k}x{n} at {i},{j}"
                            );
                        }
                    }
                }
            }
            let no_bias = want_without_bias(&a_data, &rounded, m, k, n);
            let mut plain = vec![0f32; m * n];
            sgemm_panels(a, b, None, &mut plain, n);
            for (got, w) in plain.iter().zip(&no_bias) {
                assert!(
                    (f64::from(*got) - w).abs() < 1e-4 * (k as f64).sqrt(),
                    "no bias"
                );
            }
        }
    }

    #[test]
    fn sgemm_of_empty_shapes_writes_nothing() {
        let a = MatRef::new(&[], 0, 4, 4);
        let b = MatRef::new(&[1.0; 8], 4, 2, 2);
        let mut out = vec![3f32; 2];
        sgemm(a, b, None, &mut out, 2);
        assert_eq!(out, [3.0, 3.0]);
        let a = MatRef::new(&[], 1, 0, 0);
        let b = MatRef::new(&[], 0, 2, 2);
        sgemm(a, b, Some(&[0.5, -0.5]), &mut out, 2);
        assert_eq!(out[..2], [0.5, -0.5], "k = 0 leaves the bias");
    }

    #[test]
    fn exp_and_softmax_match_f64_within_float_rounding() {
        let mut x = -90.0f32;
        while x < 89.0 {
            let want = f64::from(x).exp();
            let got = f64::from(exp_f32(x));
            if x > -87.0 && x < 88.0 {
                assert!(
                    (got - want).abs() <= 3e-7 * want,
                    "exp({x}): {got} vs {want}"
                );
            } else {
                assert!(got.is_finite() && got >= 0.0, "exp({x}) = {got}");
            }
            x += 0.013;
        }
        let mut seed = 0x50F7_u64;
        for n in [1, 2, 7, 8, 9, 33, 512] {
            let raw: Vec<f32> = floats(&mut seed, n).iter().map(|v| v * 40.0).collect();
            let scale = 0.176_776_7;
            let max = raw.iter().copied().fold(f32::MIN, f32::max);
            let exps: Vec<f64> = raw
                .iter()
                .map(|v| (f64::from(v - max) * f64::from(scale)).exp())
                .collect();
            let total: f64 = exps.iter().sum();
            let mut got = raw.clone();
            softmax_scaled(&mut got, scale);
            let mut portable = raw.clone();
            softmax_scaled_portable(&mut portable, scale);
            for i in 0..n {
                let want = exps[i] / total;
                for value in [got[i], portable[i]] {
                    assert!(
                        (f64::from(value) - want).abs() < 1e-6,
                        "n {n} [{i}]: {value} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn layer_norm_and_gelu_match_their_scalar_definitions() {
        let mut seed = 0x1A7E_u64;
        for dim in [1, 7, 8, 16, 384] {
            let rows = 3;
            let x = floats(&mut seed, rows * dim);
            let residual = floats(&mut seed, rows * dim);
            let gamma = floats(&mut seed, dim);
            let beta = floats(&mut seed, dim);
            let mut got = x.clone();
            add_layer_norm(&mut got, Some(&residual), &gamma, &beta, 1e-12);
            for r in 0..rows {
                let sum: Vec<f64> = (0..dim)
                    .map(|i| f64::from(x[r * dim + i]) + f64::from(residual[r * dim + i]))
                    .collect();
                let mean = sum.iter().sum::<f64>() / dim as f64;
                let var = sum.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / dim as f64;
                for i in 0..dim {
                    let want = (sum[i] - mean) / (var + 1e-12).sqrt() * f64::from(gamma[i])
                        + f64::from(beta[i]);
                    let g = f64::from(got[r * dim + i]);
                    assert!(
                        (g - want).abs() < 2e-4 * (1.0 + want.abs()),
                        "dim {dim}: {g} vs {want}"
                    );
                }
            }
        }
        let values: Vec<f32> = (-800..800).map(|i| i as f32 / 100.0).collect();
        let mut fast = values.clone();
        gelu_in_place(&mut fast);
        let mut portable = values.clone();
        super::super::activation::gelu_erf_in_place(&mut portable);
        for ((x, f), p) in values.iter().zip(&fast).zip(&portable) {
            assert!((f - p).abs() <= 1e-6, "gelu({x}): {f} vs {p}");
        }
        assert!(fast[0].abs() < 1e-6 && (fast[1599] - 7.99).abs() < 1e-5);
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
