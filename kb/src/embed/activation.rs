//! GELU with the exact (erf) form, computed with a branch-free rational approximation of erf that
//! the compiler vectorises. libm's scalar erf/tanh made GELU a quarter of the encoder's time.

use candle_core::Tensor;

use crate::error::Result;

/// erf(x) as a rational function on [-4, 4] (beyond which erf is ±1 in f32): odd polynomial of
/// degree 13 over an even polynomial of degree 12. Max absolute error ~1e-7 on f32.
#[inline(always)]
pub fn erf(x: f32) -> f32 {
    const A: [f32; 7] = [
        -2.726_142_3e-10,
        2.770_681_4e-8,
        -2.101_024e-6,
        -5.692_506_4e-5,
        -7.349_906_3e-4,
        -2.954_600_1e-3,
        -1.609_603_3e-2,
    ];
    const B: [f32; 5] = [
        -1.456_607_2e-5,
        -2.133_740_6e-4,
        -1.682_827e-3,
        -7.373_329_3e-3,
        -1.426_474e-2,
    ];
    let x = x.clamp(-4.0, 4.0);
    let x2 = x * x;
    let mut p = A[0];
    for a in &A[1..] {
        p = p * x2 + a;
    }
    let mut q = B[0];
    for b in &B[1..] {
        q = q * x2 + b;
    }
    x * p / q
}

/// In-place exact GELU: `x * (1 + erf(x / sqrt 2)) / 2` (inlined so that `kernels` can compile it
/// for AVX2).
#[inline(always)]
pub fn gelu_erf_in_place(values: &mut [f32]) {
    for v in values.iter_mut() {
        let x = *v;
        *v = 0.5 * x * (1.0 + erf(x * std::f32::consts::FRAC_1_SQRT_2));
    }
}

/// Exact GELU of a 2-D f32 tensor.
pub fn gelu_erf(t: &Tensor) -> Result<Tensor> {
    let shape = t.shape().clone();
    let mut data = t.flatten_all()?.to_vec1::<f32>()?;
    gelu_erf_in_place(&mut data);
    Ok(Tensor::from_vec(data, shape, t.device())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// erf by its Maclaurin series (f64), accurate on |x| <= 3 with enough terms.
    fn erf_series(x: f64) -> f64 {
        let mut sum = 0.0;
        let mut term = x;
        let mut n = 0;
        while n < 200 {
            sum += term / (2 * n + 1) as f64;
            n += 1;
            term *= -x * x / n as f64;
        }
        sum * 2.0 / std::f64::consts::PI.sqrt()
    }

    #[test]
    fn erf_is_accurate() {
        let mut worst = 0f64;
        for i in -3000..=3000 {
            let x = i as f64 / 1000.0;
            worst = worst.max((f64::from(erf(x as f32)) - erf_series(x)).abs());
        }
        assert!(worst < 2e-6, "max error {worst}");
        assert_eq!(erf(10.0), erf(4.0));
        assert!((erf(4.0) - 1.0).abs() < 1e-6);
        assert!((erf(-0.5) + erf(0.5)).abs() < 1e-7);
    }

    #[test]
    fn gelu_matches_definition() {
        let mut v = vec![-3.0f32, -1.0, 0.0, 0.5, 2.0];
        gelu_erf_in_place(&mut v);
        let expect = [-0.004_049_7f32, -0.158_655_25, 0.0, 0.345_731_14, 1.954_5];
        for (a, b) in v.iter().zip(expect) {
            assert!((a - b).abs() < 1e-4, "{a} vs {b}");
        }
    }
}
