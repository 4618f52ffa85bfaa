// Android library module for the Kefu chat SDK. Include it in your app's settings.gradle.kts
// (`include(":kefu-sdk")` with `projectDir = file("path/to/bindings/android")`), or build an AAR
// with `./gradlew :kefu-sdk:assembleRelease`.
//
// Before building: `scripts/generate-bindings` puts the Kotlin sources in src/main/kotlin, and
// `bindings/android/build-jni-libs.sh` (needs the Android NDK and cargo-ndk) puts
// libkefu_sdk.so for each ABI in src/main/jniLibs/<abi>/.
plugins {
    id("com.android.library")
    id("org.jetbrains.kotlin.android")
}

android {
    namespace = "io.kefu.sdk"
    compileSdk = 35
    defaultConfig {
        minSdk = 24
        consumerProguardFiles("consumer-rules.pro")
    }
    compileOptions {
        sourceCompatibility = JavaVersion.VERSION_17
        targetCompatibility = JavaVersion.VERSION_17
    }
    kotlinOptions { jvmTarget = "17" }
    sourceSets["main"].jniLibs.srcDirs("src/main/jniLibs")
}

dependencies {
    // uniffi's Kotlin bindings call the native library through JNA and expose suspend functions.
    implementation("net.java.dev.jna:jna:5.14.0@aar")
    implementation("org.jetbrains.kotlinx:kotlinx-coroutines-android:1.9.0")
}
