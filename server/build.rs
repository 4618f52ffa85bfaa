//! Embeds the built web widget (`widget/dist`, made by `scripts/build-widget`) so the one
//! `kefu` binary serves `/widget.js` and its wasm. Without a build, `/widget.js` answers 503
//! `widget_not_built` and everything else works.

use std::path::{Path, PathBuf};

const FILES: [&str; 3] = ["widget.js", "kefu_widget.js", "kefu_widget_bg.wasm"];

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let dist = manifest.join("../widget/dist");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("OUT_DIR")).join("widget_assets.rs");
    let built = FILES.iter().all(|f| dist.join(f).is_file());
    let code = if built {
        for f in FILES {
            println!("cargo:rerun-if-changed={}", dist.join(f).display());
        }
        let inc = |f: &str| format!("include_bytes!({:?})", path_str(&dist.join(f)));
        format!(
            "/// The built widget.\npub const WIDGET: Option<WidgetAssets> = Some(WidgetAssets {{ loader: {}, glue: {}, wasm: {} }});\n",
            inc(FILES[0]),
            inc(FILES[1]),
            inc(FILES[2])
        )
    } else {
        // A path that does not exist would rerun this script on every build; the widget's folder,
        // where `dist` appears when the widget is built, does.
        println!(
            "cargo:rerun-if-changed={}",
            manifest.join("../widget").display()
        );
        println!("cargo:warning=the web widget is not built (run scripts/build-widget): /widget.js will answer 503");
        "/// The widget was not built.\npub const WIDGET: Option<WidgetAssets> = None;\n"
            .to_string()
    };
    std::fs::write(out, code).expect("write widget_assets.rs");
}

fn path_str(p: &Path) -> String {
    p.canonicalize()
        .unwrap_or_else(|_| p.to_path_buf())
        .display()
        .to_string()
}
