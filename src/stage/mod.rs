//! The stages of a run, in the order data flows through them:
//!
//! 1. [`discover`]: the input folders walked into image files;
//! 2. [`decode`]: a file into pixels in [0, 1] (PNG, JPEG, TIFF, BMP, DICOM);
//! 3. [`preprocess`]: pixels into the network's input tensor, with the exact [`preprocess::Geometry`];
//! 4. [`model`]: the network cut at its feature map F, run by tract (infer);
//! 5. [`maps`]: F into predictions and class maps (CAM, Grad-CAM and relatives);
//! 6. [`localise`]: a class map into masks and boxes in original-image pixels.
//!
//! Each stage owns the option types it consumes (the configuration parses TOML straight
//! into them) and the value types it produces; a stage imports only from the stages
//! before it, and [`input_spec`] holds the one fact two stages share across the
//! direction of flow (what the network expects as input, read by the model stage and
//! built to by the preprocessing).

pub mod input_spec;

pub mod discover;
pub mod decode;
pub mod preprocess;
pub mod model;
pub mod maps;
pub mod localise;
