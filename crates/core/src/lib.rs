//! mist-core: what every mist-rs binary shares besides media: the config model, stream names and
//! wildcards, the control-socket protocol between the controller and its children, logging.

pub mod config;
pub mod control;
pub mod gate;
pub mod log;
pub mod names;
pub mod proxy;
pub mod push;
pub mod triggers;
