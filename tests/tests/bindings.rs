//! The client core through its generated uniffi bindings, from Python and from Kotlin on the JVM,
//! against a real `kefu serve` answering through a scripted LLM backend (answer mode `llm`): the
//! streamed pieces (`MessageDelta`) and the bot's answer, a handoff answered through the agent
//! API, and a message queued while the server restarts, delivered exactly once.
//!
//! Needs `libkefu_sdk.so` and the `uniffi-bindgen` binary built next to `kefu` (scripts/test
//! builds the whole workspace first), python3, and for Kotlin the npm `kotlin-compiler` in
//! tests/browser plus Debian's `libjna-java`.

use std::path::{Path, PathBuf};
use std::process::Command;

use kefu_e2e::llm::ScriptedLlm;
use kefu_e2e::{drive_script, kefu_bin, workspace_root, Server};

const AGENT_PASSWORD: &str = "bindings-test-pw";

fn profile_dir() -> PathBuf {
    kefu_bin()
        .parent()
        .map(Path::to_path_buf)
        .expect("profile dir")
}

fn library() -> PathBuf {
    let lib = profile_dir().join("libkefu_sdk.so");
    assert!(
        lib.is_file(),
        "{} not found: build it first (cargo build -p kefu-bindings)",
        lib.display()
    );
    lib
}

/// Generates `language` bindings from the built library (uniffi library mode).
fn generate(language: &str, out: &Path) {
    let bindgen = profile_dir().join("uniffi-bindgen");
    assert!(
        bindgen.is_file(),
        "{} not found: build it first (cargo build -p uniffi-bindgen)",
        bindgen.display()
    );
    let status = Command::new(bindgen)
        .current_dir(workspace_root().join("bindings"))
        .args([
            "generate",
            "--no-format",
            "--language",
            language,
            "--out-dir",
        ])
        .arg(out)
        .arg(library())
        .status()
        .expect("run uniffi-bindgen");
    assert!(status.success(), "uniffi-bindgen {language} failed");
}

const MEMBERS_SECRET: &str = "members-secret-0123456789";

/// A server with an agent account, a site `members` that only chats with verified users, and the
/// demo knowledge base answering through the scripted LLM at `llm_args`.
fn server(dir: &Path, llm_args: &[&str]) -> Server {
    kefu_e2e::add_agent(dir, &[], "wang", "王小二", AGENT_PASSWORD, &[]);
    let mut site = kefu_e2e::kefu(dir);
    site.args([
        "site",
        "add",
        "members",
        "--enforce-identity",
        "--identity-secret",
    ])
    .arg(MEMBERS_SECRET);
    let out = kefu_e2e::run(site);
    assert!(out.status.success(), "kefu site add: {out:?}");
    let server = Server::start(dir, llm_args);
    let mut mode = kefu_e2e::kefu(dir);
    mode.args(["kb", "mode", "llm"]);
    let out = kefu_e2e::run(mode);
    assert!(out.status.success(), "kefu kb mode llm: {out:?}");
    server
}

fn client_env(cmd: &mut Command, server: &Server) {
    cmd.env("KEFU_URL", &server.base)
        .env("KEFU_AGENT", "wang")
        .env("KEFU_AGENT_PASSWORD", AGENT_PASSWORD)
        .env("KEFU_MEMBERS_SECRET", MEMBERS_SECRET);
}

#[test]
fn python_client_chats_hands_off_and_survives_a_restart() {
    let gen = tempfile::tempdir().expect("tmp");
    generate("python", gen.path());
    std::fs::copy(library(), gen.path().join("libkefu_sdk.so")).expect("copy library");
    let data = tempfile::tempdir().expect("tmp");
    let llm = ScriptedLlm::start();
    let llm_args = ["--llm-url", llm.base.as_str()];
    let mut server = server(data.path(), &llm_args);
    let mut cmd = Command::new("python3");
    cmd.arg(workspace_root().join("bindings/tests/python/test_chat.py"))
        .env("PYTHONPATH", gen.path());
    client_env(&mut cmd, &server);
    drive_script(cmd, &mut server, data.path(), &llm_args);
}

#[test]
fn kotlin_client_chats_hands_off_and_survives_a_restart() {
    let kotlin = workspace_root().join("tests/browser/node_modules/kotlin-compiler");
    assert!(
        kotlin.join("bin/kotlinc").is_file(),
        "kotlin-compiler is not installed: run `npm ci` in tests/browser (scripts/test does)"
    );
    let jna = Path::new("/usr/share/java/jna.jar");
    assert!(
        jna.is_file(),
        "JNA is not installed: apt-get install libjna-java"
    );
    let coroutines = kotlin.join("lib/kotlinx-coroutines-core-jvm.jar");
    let gen = tempfile::tempdir().expect("tmp");
    generate("kotlin", gen.path());
    let jar = gen.path().join("chat-test.jar");
    let classpath = format!("{}:{}", jna.display(), coroutines.display());
    let out = Command::new(kotlin.join("bin/kotlinc"))
        .arg(gen.path().join("io/kefu/sdk/kefu_sdk.kt"))
        .arg(workspace_root().join("bindings/tests/kotlin/ChatTest.kt"))
        .args(["-nowarn", "-include-runtime", "-cp", &classpath, "-d"])
        .arg(&jar)
        .output()
        .expect("run kotlinc (needs a JDK)");
    assert!(
        out.status.success(),
        "kotlinc failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let data = tempfile::tempdir().expect("tmp");
    let llm = ScriptedLlm::start();
    let llm_args = ["--llm-url", llm.base.as_str()];
    let mut server = server(data.path(), &llm_args);
    let mut cmd = Command::new("java");
    cmd.arg(format!("-Djna.library.path={}", profile_dir().display()))
        .arg("-cp")
        .arg(format!("{}:{classpath}", jar.display()))
        .arg("ChatTestKt");
    client_env(&mut cmd, &server);
    drive_script(cmd, &mut server, data.path(), &llm_args);
}

#[test]
fn mobile_packages_are_generated_and_laid_out() {
    let out = tempfile::tempdir().expect("tmp");
    let status = Command::new(workspace_root().join("scripts/generate-bindings"))
        .arg(out.path())
        .env("KEFU_SDK_LIB", library())
        .env("UNIFFI_BINDGEN", profile_dir().join("uniffi-bindgen"))
        .status()
        .expect("run scripts/generate-bindings");
    assert!(status.success(), "scripts/generate-bindings failed");
    let read = |p: &str| {
        std::fs::read_to_string(out.path().join(p)).unwrap_or_else(|e| panic!("{p}: {e}"))
    };
    let kotlin = read("android/src/main/kotlin/io/kefu/sdk/kefu_sdk.kt");
    assert!(kotlin.contains("package io.kefu.sdk"));
    assert!(
        kotlin.contains("suspend fun `send`"),
        "async send is a suspend function"
    );
    let swift = read("swift/Sources/KefuSDK/KefuSDK.swift");
    assert!(swift.contains("open class ChatClient") || swift.contains("public class ChatClient"));
    assert!(
        swift.contains("func send(text: String) async throws"),
        "async send in Swift"
    );
    assert!(read("swift/Sources/KefuSDKFFI/include/module.modulemap").contains("KefuSDKFFI"));
    assert!(read("swift/Sources/KefuSDKFFI/include/KefuSDKFFI.h").contains("uniffi_kefu_sdk_fn"));
    assert!(read("python/kefu_sdk.py").contains("class ChatClient"));
    assert!(out.path().join("python/libkefu_sdk.so").is_file());
    // The package manifests point at exactly these places.
    let manifest = std::fs::read_to_string(workspace_root().join("bindings/swift/Package.swift"))
        .expect("Package.swift");
    assert!(manifest.contains("Sources/KefuSDK") && manifest.contains("KefuSDKFFI.xcframework"));
}
