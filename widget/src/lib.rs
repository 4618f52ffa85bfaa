//! wasm-bindgen wrapper over sdk-core for the embeddable web chat widget; grows in the client-core issue.
