//! The embeddable web widget (`/widget.js` + wasm) in headless Chromium against a real
//! `kefu serve` (tests/browser/widget.mjs): bot answers with sources and quick replies, a handoff
//! answered from the console, a message queued across a server restart, the offline form, CSS
//! isolation, keyboard use, XSS payloads inert, and cross-origin embedding by allow-list.
//!
//! Needs the widget built into the binary (`scripts/build-widget` before `cargo build`).

use std::process::Command;

use kefu_e2e::{drive_script, kefu, run, workspace_root, Server};

#[test]
fn widget_in_headless_chromium() {
    let dir = workspace_root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/browser (scripts/test does)"
    );
    // A port for the third-party page (the script serves it): its origin goes on the allow-list.
    let shop_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port();
    let shop_origin = format!("http://127.0.0.1:{shop_port}");
    let tmp = tempfile::tempdir().expect("tmp");
    kefu_e2e::add_agent(tmp.path(), &[], "wang", "王小二", "widget-test-pw", &[]);
    let mut site = kefu(tmp.path());
    site.args(["site", "add", "shop", "--origin", &shop_origin]);
    let out = run(site);
    assert!(out.status.success(), "kefu site add: {out:?}");
    let mut server = Server::start(tmp.path(), &[]);
    let widget = reqwest::blocking::get(server.url("/widget.js")).expect("GET /widget.js");
    assert_eq!(
        widget.status(),
        200,
        "the server was built without the widget: run scripts/build-widget, then cargo build"
    );
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .arg("widget.mjs")
        .arg(&server.base)
        .arg("wang")
        .arg("widget-test-pw")
        .arg(shop_port.to_string());
    if let Some(shots) = std::env::var_os("KEFU_SCREENSHOTS") {
        node.arg(shots);
    }
    drive_script(node, &mut server, tmp.path(), &[]);
}
