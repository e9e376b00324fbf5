//! SQLite storage: shots, the in-progress journal, analyses, runs and QA results. The only crate
//! that knows SQL.
//!
//! Not built yet: this crate holds its place in the workspace map until the recorder issue lands.
#![deny(missing_docs)]
