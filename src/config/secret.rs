//! [`Secret`]: a configured value (token, key, URL with a password) that must never reach a
//! log line.
//!
//! Must not: print its value — `Debug` redacts, and there is no `Display`; the value leaves
//! only through [`Secret::expose`], at the call that needs it.

use std::fmt;

/// A value that must never reach a log line.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(s: impl Into<String>) -> Self {
        Self(s.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([REDACTED])")
    }
}
