//! MistInEBML: VoD input (logic in `mist_bins::vod_input`).

fn main() {
    mist_bins::vod_input::main(mist_bins::vod_input::Kind::Ebml)
}
