//! The storage conformance suite: every behaviour the application relies on, one function
//! each, run against every backend. A backend proves itself by passing all of them
//! (`tests/sqlite.rs` runs them on SQLite, each as a named test).
//!
//! Built for this crate's tests and, with the `conformance` feature, for another crate's.
#![allow(missing_docs, clippy::unwrap_used)]

use std::path::Path;

use crate::{Options, Store};

mod leases;
mod outbox;
mod runs;
mod store;

/// Where a backend keeps one store, for one behaviour.
pub trait Location: Sync {
    /// Opens the store here (the same store each time), as `options` say; panics on failure.
    fn open(&self, options: Options) -> Store;
    /// A folder for files a behaviour writes (exports).
    fn scratch(&self) -> &Path;
    /// Another location of the same backend, with an empty store.
    fn fresh(&self) -> Box<dyn Location>;
}

/// A behaviour: its name and its check.
pub type Behaviour = (&'static str, fn(&dyn Location));

/// Every behaviour, by name.
pub const BEHAVIOURS: &[Behaviour] = &[
    (
        "outbox::a_finished_shot_is_planned_once_and_delivered_once",
        outbox::a_finished_shot_is_planned_once_and_delivered_once,
    ),
    (
        "outbox::the_outbox_survives_a_reopen",
        outbox::the_outbox_survives_a_reopen,
    ),
    (
        "outbox::a_shot_cut_by_a_crash_is_delivered_once",
        outbox::a_shot_cut_by_a_crash_is_delivered_once,
    ),
    (
        "store::opening_a_new_store_at_once_from_many_places",
        store::opening_a_new_store_at_once_from_many_places,
    ),
    (
        "store::a_live_shot_then_its_history_copy_replaces_it_once",
        store::a_live_shot_then_its_history_copy_replaces_it_once,
    ),
    (
        "store::history_first_then_the_live_copy_gives_way",
        store::history_first_then_the_live_copy_gives_way,
    ),
    (
        "store::a_crash_leaves_recording_shots_that_reopen_as_partial",
        store::a_crash_leaves_recording_shots_that_reopen_as_partial,
    ),
    (
        "store::a_merge_moves_the_samples_into_the_interrupted_shot",
        store::a_merge_moves_the_samples_into_the_interrupted_shot,
    ),
    (
        "store::a_short_shot_is_discarded_and_the_export_is_a_shot_file",
        store::a_short_shot_is_discarded_and_the_export_is_a_shot_file,
    ),
    ("store::shots_page_by_cursor", store::shots_page_by_cursor),
    (
        "store::failing_the_nth_commit_loses_nothing",
        store::failing_the_nth_commit_loses_nothing,
    ),
    (
        "store::a_second_live_copy_of_the_same_shot_joins_the_first",
        store::a_second_live_copy_of_the_same_shot_joins_the_first,
    ),
    (
        "leases::a_dead_processs_run_is_interrupted_by_another",
        leases::a_dead_processs_run_is_interrupted_by_another,
    ),
    (
        "runs::one_active_run_and_its_life",
        runs::one_active_run_and_its_life,
    ),
    (
        "runs::an_active_run_is_interrupted_by_a_restart",
        runs::an_active_run_is_interrupted_by_a_restart,
    ),
    (
        "runs::qa_results_and_analyses_replace_their_earlier_copy",
        runs::qa_results_and_analyses_replace_their_earlier_copy,
    ),
    (
        "leases::a_lease_is_refused_while_held_and_fences_the_old_holder_once_taken",
        leases::a_lease_is_refused_while_held_and_fences_the_old_holder_once_taken,
    ),
    (
        "leases::an_expired_lease_or_a_dead_holder_frees_it",
        leases::an_expired_lease_or_a_dead_holder_frees_it,
    ),
    (
        "leases::opening_recovers_only_what_no_live_process_holds",
        leases::opening_recovers_only_what_no_live_process_holds,
    ),
    (
        "leases::taking_a_machine_from_a_dead_holder_finishes_its_shot",
        leases::taking_a_machine_from_a_dead_holder_finishes_its_shot,
    ),
    (
        "leases::the_active_run_belongs_to_its_process",
        leases::the_active_run_belongs_to_its_process,
    ),
    (
        "leases::machines_number_their_shots_apart",
        leases::machines_number_their_shots_apart,
    ),
    (
        "leases::a_live_holder_on_this_host_keeps_its_lease_past_its_expiry",
        leases::a_live_holder_on_this_host_keeps_its_lease_past_its_expiry,
    ),
    (
        "leases::a_renewal_never_takes_a_lease_anew",
        leases::a_renewal_never_takes_a_lease_anew,
    ),
];
