//! The conformance suite of the sessanger store contract.
//!
//! Every case is a plain `pub async fn` in [`cases`] that takes a fresh store and panics on a
//! broken promise. [`store_conformance!`] stamps out one named `#[test]` per case, so a
//! failure names the broken sentence of the contract. A store joins with one line in its
//! `tests/conformance.rs`:
//!
//! ```no_run
//! // tests/conformance.rs of a store crate:
//! sessanger_testkit::store_conformance!(|| async { sessanger_store_memory::MemoryStore::new() });
//! # fn main() {}
//! ```
//!
//! A store that keeps an event log ([`sessanger_core::EventLog`]) joins the event cases
//! ([`events`]) the same way, with [`store_events_conformance!`].
//!
//! The closure is called once per case and must return an empty store (a fresh key prefix,
//! schema or directory): cases run in parallel threads.
//!
//! Time is passed to the store as `now`, so expiry cases move a timestamp forward instead of
//! sleeping. The base time is the real clock, so stores that also set a native TTL (Redis)
//! see sensible deadlines.

pub mod arbitrary;
#[cfg(feature = "browser")]
pub mod browser;
pub mod cases;
pub mod events;
pub mod tls;

use std::{future::Future, sync::Arc};

use sessanger_core::Store;

/// Runs one case against a store made by `make`, on a multi-threaded runtime so concurrency
/// cases really race.
pub fn run<S, M, MF, C, CF>(make: M, case: C)
where
    S: Store,
    M: FnOnce() -> MF,
    MF: Future<Output = S>,
    C: FnOnce(Arc<dyn Store>) -> CF,
    CF: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("a tokio runtime must start");
    runtime.block_on(async {
        let store: Arc<dyn Store> = Arc::new(make().await);
        case(store).await;
    });
}

/// Stamps out one `#[test]` per conformance case for the store made by `$make`
/// (an expression callable as `$make()` returning a future of the store).
#[macro_export]
macro_rules! store_conformance {
    ($make:expr) => {
        $crate::for_each_case!($crate::__conformance_cases; $make);
    };
}

/// Calls `$callback!($($args)*; case, case, …)` with the name of every case in [`cases`], for
/// a store whose suite cannot be one `#[test]` per case (e.g. one that runs only when a server
/// is configured): the list lives here once, so no runner falls behind the suite.
#[macro_export]
macro_rules! for_each_case {
    ($callback:path; $($args:tt)*) => {
        $callback!(
            $($args)*;
            create_then_load_returns_the_same_session,
            load_of_unknown_id_returns_none,
            load_of_expired_session_returns_none,
            create_never_overwrites_a_live_session,
            create_may_reuse_the_id_of_an_expired_session,
            concurrent_creates_for_one_user_are_all_kept,
            patch_sets_removes_and_increments_atomically,
            patch_of_unknown_or_expired_session_is_not_found,
            patch_with_stale_version_changes_nothing,
            rejected_patch_changes_nothing,
            patches_never_take_a_session_past_its_cap,
            patch_changes_the_named_device_fields_with_the_attributes,
            two_hundred_concurrent_writers_of_different_keys_lose_nothing,
            two_hundred_concurrent_touching_writers_lose_nothing,
            sixty_four_concurrent_increments_lose_nothing,
            a_patch_carrying_several_writes_moves_the_version_by_as_many,
            concurrent_version_checked_patches_let_exactly_one_win,
            replace_is_compare_and_set_by_version,
            replace_moves_the_absolute_deadline_either_way,
            touch_renews_idle_deadline_but_not_past_absolute,
            patch_with_touch_renews_the_idle_deadline,
            rename_moves_the_session_to_the_new_id,
            rename_to_a_live_id_is_refused,
            ids_of_both_lengths_work_alike,
            rename_of_unknown_session_is_not_found,
            delete_returns_the_session_once,
            list_user_returns_only_that_users_live_sessions_oldest_first,
            list_user_pages_through_every_session_once,
            find_users_lists_users_with_live_sessions_by_prefix,
            scan_pages_through_every_live_session_once,
            delete_user_removes_all_and_only_that_users_sessions,
            list_and_revoke_stay_consistent_after_some_sessions_expire,
            count_active_ignores_expired_sessions,
            delete_expired_removes_due_sessions_in_bounded_batches,
            refuse_limit_refuses_the_session_over_the_limit,
            evict_oldest_limit_deletes_the_oldest_sessions,
            concurrent_creates_never_exceed_the_user_limit,
            attributes_keep_any_json_value,
            services_are_created_once_listed_and_deleted,
            services_are_updated_in_place_never_recreated,
            ping_answers
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __conformance_cases {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::run($make, $crate::cases::$case);
            }
        )*
    };
}

/// Stamps out one `#[test]` per case of [`events`] for the store made by `$make`, which must
/// keep an event log.
#[macro_export]
macro_rules! store_events_conformance {
    ($make:expr) => {
        $crate::__events_cases!(
            $make;
            every_change_records_one_event_in_order,
            steps_that_change_nothing_record_nothing,
            evictions_revocations_and_expiries_are_recorded_once,
            the_log_reads_from_any_point_and_trims_by_count_and_age,
            a_relay_is_held_by_one_holder_at_a_time
        );
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __events_cases {
    ($make:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::run($make, $crate::events::$case);
            }
        )*
    };
}
