#!/usr/bin/env bash
# Builds libkefu_sdk.so for every Android ABI into src/main/jniLibs/<abi>/ (the layout Gradle
# packs into the AAR). Needs the Android NDK (ANDROID_NDK_HOME) and `cargo install cargo-ndk`.
set -euo pipefail
cd "$(dirname "$0")"
ABIS=(arm64-v8a armeabi-v7a x86_64)
for abi in "${ABIS[@]}"; do
    case "$abi" in
        arm64-v8a) target=aarch64-linux-android ;;
        armeabi-v7a) target=armv7-linux-androideabi ;;
        x86_64) target=x86_64-linux-android ;;
    esac
    rustup target add "$target"
done
cargo ndk $(printf -- '-t %s ' "${ABIS[@]}") -o src/main/jniLibs --platform 24 \
    build --release -p kefu-bindings
ls -R src/main/jniLibs
