//! Configuration: defaults that work with no file, an optional TOML file, and `KEPING_*`
//! environment variables over both.

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Config {
    /// `sqlite://…` or `postgres://…`; by default a SQLite file in the data directory.
    pub database_url: Option<String>,
    pub bind: String,
    pub data_dir: PathBuf,
    /// The first administrator's password; generated and printed once when absent.
    pub admin_password: Option<String>,
    /// A tracing filter such as `info` or `keping=debug,sqlx=warn`.
    pub log: String,
    /// SMTP server for e-mail alerts, e.g. `smtps://user:password@smtp.example.cn:465`.
    pub smtp_url: Option<String>,
    /// Sender of e-mail alerts, e.g. `客评 <alerts@example.cn>`.
    pub smtp_from: Option<String>,
    /// The address people reach keping at, for links in notices, e.g. `https://kp.example.cn`;
    /// by default `http://` and the bound address.
    #[serde(default)]
    pub public_url: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            database_url: None,
            bind: "127.0.0.1:8080".into(),
            data_dir: PathBuf::from("data"),
            admin_password: None,
            log: "info".into(),
            smtp_url: None,
            smtp_from: None,
            public_url: None,
        }
    }
}

impl Config {
    /// Defaults, then the file (`KEPING_CONFIG`, else `keping.toml` if present), then `KEPING_*`.
    pub fn load() -> Result<Config, Box<figment::Error>> {
        let file = std::env::var("KEPING_CONFIG").unwrap_or_else(|_| "keping.toml".into());
        Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            .merge(Env::prefixed("KEPING_").ignore(&["config"]))
            .extract()
            .map_err(Box::new)
    }

    pub fn database_url(&self) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}", self.data_dir.join("keping.db").display()))
    }

    /// The URL without a password, for messages and logs.
    pub fn database_url_for_display(&self) -> String {
        let url = self.database_url();
        match (url.find("://"), url.rfind('@')) {
            (Some(s), Some(at)) if at > s => match url[s + 3..at].split_once(':') {
                Some((user, _)) => format!("{}{}:***{}", &url[..s + 3], user, &url[at..]),
                None => url,
            },
            _ => url,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_and_display() {
        let c = Config::default();
        assert_eq!(c.database_url(), "sqlite://data/keping.db");
        let c = Config {
            database_url: Some("postgres://u:secret@127.0.0.1/k".into()),
            ..Config::default()
        };
        assert_eq!(c.database_url_for_display(), "postgres://u:***@127.0.0.1/k");
    }
}
