//! Typed Go values, their text and JSON forms, and expressions.
