//! MP4 / ISO-BMFF: box parsing, a sans-IO progressive and fragmented reader with a compact sample
//! index, and writers for progressive files (moov first or at the end) and CMAF fragments.
//!
//! Times at the API are milliseconds (as in [`crate::Frame`]); inside files they are track ticks,
//! converted from absolute times so that nothing drifts.

pub mod boxes;
pub mod entry;
pub mod fragment;
pub mod reader;
pub mod writer;

pub use boxes::{BoxHeader, Boxes};
pub use fragment::{parse_moof, FragSample, FragmentOptions, FragmentWriter};
pub use reader::{parse_moov, read_all, Limits, Movie, MovieTrack, Mp4Reader, Need, SampleTable};
pub use writer::{Mp4Writer, Patch};
