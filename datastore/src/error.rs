//! [`OpenError`]: why a store could not be opened.

/// Why [`open`](crate::open) or [`open_url`](crate::open_url) failed. URLs in
/// messages never show a password.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The URL's scheme names no backend.
    #[error(
        "{url}: unknown scheme {scheme:?}; expected memory://, rocksdb://PATH, sqlite://PATH or postgres://USER@HOST/DB"
    )]
    UnknownScheme {
        /// The URL (password redacted).
        url: String,
        /// What came before `://` (or the whole URL if there was no `://`).
        scheme: String,
    },
    /// The backend exists but this build left it out.
    #[error(
        "{url}: the {backend} backend is not built in; rebuild with cargo feature \"{feature}\""
    )]
    NotBuiltIn {
        /// The URL (password redacted).
        url: String,
        /// The backend's name.
        backend: &'static str,
        /// The cargo feature that builds it in.
        feature: &'static str,
    },
    /// A URL option or part is wrong.
    #[error("{url}: {option}: {reason}")]
    BadOption {
        /// The URL (password redacted).
        url: String,
        /// The option or part (`path`, `sync_on_commit`, ...).
        option: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The configuration could not be read.
    #[error("configuration {source_name}: {reason}")]
    Config {
        /// The file or environment variable.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The sealing key could not be read (the message never shows the key).
    #[error("sealing key from {source_name}: {reason}")]
    SealingKey {
        /// The file or environment variable.
        source_name: String,
        /// What is wrong.
        reason: String,
    },
    /// The backend refused to open.
    #[error(transparent)]
    Store(#[from] datastore_core::Error),
}
