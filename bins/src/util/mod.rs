//! The operator utilities (`MistUtil*`): talking to the local controller and each tool's logic.

pub mod certbot;
pub mod cli;
pub mod client;
pub mod health;
pub mod logtool;
pub mod nuke;
pub mod writer;
