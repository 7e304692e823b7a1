//! The model test of `tests/model.rs`, run against the sans-IO [`sse_registry::State`] driven
//! directly: `model.rs` is included as is, with `crate::sut` (the layer it tests) the minimal
//! driver in `model/direct.rs` instead of the `Hub`. That driver wakes a stream only when the
//! state returns its key, so the model's wake-up checks hold of the state's own wake lists.

#[path = "model/direct.rs"]
mod sut;

#[path = "model.rs"]
mod model;
