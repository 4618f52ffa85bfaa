//! The embeddable web widget (`/widget.js`, its wasm-bindgen module and wasm, built into the
//! binary by `build.rs`) and the demo shop page at `/` that loads it with one script tag.

use axum::extract::Query;
use axum::http::header::{
    ACCEPT_LANGUAGE, CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, X_CONTENT_TYPE_OPTIONS,
};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;

/// The widget's three files.
pub struct WidgetAssets {
    /// `widget.js`: the one-tag loader that draws the bubble and panel.
    pub loader: &'static [u8],
    /// The wasm-bindgen ES module.
    pub glue: &'static [u8],
    pub wasm: &'static [u8],
}

include!(concat!(env!("OUT_DIR"), "/widget_assets.rs"));

fn asset(content_type: &'static str, body: Option<&'static [u8]>) -> Response {
    match body {
        Some(body) => (
            [
                (CONTENT_TYPE, content_type),
                // Not fingerprinted: browsers revalidate, so an upgrade reaches every page.
                (CACHE_CONTROL, "no-cache"),
                (X_CONTENT_TYPE_OPTIONS, "nosniff"),
            ],
            body,
        )
            .into_response(),
        None => ApiError::new(
            kefu_protocol::ErrorCode::Unavailable,
            "this server was built without the web widget: run scripts/build-widget, then rebuild",
        )
        .into_response(),
    }
}

/// `GET /widget.js`.
pub async fn loader() -> Response {
    asset("text/javascript; charset=utf-8", WIDGET.map(|w| w.loader))
}

/// `GET /widget/kefu_widget.js`.
pub async fn glue() -> Response {
    asset("text/javascript; charset=utf-8", WIDGET.map(|w| w.glue))
}

/// `GET /widget/kefu_widget_bg.wasm`.
pub async fn wasm() -> Response {
    asset("application/wasm", WIDGET.map(|w| w.wasm))
}

#[derive(Debug, Deserialize)]
pub struct ShopQuery {
    #[serde(default)]
    lang: Option<String>,
}

/// The shop page loads only its own scripts (the widget) and talks only to this server.
const SHOP_CSP: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// `GET /`: the demo shop, in Chinese or English (`?lang=zh|en`, else the browser's language),
/// with the chat widget for site `demo`.
pub async fn shop(Query(q): Query<ShopQuery>, headers: HeaderMap) -> impl IntoResponse {
    let zh = match q.lang.as_deref() {
        Some(l) => l.starts_with("zh"),
        None => headers
            .get(ACCEPT_LANGUAGE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim_start().to_ascii_lowercase().starts_with("zh")),
    };
    let page = if zh { &SHOP_ZH } else { &SHOP_EN };
    let html = include_str!("../../assets/shop.html")
        .replace("{{lang}}", page.lang)
        .replace("{{title}}", page.title)
        .replace("{{console}}", page.console)
        .replace("{{hero}}", page.hero)
        .replace("{{help}}", page.help)
        .replace("{{footer}}", page.footer)
        .replace(
            "{{products}}",
            &page
                .products
                .iter()
                .map(|(name, price, blurb)| {
                    format!(
                        "<div class=\"card\"><h2>{name}</h2><p class=\"price\">{price}</p><p>{blurb}</p></div>"
                    )
                })
                .collect::<String>(),
        );
    (
        [
            (CONTENT_TYPE, "text/html; charset=utf-8"),
            (CONTENT_SECURITY_POLICY, SHOP_CSP),
            (CACHE_CONTROL, "no-cache"),
        ],
        html,
    )
}

struct ShopPage {
    lang: &'static str,
    title: &'static str,
    console: &'static str,
    hero: &'static str,
    help: &'static str,
    footer: &'static str,
    products: [(&'static str, &'static str, &'static str); 4],
}

const SHOP_EN: ShopPage = ShopPage {
    lang: "en",
    title: "Kefu Demo Shop",
    console: "Agent console",
    hero: "Teas, cups and gifts, shipped from our own warehouse.",
    help: "Questions about shipping, returns or invoices? Open the chat in the corner: our assistant answers from the shop's knowledge base, and a person takes over when it cannot.",
    footer: "A demo store for trying Kefu. Nothing here is for sale.",
    products: [
        ("Longjing green tea, 250 g", "¥168", "Spring harvest from Hangzhou."),
        ("Celadon tea cup set", "¥299", "Four cups and a pitcher, hand glazed."),
        ("Oolong sampler", "¥128", "Six single-origin oolongs."),
        ("Gift box", "¥88", "Wrapped with a handwritten card."),
    ],
};

const SHOP_ZH: ShopPage = ShopPage {
    lang: "zh-CN",
    title: "客服演示商店",
    console: "客服工作台",
    hero: "好茶、茶具和礼品，自有仓库直接发货。",
    help: "关于发货、退换货或发票的问题？点开右下角的在线客服：智能助手根据商店的知识库回答，答不了时由人工客服接手。",
    footer: "这是试用 Kefu 的演示商店，商品不出售。",
    products: [
        ("西湖龙井 250 克", "¥168", "杭州明前春茶。"),
        ("青瓷茶具套装", "¥299", "四杯一公道杯，手工上釉。"),
        ("乌龙品鉴装", "¥128", "六款单一产区乌龙茶。"),
        ("礼盒包装", "¥88", "附手写贺卡。"),
    ],
};
