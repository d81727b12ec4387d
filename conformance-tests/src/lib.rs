//! The datastore conformance suite: the specification in code.
//!
//! One async function per behaviour, in [`cases`]. The
//! [`datastore_conformance!`] macro turns every case into its own
//! `#[tokio::test]` for any backend, given an async factory of fresh, empty
//! stores; [`CASES`] lists the same cases for running against a live store.
//!
//! ```text
//! // in a backend's tests/conformance.rs (needs tokio as a dev-dependency)
//! conformance_tests::datastore_conformance!(|| async { my_backend::open_temp().await });
//! ```
//!
//! The factory returns anything that is a [`Fixture`]: an `Arc<dyn Datastore>`,
//! or a type of the backend's that also cleans up after the case (drops a
//! schema, removes a directory).

pub mod cases;
pub mod support;

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::Arc;

use datastore_core::Datastore;
use futures::FutureExt;

#[doc(hidden)]
pub use tokio as __tokio;

/// What a factory hands a case: a store, and cleanup once the case is over.
pub trait Fixture: Send + 'static {
    /// The store under test. Not called when [`Fixture::skipped`] says why not.
    fn store(&self) -> Arc<dyn Datastore>;

    /// Why the backend is not available here (a server that does not
    /// answer), so the case is skipped with a printed notice. A fixture
    /// that must not be skipped panics in its factory instead.
    fn skipped(&self) -> Option<String> {
        None
    }

    /// Cleans up after the case, pass or fail.
    fn teardown(self) -> impl Future<Output = ()> + Send;
}

impl Fixture for Arc<dyn Datastore> {
    fn store(&self) -> Arc<dyn Datastore> {
        self.clone()
    }

    async fn teardown(self) {
        let _ = self.close().await;
    }
}

/// A case: takes a fresh, empty store and panics on a failed expectation.
pub type CaseFn = fn(Arc<dyn Datastore>) -> Pin<Box<dyn Future<Output = ()> + Send>>;

/// Runs one case on a fixture from `factory`, tearing it down even when the
/// case panics (the panic is then passed on).
pub async fn run<F, Fut, X>(factory: F, case: CaseFn)
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = X>,
    X: Fixture,
{
    let fixture = factory().await;
    if let Some(why) = fixture.skipped() {
        eprintln!("conformance case skipped: {why}");
        return;
    }
    let outcome = AssertUnwindSafe(case(fixture.store())).catch_unwind().await;
    fixture.teardown().await;
    if let Err(panic) = outcome {
        std::panic::resume_unwind(panic);
    }
}

/// Calls `$callback!` (a macro exported by this crate) with every case,
/// grouped by module. The one list of cases.
#[doc(hidden)]
#[macro_export]
macro_rules! __with_cases {
    ($callback:ident ! ( $($args:tt)* )) => {
        $crate::$callback! { ($($args)*)
            capabilities {
                reports_limits,
            },
            profiles {
                put_then_get,
                put_keeps_caller_id,
                get_missing_is_not_found,
                get_by_username,
                get_by_username_missing_is_not_found,
                duplicate_username_already_exists,
                username_with_space_is_invalid,
                bad_email_is_invalid,
                rename_frees_username,
                stale_put_is_conflict,
                stale_delete_is_conflict,
                delete_then_get_is_not_found,
                must_not_exist_on_existing_already_exists,
                must_exist_on_missing_is_not_found,
                update_advances_revision_keeps_created,
                get_many_keeps_order,
                revision_grows_across_delete_and_recreate,
                empty_id_get_is_invalid,
                rename_carries_into_collection_entries,
                rename_checks_precondition_and_username,
                created_left_out_is_filled,
            },
            history {
                actor_is_kept_on_record_version_and_feed,
                history_survives_delete_and_recreate,
                restore_writes_an_old_version_as_new,
                batches_write_one_version_per_op_or_none,
                history_pages_are_keyset_pages,
                retention_compacts_and_expired_versions_say_so,
                every_editable_kind_keeps_versions,
            },
            tokens {
                issued_token_round_trips_hashed,
                list_by_profile,
                profile_and_secret_are_fixed,
                revoked_token_is_not_found,
            },
            keys {
                put_then_get_with_private_key,
                list_by_profile,
                empty_profile_id_is_invalid,
                private_key_never_in_debug_or_errors,
                stale_put_is_conflict,
                stale_delete_is_conflict,
                delete_then_missing,
                id_must_match_public_key,
                profile_is_fixed,
                empty_profile_id_in_list_is_invalid,
                key_for_missing_profile_is_invalid,
            },
            workflows {
                put_then_get,
                get_by_init_id,
                get_by_init_id_missing_is_not_found,
                second_for_init_id_already_exists,
                list_by_owner,
                list_active,
                stale_put_is_conflict,
                stale_delete_is_conflict,
                empty_owner_is_invalid,
                moving_init_id_frees_old,
                owner_is_fixed,
            },
            runs {
                create_assigns_numbers_and_owner,
                numbers_are_per_workflow,
                create_without_workflow_id_is_invalid,
                create_for_unknown_workflow_is_invalid,
                put_without_number_is_invalid,
                list_by_workflow_newest_first,
                latest,
                latest_without_runs_is_not_found,
                count,
                list_by_owner_and_status,
                append_event,
                append_event_missing_run_is_not_found,
                append_event_bad_step_is_invalid,
                append_event_to_finished_run_is_invalid,
                numbers_not_reused_after_delete,
                stale_put_is_conflict,
                stale_delete_is_conflict,
                get_missing_is_not_found,
                identity_is_fixed,
                list_latest_by_status,
                empty_ids_in_lists_are_invalid,
            },
            collections {
                put_then_get,
                list_by_profile_by_name,
                list_by_profile_by_commit_time,
                update_by_init_id_across_profiles,
                update_by_init_id_without_entries_writes_nothing,
                empty_init_id_is_invalid,
                stale_put_is_conflict,
                stale_delete_is_conflict,
                delete_then_get_is_not_found,
                update_by_init_id_sets_version_fields,
                update_by_init_id_clears_fields,
                update_by_init_id_increments_counts,
                list_by_profile_by_updated,
                empty_username_or_name_is_invalid,
                empty_profile_id_in_list_is_invalid,
            },
            logs {
                append_and_range,
                append_continues_at_expected_length,
                head,
                head_of_empty_log_is_not_found,
                wrong_expected_length_is_conflict,
                range_from_the_middle,
                remove,
                remove_missing_is_not_found,
                empty_ops_or_id_is_invalid,
                logs_are_independent,
                list_all_walks_every_log,
            },
            pagination {
                profiles_by_id,
                profiles_by_username_descending,
                profiles_by_created,
                runs_by_workflow_newest_first,
                runs_by_workflow_ascending,
                runs_by_owner_and_status,
                collections_by_name_with_ties,
                collections_by_commit_time_with_missing,
                workflows_by_owner,
                keys_by_profile,
                cursor_survives_inserts,
                exact_multiple_ends_without_cursor,
                empty_list_has_no_cursor,
            },
            bad_input {
                oversize_record_is_invalid,
                cursor_from_another_query_is_invalid,
                tampered_cursor_is_invalid,
                limit_zero_is_invalid,
                limit_over_maximum_is_invalid,
                id_with_slash_or_space_is_invalid,
                order_no_index_serves_is_invalid,
                too_many_ids_is_invalid,
                empty_id_with_revision_precondition_is_invalid,
                delete_must_not_exist_is_invalid,
                feed_limit_out_of_range_is_invalid,
                feed_cursor_ahead_of_head_is_invalid,
                dot_ids_are_invalid,
            },
            concurrency {
                read_modify_write_increments,
                log_appenders_exactly_one_wins,
                run_numbers_without_gap,
                unique_username_race,
                must_not_exist_race,
                concurrent_commits_keep_their_own_results,
                pinned_batch_puts_retry,
            },
            batches {
                applies_across_substores,
                failing_last_op_leaves_nothing,
                invalid_record_writes_nothing,
                delete_in_batch,
                later_ops_see_earlier_ones,
                unique_conflict_within_batch,
                large_batch_writes_every_record,
                large_batch_with_one_refused_row_writes_nothing,
                large_batch_recreating_one_record_writes_nothing,
                count_follows_every_kind,
                empty_batch_writes_nothing,
                run_with_missing_workflow_is_invalid,
            },
            feed {
                one_change_per_write,
                head_tracks_latest,
                failed_write_adds_no_change,
                since_pages_in_order,
                subscribe_replays_then_follows,
                subscribe_from_cursor,
                concurrent_writers_no_gap_or_duplicate,
                resume_while_writers_run,
                lagged_then_resume,
                cursor_expired_after_compaction,
                start_feed_after_a_position,
                batch_changes_are_consecutive,
                log_append_is_a_change,
                changes_name_their_parent,
                close_ends_subscriptions,
            },
            feed_filters {
                filter_by_kind,
                filter_by_id,
                filter_by_parent_includes_deletes,
                filters_combine_kinds_with_ids_or_parents,
                filtered_subscription_follows_live,
                resume_with_a_changed_filter,
                filter_matching_nothing,
                invalid_filters_are_refused,
                filtered_buffer_counts_only_matches,
            },
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_tests {
    (($factory:expr) $($module:ident { $($case:ident),* $(,)? }),* $(,)?) => {
        $(
            mod $module {
                #[allow(unused_imports)]
                use super::*;
                $(
                    #[$crate::__tokio::test(flavor = "multi_thread", worker_threads = 4, crate = "conformance_tests::__tokio")]
                    async fn $case() {
                        $crate::run($factory, |ds| ::std::boxed::Box::pin($crate::cases::$module::$case(ds))).await;
                    }
                )*
            }
        )*
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __case_table {
    (() $($module:ident { $($case:ident),* $(,)? }),* $(,)?) => {
        /// Every case, by name (`module::case`), for running against a live store.
        pub static CASES: &[(&str, $crate::CaseFn)] = &[
            $($((
                concat!(stringify!($module), "::", stringify!($case)),
                |ds| ::std::boxed::Box::pin($crate::cases::$module::$case(ds)),
            ),)*)*
        ];
    };
}

__with_cases!(__case_table!());

/// Generates one `#[tokio::test]` per conformance case, each on a fresh
/// store from `$factory` (an async closure returning a [`Fixture`]).
///
/// Each case becomes `module::case` (one Rust module per group of cases, so
/// invoke it at the top of a test file of its own). Items of that file are in
/// scope of the factory.
#[macro_export]
macro_rules! datastore_conformance {
    ($factory:expr) => {
        $crate::__with_cases!(__conformance_tests!($factory));
    };
}
