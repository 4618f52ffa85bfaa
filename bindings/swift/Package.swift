// swift-tools-version:5.9
// The Kefu chat SDK as a Swift package. `scripts/generate-bindings` writes the Swift sources
// (Sources/KefuSDK) and the C header + module map; `build-xcframework.sh` (on a Mac with Xcode)
// builds KefuSDKFFI.xcframework from the Rust library for iOS devices, the simulator and macOS.
import PackageDescription

let package = Package(
    name: "KefuSDK",
    platforms: [.iOS(.v15), .macOS(.v12)],
    products: [
        .library(name: "KefuSDK", targets: ["KefuSDK"]),
    ],
    targets: [
        .binaryTarget(name: "KefuSDKFFI", path: "KefuSDKFFI.xcframework"),
        .target(name: "KefuSDK", dependencies: ["KefuSDKFFI"], path: "Sources/KefuSDK"),
    ]
)
