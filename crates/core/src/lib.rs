//! mist-core: what every mist-rs binary shares besides media: the config model, stream names and
//! wildcards, the control-socket protocol between the controller and its children, logging.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod config;
pub mod control;
pub mod gate;
pub mod log;
pub mod names;
pub mod proxy;
pub mod push;
pub mod triggers;
