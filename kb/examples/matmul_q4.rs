//! Measures the encoder's matmul shapes two ways on one thread: f32 weights (what Kefu runs) vs
//! candle's Q4_0 `QMatMul` (weights kept 4-bit). Prints JSON rates; used to choose the weight format.
//!
//! `cargo run --release -p kefu-kb --example matmul_q4`

use std::time::Instant;

use candle_core::quantized::{GgmlDType, QMatMul, QTensor};
use candle_core::{Device, Module, Tensor};
use serde_json::json;

fn time(f: impl Fn() -> candle_core::Result<Tensor>) -> candle_core::Result<f64> {
    f()?;
    let reps = 30;
    let t = Instant::now();
    for _ in 0..reps {
        f()?;
    }
    Ok(t.elapsed().as_secs_f64() * 1e3 / f64::from(reps))
}

fn main() -> candle_core::Result<()> {
    if std::env::var_os("RAYON_NUM_THREADS").is_none() {
        std::env::set_var("RAYON_NUM_THREADS", "1");
    }
    let dev = Device::Cpu;
    let mut rows = Vec::new();
    for (n_in, n_out) in [(384usize, 1152usize), (384, 1536), (1536, 384)] {
        // PyTorch layout [out, in]; f32 path multiplies by the transposed copy.
        let w = Tensor::randn(0f32, 0.05, (n_out, n_in), &dev)?;
        let w_t = w.t()?.contiguous()?;
        let q = QMatMul::from_qtensor(QTensor::quantize(&w, GgmlDType::Q4_0)?)?;
        for m in [12usize, 96, 384] {
            let x = Tensor::randn(0f32, 1.0, (m, n_in), &dev)?;
            let f32_ms = time(|| x.matmul(&w_t))?;
            let q4_ms = time(|| q.forward(&x))?;
            // The same product computed transposed: W [out, in] x X^T, so gemm's long side is `out`.
            let f32_t_ms = time(|| w.matmul(&x.t()?)?.t()?.contiguous())?;
            rows.push(json!({ "tokens": m, "in": n_in, "out": n_out, "f32_ms": f32_ms, "f32_transposed_ms": f32_t_ms, "q4_0_ms": q4_ms, "q4_over_f32_time": q4_ms / f32_ms }));
        }
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&rows).unwrap_or_default()
    );
    Ok(())
}
