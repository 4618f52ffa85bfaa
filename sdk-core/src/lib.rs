//! The one client core (platform-neutral Rust) shared by the Android/iOS bindings and the web widget; grows in the client-core issue.
