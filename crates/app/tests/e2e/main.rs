//! End-to-end tests: a real keping server on port 0, real HTTP, each test with its own database.
//! Every test in `both!` runs on SQLite and on PostgreSQL (when KEPING_TEST_PG_URL is set).

mod harness;

mod api_auth;
mod api_customers;
mod api_device_state;
pub mod api_evaluation;
mod api_evaluation_admin;
mod api_grading;
mod api_org;
mod api_people;
mod api_scope;
mod attachments;
mod browser;
mod browser_kiosk;
mod crash;
mod customer_filters;
mod customer_quality;
mod data_mgmt;
mod live;
mod notices;
mod outbox;
mod reminders;
mod stats;

pub use harness::{Backend, TestApp};

/// Runs an async test body `fn(TestApp)` once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! both {
    ($($name:ident),* $(,)?) => {
        $(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::TestApp::spawn($crate::Backend::Sqlite).await.expect("SQLite is always available")).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                match $crate::TestApp::spawn($crate::Backend::Postgres).await {
                    Some(app) => super::$name(app).await,
                    None => eprintln!("skipped: set KEPING_TEST_PG_URL to run on PostgreSQL"),
                }
            }
        }
        )*
    };
}
