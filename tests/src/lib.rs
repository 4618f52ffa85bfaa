//! Helpers shared by the end-to-end tests: locating the `kefu` binary and model dir, spawning servers.
