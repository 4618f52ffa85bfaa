#!/usr/bin/env bash
# Builds KefuSDKFFI.xcframework (static libkefu_sdk.a + the generated C header and module map) for
# iOS devices, the iOS simulator (arm64 + x86_64) and macOS. Run on a Mac with Xcode, after
# scripts/generate-bindings.
set -euo pipefail
cd "$(dirname "$0")"
ROOT=$(cd ../.. && pwd)
TARGETS=(aarch64-apple-ios aarch64-apple-ios-sim x86_64-apple-ios aarch64-apple-darwin x86_64-apple-darwin)
for t in "${TARGETS[@]}"; do
    rustup target add "$t"
    (cd "$ROOT" && cargo rustc -p kefu-bindings --lib --release --target "$t" --crate-type staticlib)
done
lib() { echo "$ROOT/target/$1/release/libkefu_sdk.a"; }
OUT=$(mktemp -d)
mkdir -p "$OUT/ios-sim" "$OUT/macos"
lipo -create "$(lib aarch64-apple-ios-sim)" "$(lib x86_64-apple-ios)" -output "$OUT/ios-sim/libkefu_sdk.a"
lipo -create "$(lib aarch64-apple-darwin)" "$(lib x86_64-apple-darwin)" -output "$OUT/macos/libkefu_sdk.a"
HEADERS=Sources/KefuSDKFFI/include
test -f "$HEADERS/KefuSDKFFI.h" || { echo "run scripts/generate-bindings first" >&2; exit 1; }
rm -rf KefuSDKFFI.xcframework
xcodebuild -create-xcframework \
    -library "$(lib aarch64-apple-ios)" -headers "$HEADERS" \
    -library "$OUT/ios-sim/libkefu_sdk.a" -headers "$HEADERS" \
    -library "$OUT/macos/libkefu_sdk.a" -headers "$HEADERS" \
    -output KefuSDKFFI.xcframework
echo "built $(pwd)/KefuSDKFFI.xcframework"
