//! `uniffi-bindgen generate target/debug/libkefu_sdk.so --language kotlin|swift|python --out-dir D`
//! (library mode: the types are read from the built library itself).

fn main() {
    uniffi::uniffi_bindgen_main()
}
