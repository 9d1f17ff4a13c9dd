/// glibc malloc keeps one arena per thread and returns little of it: under load the server grew to
/// ~470 MiB with it, ~110 MiB with mimalloc (500 terminals pressing for 20 s).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use anyhow::Context;
use clap::{Parser, Subcommand};
use keping_app::config::Config;
use keping_app::{demo, prepare, start};
use keping_store::backup;

/// keping (客评): customer evaluation and customer relationship management in one binary.
///
/// Without a subcommand it serves (same as `keping serve`). Configuration comes from
/// KEPING_* environment variables and an optional keping.toml; see the README.
#[derive(Parser)]
#[command(name = "keping", version, about, long_about)]
struct Cli {
    /// Also load the demo organisation (head office, 2 branches, 6 outlets, windows, staff) with a month of ratings.
    #[arg(long, global = true)]
    demo: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the web UI and API (the default). Migrates the database and creates the administrator on first start.
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create the administrator account or reset its password, unlock it and enable it.
    Admin {
        /// The account to create or reset.
        #[arg(long, default_value = "admin")]
        username: String,
        /// The new password; KEPING_ADMIN_PASSWORD or a generated one (printed) when absent.
        #[arg(long)]
        password: Option<String>,
    },
    /// Drive the device API like real counters (sign-in, Start, End, presses, duplicates, offline bursts).
    Simulate {
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        base_url: String,
        /// An account that may create orgs, windows, staff and terminals.
        #[arg(long, default_value = "admin")]
        username: String,
        /// Its password; KEPING_ADMIN_PASSWORD when absent.
        #[arg(long)]
        password: Option<String>,
        #[arg(long, default_value_t = 10)]
        terminals: usize,
        /// Services (or presses) per second per terminal.
        #[arg(long, default_value_t = 0.5)]
        rate: f64,
        /// Seconds to run.
        #[arg(long, default_value_t = 30)]
        duration: u64,
        /// Presses only, counted as bare presses (keypads without Start/End): the press endpoint's load test.
        #[arg(long)]
        presses_only: bool,
    },
    /// Measure keping on generated data (release build recommended). Load goes to 127.0.0.1 only.
    #[command(subcommand)]
    Bench(Bench),
    /// Fill a database with a large organisation and years of ratings (for benchmarks and trials).
    Generate {
        /// The database to fill; the configured one when absent. Use a fresh one: it adds outlets, staff and windows.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 2_000)]
        windows: usize,
        #[arg(long, default_value_t = 6_000)]
        staff: usize,
        /// About this many counted ratings in all.
        #[arg(long, default_value_t = 10_000_000)]
        ratings: u64,
        /// Days of history, ending yesterday.
        #[arg(long, default_value_t = 730)]
        days: u32,
    },
    /// Back up the database to a new FILE while keping keeps running (数据备份): a SQLite snapshot
    /// on SQLite, a portable export on PostgreSQL. `keping backup verify FILE` checks a backup.
    #[command(args_conflicts_with_subcommands = true)]
    Backup {
        #[command(subcommand)]
        check: Option<BackupCheck>,
        /// The file to write; it must not exist.
        file: Option<std::path::PathBuf>,
        /// snapshot (SQLite only) or export (portable; restores into SQLite or PostgreSQL).
        #[arg(long)]
        format: Option<BackupFormat>,
    },
    /// Load an export (made by `keping backup`) into the configured database, which must be empty.
    Restore { file: std::path::PathBuf },
    /// Statistics roll-ups.
    #[command(subcommand)]
    Stats(Stats),
}

#[derive(Subcommand)]
enum Stats {
    /// Recompute the statistics roll-ups from raw rows and report every difference (the
    /// consistency check); with --check nothing is written.
    Rebuild {
        #[arg(long)]
        check: bool,
    },
}

#[derive(Subcommand)]
enum BackupCheck {
    /// Restore a backup into a scratch database and check it; nothing else is written.
    Verify {
        file: std::path::PathBuf,
        /// Restore an export into a scratch database on this PostgreSQL server (dropped afterwards)
        /// instead of a temporary SQLite file.
        #[arg(long)]
        postgres: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum BackupFormat {
    Snapshot,
    Export,
}

#[derive(Subcommand)]
enum Bench {
    /// The device press endpoint: `simulate --presses-only` against a server child process.
    Presses {
        /// The database to run on, e.g. one filled by `keping generate`; a fresh SQLite file when absent.
        #[arg(long)]
        database_url: Option<String>,
        /// The administrator's password in that database (KEPING_ADMIN_PASSWORD when absent).
        #[arg(long)]
        password: Option<String>,
        #[arg(long, default_value_t = 500)]
        terminals: usize,
        /// Presses per second per terminal.
        #[arg(long, default_value_t = 16.0)]
        rate: f64,
        /// Seconds to run.
        #[arg(long, default_value_t = 60)]
        duration: u64,
    },
    /// The statistics endpoint on a filled database (`keping generate`, then `keping stats rebuild`):
    /// random subtrees, groupings and periods, and head office's year-over-year report.
    Stats {
        /// The database, e.g. one filled by `keping generate`.
        #[arg(long)]
        database_url: String,
        /// The administrator's password in that database (KEPING_ADMIN_PASSWORD when absent).
        #[arg(long)]
        password: Option<String>,
        #[arg(long, default_value_t = 2_000)]
        requests: usize,
    },
    /// Org tree and staff lists: seeds a fresh database, runs the server as a child process, prints latency and memory.
    Platform {
        /// A PostgreSQL server URL to measure PostgreSQL (a fresh database is made beside it); SQLite when absent.
        #[arg(long)]
        postgres: Option<String>,
        #[arg(long, default_value_t = 5_000)]
        orgs: usize,
        #[arg(long, default_value_t = 20_000)]
        staff: usize,
        #[arg(long, default_value_t = 4_000)]
        requests: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
    },
    /// Customer grading: seeds customers with a period's inputs, times a run of the composite model
    /// (read inputs, score, store results) and the grade card through the server.
    Grading {
        /// A PostgreSQL server URL to measure PostgreSQL (a fresh database is made beside it); SQLite when absent.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 1_000_000)]
        customers: usize,
        /// The period graded (YYYY-MM).
        #[arg(long, default_value = "2026-10")]
        period: String,
        /// Grade cards fetched for the latency figures.
        #[arg(long, default_value_t = 1_000)]
        requests: usize,
    },
    /// Customer list, search, xlsx import and export: seeds a fresh database, runs the server as a child process, prints latency.
    Customers {
        /// A PostgreSQL server URL to measure PostgreSQL (a fresh database is made beside it); SQLite when absent.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long, default_value_t = 1_000_000)]
        customers: usize,
        #[arg(long, default_value_t = 2_000_000)]
        contacts: usize,
        /// Rows of the imported xlsx (0: no import).
        #[arg(long, default_value_t = 100_000)]
        import_rows: usize,
        #[arg(long, default_value_t = 4_000)]
        requests: usize,
        #[arg(long, default_value_t = 8)]
        concurrency: usize,
        /// A seeded database kept for the next run with the same file (seeding a million
        /// customers takes minutes): on SQLite a copy of the database, on PostgreSQL the name of
        /// a template database; seeded and kept when the file is absent.
        #[arg(long)]
        seed_file: Option<std::path::PathBuf>,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load().context("cannot read the configuration")?;
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_new(&config.log).unwrap_or_else(|_| "info".into()),
        )
        .init();
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(config, cli.demo).await,
        Command::Migrate => {
            keping_store::Db::connect(&config.database_url()).await?;
            println!(
                "database {} is up to date",
                config.database_url_for_display()
            );
            Ok(())
        }
        Command::Admin { username, password } => {
            let password = password.or(config.admin_password.clone());
            let (password, generated) = match password {
                Some(p) => (p, false),
                None => (keping_domain::auth::generate_password(), true),
            };
            keping_domain::validate::password("password", &password)
                .map_err(|e| anyhow::anyhow!("{e}"))?;
            let username =
                keping_domain::validate::username(&username).map_err(|e| anyhow::anyhow!("{e}"))?;
            let db = keping_store::Db::connect(&config.database_url()).await?;
            let hash = keping_domain::auth::hash_password(&password);
            let created = keping_store::accounts::reset_admin(&db, &username, &hash).await?;
            println!(
                "administrator '{username}' {}",
                if created {
                    "created"
                } else {
                    "reset, unlocked and enabled"
                }
            );
            if generated {
                println!("password: {password}");
            }
            Ok(())
        }
        Command::Simulate {
            base_url,
            username,
            password,
            terminals,
            rate,
            duration,
            presses_only,
        } => {
            let password = password
                .or(config.admin_password.clone())
                .context("give --password or KEPING_ADMIN_PASSWORD")?;
            keping_app::simulate::run(keping_app::simulate::Simulation {
                base_url,
                username,
                password,
                terminals,
                rate,
                duration: std::time::Duration::from_secs(duration),
                presses_only,
            })
            .await
        }
        Command::Generate {
            database_url,
            windows,
            staff,
            ratings,
            days,
        } => {
            keping_app::generate::run(keping_app::generate::Generate {
                database_url: database_url.unwrap_or_else(|| config.database_url()),
                admin_password: config.admin_password.clone(),
                windows: windows.max(1),
                staff: staff.max(1),
                ratings,
                days: days.max(1),
            })
            .await
        }
        Command::Bench(Bench::Presses {
            database_url,
            password,
            terminals,
            rate,
            duration,
        }) => {
            keping_app::bench::presses(keping_app::bench::PressBench {
                database_url,
                admin_password: password
                    .or(config.admin_password.clone())
                    .unwrap_or_else(|| "bench-admin-pass".into()),
                terminals,
                rate,
                duration: std::time::Duration::from_secs(duration),
            })
            .await
        }
        Command::Bench(Bench::Stats {
            database_url,
            password,
            requests,
        }) => {
            keping_app::bench_stats::stats(keping_app::bench_stats::StatsBench {
                database_url,
                admin_password: password
                    .or(config.admin_password.clone())
                    .unwrap_or_else(|| "bench-admin-pass".into()),
                requests: requests.max(1),
            })
            .await
        }
        Command::Backup {
            check: Some(BackupCheck::Verify { file, postgres }),
            ..
        } => {
            let scratch = match postgres {
                Some(url) => backup::Scratch::Postgres(url),
                None => backup::Scratch::Sqlite,
            };
            let summary = backup::verify(&file, scratch)
                .await
                .with_context(|| format!("{} did not verify", file.display()))?;
            println!("{} verified: {summary}", file.display());
            Ok(())
        }
        Command::Backup {
            check: None,
            file,
            format,
        } => {
            let file = file
                .context("give the FILE to write, e.g. keping backup keping-2026-01-31.sqlite")?;
            let db = keping_store::Db::connect(&config.database_url()).await?;
            let version = env!("CARGO_PKG_VERSION");
            let summary = match format {
                None => backup::create(&db, &file, version).await,
                Some(BackupFormat::Snapshot) => backup::snapshot(&db, &file, version).await,
                Some(BackupFormat::Export) => backup::export(&db, &file, version).await,
            }
            .with_context(|| format!("cannot back up to {}", file.display()))?;
            println!("{} written: {summary}", file.display());
            Ok(())
        }
        Command::Stats(Stats::Rebuild { check }) => {
            let db = keping_store::Db::connect(&config.database_url()).await?;
            let report = keping_store::stats::rebuild(&db, check).await?;
            println!(
                "{} roll-up cells compared, {} differ{}",
                report.cells,
                report.differences,
                if report.rewritten {
                    "; rewritten from raw rows"
                } else {
                    ""
                }
            );
            for e in &report.examples {
                println!("  {e}");
            }
            if check && report.differences > 0 {
                anyhow::bail!("the roll-ups differ from the raw rows");
            }
            Ok(())
        }
        Command::Restore { file } => {
            let db = keping_store::Db::open(&config.database_url()).await?;
            let summary = backup::restore(&db, &file)
                .await
                .with_context(|| format!("{} was not restored", file.display()))?;
            println!(
                "{} restored into {}: {summary}",
                file.display(),
                config.database_url_for_display()
            );
            Ok(())
        }
        Command::Bench(Bench::Platform {
            postgres,
            orgs,
            staff,
            requests,
            concurrency,
        }) => {
            keping_app::bench::platform(keping_app::bench::PlatformBench {
                database_url: postgres,
                orgs,
                staff,
                requests,
                concurrency: concurrency.max(1),
            })
            .await
        }
        Command::Bench(Bench::Grading {
            database_url,
            customers,
            period,
            requests,
        }) => {
            keping_app::bench::grading(keping_app::bench::GradingBench {
                database_url,
                customers: customers.max(1),
                period,
                requests: requests.max(1),
            })
            .await
        }
        Command::Bench(Bench::Customers {
            database_url,
            customers,
            contacts,
            import_rows,
            requests,
            concurrency,
            seed_file,
        }) => {
            keping_app::bench_customers::customers(keping_app::bench_customers::CustomerBench {
                database_url,
                customers: customers.max(2),
                contacts,
                import_rows,
                requests,
                concurrency: concurrency.max(1),
                seed_file,
            })
            .await
        }
    }
}

async fn serve(config: Config, with_demo: bool) -> anyhow::Result<()> {
    let (state, generated) = prepare(&config).await?;
    if let Some(password) = generated {
        println!("\n  keping created the administrator account on first start:\n    username: admin\n    password: {password}\n  It is shown only this once. Change it after signing in, or reset it with `keping admin`.\n");
    }
    if with_demo {
        match demo::load(&state.db).await? {
            Some(password) => println!("\n  Demo organisation loaded. Every demo account (e.g. bj01, sh01) has the password: {password}\n"),
            None => println!("demo organisation already present"),
        }
    }
    let mut running = start(state, &config).await?;
    tracing::info!(url = %running.url(), database = %config.database_url_for_display(), "keping is serving");
    println!("keping is serving on {}", running.url());
    shutdown_signal().await;
    tracing::info!("shutting down");
    running.stop().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! { _ = ctrl_c => {}, _ = term => {} }
}
