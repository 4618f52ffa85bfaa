//! The agent console and the demo chat page in headless Chromium (Debian `chromium`, npm
//! `playwright-core` in tests/browser) against a real `kefu serve`: answer, handoff, claim,
//! messages both ways with typing, hand back, and XSS payloads rendered as inert text.

use std::process::Command;

use kefu_e2e::{workspace_root, Server};

#[test]
fn console_and_demo_page_in_headless_chromium() {
    let dir = workspace_root().join("tests/browser");
    assert!(
        dir.join("node_modules/playwright-core").is_dir(),
        "playwright-core is not installed: run `npm ci` in tests/browser (scripts/test does)"
    );
    let tmp = tempfile::tempdir().expect("tmp");
    kefu_e2e::add_agent(tmp.path(), &[], "wang", "王小二", "browser-test-pw", &[]);
    let server = Server::start(tmp.path(), &[]);
    let mut node = Command::new("node");
    node.current_dir(&dir)
        .arg("console.mjs")
        .arg(&server.base)
        .arg("wang")
        .arg("browser-test-pw");
    if let Some(shots) = std::env::var_os("KEFU_SCREENSHOTS") {
        node.arg(shots);
    }
    let out = node.output().expect("run node (is Node.js installed?)");
    assert!(
        out.status.success(),
        "browser test failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}
