//! MistController: reads the config, serves the JSON API, spawns and supervises the outputs and
//! inputs, answers the children on the control socket. See man/MistController.1.

mod controller;

fn main() {
    std::process::exit(controller::main());
}
