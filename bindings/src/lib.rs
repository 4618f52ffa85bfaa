//! uniffi bindings (Kotlin, Swift, Python) over sdk-core; grows in the client-core issue.
