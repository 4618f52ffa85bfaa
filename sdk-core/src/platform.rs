//! Task spawning and timers, the first of the two places where native and browser differ.
//! Native: tokio. Browser: the page's event loop (`spawn_local`, `setTimeout`). Browser callbacks
//! are not `Send`, so the bounds the client needs are the `MaybeSend`/`MaybeSync` aliases.

use std::future::Future;
use std::time::Duration;

#[cfg(not(target_arch = "wasm32"))]
mod imp {
    use super::*;

    /// `Send` natively, nothing in the browser.
    pub trait MaybeSend: Send {}
    impl<T: Send + ?Sized> MaybeSend for T {}
    /// `Sync` natively, nothing in the browser.
    pub trait MaybeSync: Sync {}
    impl<T: Sync + ?Sized> MaybeSync for T {}

    /// Runs `fut` on the current tokio runtime.
    pub fn spawn(fut: impl Future<Output = ()> + Send + 'static) {
        tokio::spawn(fut);
    }

    pub async fn sleep(d: Duration) {
        tokio::time::sleep(d).await
    }
}

#[cfg(target_arch = "wasm32")]
mod imp {
    use super::*;

    pub trait MaybeSend {}
    impl<T: ?Sized> MaybeSend for T {}
    pub trait MaybeSync {}
    impl<T: ?Sized> MaybeSync for T {}

    /// Runs `fut` on the page's event loop.
    pub fn spawn(fut: impl Future<Output = ()> + 'static) {
        wasm_bindgen_futures::spawn_local(fut);
    }

    pub async fn sleep(d: Duration) {
        gloo_timers::future::sleep(d).await
    }
}

pub use imp::*;
