//! The Meticulous espresso machine as crema sees it: the live `status` and `sensors` events, the
//! history entries and samples, and the live → history sample mapping. Plain data.
//!
//! Not built yet: this crate holds its place in the workspace map until the recorder issue lands.
#![deny(missing_docs)]
