//! Wire types shared by the server and every client (serde frames, ids, error codes; no I/O); grows with the conversation server.
