//! The operator utilities (`MistUtil*`): talking to the local controller and each tool's logic.

pub mod certbot;
pub mod client;
