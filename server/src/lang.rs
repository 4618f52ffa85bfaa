//! The language the bot and the system notes speak (owned by the knowledge engine, which also
//! needs it to compose answers).

pub use kefu_kb::Lang;
