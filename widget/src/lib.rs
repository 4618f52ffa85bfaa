//! The web widget's engine, compiled to wasm: `KefuChat` (the client core driving the browser
//! WebSocket) and `renderMessage` (markdown to DOM nodes, never HTML from the wire). The chat
//! bubble and panel around them are drawn by `widget/js/widget.js`.

pub mod render;

#[cfg(target_arch = "wasm32")]
mod web {
    use std::sync::Arc;

    use kefu_sdk_core::{Client, ClientConfig, Event, Identity, Listener};
    use wasm_bindgen::prelude::*;

    use crate::render::{render, Sink};

    /// Hands each event to the page as a JSON string (`JSON.parse` it).
    struct JsListener(js_sys::Function);

    impl Listener for JsListener {
        fn on_event(&self, event: Event) {
            if let Ok(json) = serde_json::to_string(&event) {
                let _ = self.0.call1(&JsValue::NULL, &JsValue::from_str(&json));
            }
        }
    }

    fn js_error(e: kefu_sdk_core::ClientError) -> JsError {
        JsError::new(&e.to_string())
    }

    /// One visitor chat in the page.
    #[wasm_bindgen]
    pub struct KefuChat {
        client: Client,
    }

    #[wasm_bindgen]
    impl KefuChat {
        /// Starts the chat. `resume` is a saved `session_started` event's JSON (or undefined);
        /// `on_event` receives every event as a JSON string; `user_id` + `user_hash` verify a
        /// signed-in user, `name` is shown to agents.
        #[wasm_bindgen(constructor)]
        pub fn new(
            server_url: String,
            site_key: String,
            resume: Option<String>,
            on_event: js_sys::Function,
            user_id: Option<String>,
            user_hash: Option<String>,
            name: Option<String>,
        ) -> Result<KefuChat, JsError> {
            let resume = resume
                .as_deref()
                .and_then(|s| serde_json::from_str::<serde_json::Value>(s).ok())
                .and_then(|v| {
                    Some(Identity {
                        token: v["token"].as_str()?.to_string(),
                        visitor_id: v["visitor_id"].as_str()?.to_string(),
                        conversation_id: v["conversation_id"].as_str()?.to_string(),
                    })
                });
            let config = ClientConfig {
                server_url,
                site_key,
                user_id,
                user_hash,
                name,
                resume,
            };
            let client = Client::start(config, Arc::new(JsListener(on_event))).map_err(js_error)?;
            Ok(KefuChat { client })
        }

        /// Queues a message; returns its client id (`message_acked` follows).
        pub fn send(&self, text: &str) -> Result<String, JsError> {
            self.client.send_text(text).map_err(js_error)
        }

        /// Queues a message carrying uploaded files (`attachments`: their ids; the text may be
        /// empty); returns its client id.
        #[wasm_bindgen(js_name = sendWithAttachments)]
        pub fn send_with_attachments(
            &self,
            text: &str,
            attachments: Vec<String>,
        ) -> Result<String, JsError> {
            self.client
                .send_with_attachments(text, attachments)
                .map_err(js_error)
        }

        /// Uploads a file's bytes; the promise resolves with the attachment's JSON (its `id`
        /// goes to `sendWithAttachments`) or rejects with the server's refusal.
        #[wasm_bindgen(js_name = uploadAttachment)]
        pub fn upload_attachment(&self, name: &str, bytes: Vec<u8>) -> js_sys::Promise {
            let upload = self.client.upload_attachment(name, bytes);
            wasm_bindgen_futures::future_to_promise(async move {
                let attachment = upload.await.map_err(|e| JsValue::from(js_error(e)))?;
                serde_json::to_string(&attachment)
                    .map(|json| JsValue::from_str(&json))
                    .map_err(|e| JsValue::from_str(&e.to_string()))
            })
        }

        #[wasm_bindgen(js_name = requestHuman)]
        pub fn request_human(&self) -> Result<(), JsError> {
            self.client.request_human().map_err(js_error)
        }

        #[wasm_bindgen(js_name = loadHistory)]
        pub fn load_history(&self, limit: u32) -> Result<(), JsError> {
            self.client.load_history(limit).map_err(js_error)
        }

        #[wasm_bindgen(js_name = setTyping)]
        pub fn set_typing(&self, typing: bool) -> Result<(), JsError> {
            self.client.set_typing(typing).map_err(js_error)
        }

        #[wasm_bindgen(js_name = markRead)]
        pub fn mark_read(&self, seq: f64) -> Result<(), JsError> {
            self.client.mark_read(seq as u64).map_err(js_error)
        }

        /// Rates the current conversation 1–5 with an optional comment; the promise resolves
        /// once the server stored it.
        pub fn rate(&self, score: u8, comment: Option<String>) -> js_sys::Promise {
            let rating = self.client.rate(score, comment);
            wasm_bindgen_futures::future_to_promise(async move {
                rating
                    .await
                    .map(|()| JsValue::UNDEFINED)
                    .map_err(|e| js_error(e).into())
            })
        }

        pub fn close(&self) {
            self.client.close()
        }
    }

    /// Builds DOM nodes under an element.
    struct DomSink {
        document: web_sys::Document,
        stack: Vec<web_sys::Element>,
        error: Option<JsValue>,
    }

    impl DomSink {
        fn top(&self) -> Option<&web_sys::Element> {
            self.stack.last()
        }

        fn append(&mut self, node: &web_sys::Node) {
            if let Some(top) = self.top() {
                if let Err(e) = top.append_child(node) {
                    self.error = Some(e);
                }
            }
        }
    }

    impl Sink for DomSink {
        fn open(&mut self, tag: &'static str, href: Option<&str>) {
            match self.document.create_element(tag) {
                Ok(el) => {
                    if let Some(h) = href {
                        let _ = el.set_attribute("href", h);
                        let _ = el.set_attribute("target", "_blank");
                        let _ = el.set_attribute("rel", "noopener noreferrer nofollow");
                    }
                    self.append(&el);
                    self.stack.push(el);
                }
                Err(e) => self.error = Some(e),
            }
        }

        fn close(&mut self) {
            if self.stack.len() > 1 {
                self.stack.pop();
            }
        }

        fn text(&mut self, text: &str) {
            let node = self.document.create_text_node(text);
            self.append(&node);
        }

        fn line_break(&mut self) {
            match self.document.create_element("br") {
                Ok(br) => self.append(&br),
                Err(e) => self.error = Some(e),
            }
        }
    }

    /// Renders a message's markdown into `target` as DOM nodes (text nodes for all text).
    #[wasm_bindgen(js_name = renderMessage)]
    pub fn render_message(target: &web_sys::Element, markdown: &str) -> Result<(), JsValue> {
        let document = target
            .owner_document()
            .ok_or_else(|| JsValue::from_str("the element has no document"))?;
        let mut sink = DomSink {
            document,
            stack: vec![target.clone()],
            error: None,
        };
        render(markdown, &mut sink);
        match sink.error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

#[cfg(target_arch = "wasm32")]
pub use web::*;
