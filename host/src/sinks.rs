//! Copies of a fresh token where its consumers already read it: a JSON file in the shape
//! the old XTS scripts wrote, a line of an existing `.env`, or a file holding just the token.
//! Every write is atomic (temp file + fsync + rename) and leaves the file mode 0600.

use crate::store::{StoredToken, write_atomic};
use crate::{Error, time};
use serde::Deserialize;
use std::path::{Path, PathBuf};

/// One sink, as in `[[accounts.NAME.sinks]]` or `run --sink KIND=PATH`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
pub enum Sink {
    /// `{"token","userID","timestamp","refreshed_at"}`, exactly as the old XTS script wrote
    /// `xts_store_token.json` (local times as strings).
    Json {
        /// The file.
        path: PathBuf,
    },
    /// Rewrites the `VAR=` line of a `.env` file, every other line kept as it was.
    Dotenv {
        /// The file.
        path: PathBuf,
        /// The variable (default `<PREFIX>_ACCESS_TOKEN`, e.g. `UPSTOX_ACCESS_TOKEN`).
        var: Option<String>,
    },
    /// The token alone.
    Raw {
        /// The file.
        path: PathBuf,
    },
}

impl Sink {
    /// Parses `json=PATH`, `raw=PATH`, `dotenv=PATH` or `dotenv=PATH:VAR`.
    pub fn parse(spec: &str) -> Result<Sink, String> {
        let (kind, rest) = spec.split_once('=').ok_or("expected KIND=PATH (json, dotenv or raw)")?;
        if rest.is_empty() {
            return Err("the path is empty".into());
        }
        match kind {
            "json" => Ok(Sink::Json { path: rest.into() }),
            "raw" => Ok(Sink::Raw { path: rest.into() }),
            "dotenv" => Ok(match rest.rsplit_once(':') {
                Some((path, var)) if is_var_name(var) && !path.is_empty() => {
                    Sink::Dotenv { path: path.into(), var: Some(var.into()) }
                }
                _ => Sink::Dotenv { path: rest.into(), var: None },
            }),
            other => Err(format!("unknown sink kind `{other}` (json, dotenv or raw)")),
        }
    }

    /// The file it writes.
    pub fn path(&self) -> &Path {
        match self {
            Sink::Json { path } | Sink::Dotenv { path, .. } | Sink::Raw { path } => path,
        }
    }

    /// The same sink with a relative path taken from `base`.
    pub(crate) fn relative_to(mut self, base: &Path) -> Sink {
        let p = match &mut self {
            Sink::Json { path } | Sink::Dotenv { path, .. } | Sink::Raw { path } => path,
        };
        if p.is_relative() && !base.as_os_str().is_empty() {
            *p = base.join(&*p);
        }
        self
    }

    /// Makes the file hold `token` (`prefix` names the default `.env` variable). A file that
    /// already does is left alone, so this is cheap to call on every run; returns whether it
    /// wrote.
    pub fn write(&self, token: &StoredToken, prefix: &str) -> Result<bool, Error> {
        let path = self.path();
        let old = match std::fs::read(path) {
            Ok(b) => Some(b),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => return Err(Error::io(format!("reading {}", path.display()), e)),
        };
        let bytes = match self {
            Sink::Json { .. } => {
                let file = OldXtsFile::of(token);
                let mut b = serde_json::to_vec_pretty(&file).map_err(|e| Error::Config(e.to_string()))?;
                b.push(b'\n');
                b
            }
            Sink::Raw { .. } => format!("{}\n", token.access_token.expose()).into_bytes(),
            Sink::Dotenv { var, .. } => {
                let var = var.clone().unwrap_or_else(|| format!("{prefix}_ACCESS_TOKEN"));
                let text = String::from_utf8(old.clone().unwrap_or_default()).map_err(|_| {
                    Error::Config(format!("{} is not UTF-8 text; it was left alone", path.display()))
                })?;
                set_dotenv_line(&text, &var, token.access_token.expose()).into_bytes()
            }
        };
        if old.as_deref() == Some(&bytes[..]) {
            return Ok(false);
        }
        write_atomic(path, &bytes)
            .map_err(|e| Error::io(format!("writing the token to {}", path.display()), e))?;
        Ok(true)
    }
}

/// `xts_store_token.json` as the old XTS script wrote it, keys in its order: the token, the user
/// id, `timestamp` as Python's `datetime.now().isoformat()` (local time, microseconds, no zone)
/// and `refreshed_at` as `%Y-%m-%d %H:%M:%S` local time. Readers parse these strings.
#[derive(serde::Serialize)]
struct OldXtsFile<'a> {
    token: &'a str,
    #[serde(rename = "userID")]
    user_id: Option<&'a str>,
    timestamp: String,
    refreshed_at: String,
}

impl<'a> OldXtsFile<'a> {
    fn of(token: &'a StoredToken) -> OldXtsFile<'a> {
        let at = token.refreshed_at;
        let (date, clock) = time::civil(at, time::local_offset(at));
        // Python leaves the fraction out when it is zero.
        let micros =
            token.refreshed_at_micros.filter(|&m| m > 0).map(|m| format!(".{m:06}")).unwrap_or_default();
        OldXtsFile {
            token: token.access_token.expose(),
            user_id: token.user_id.as_deref(),
            timestamp: format!("{date}T{clock}{micros}"),
            refreshed_at: format!("{date} {clock}"),
        }
    }
}

fn is_var_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A line without its `export` keyword (`export  X=1`, as dotenv files may write it), and whether
/// it had one.
fn unexported(line: &str) -> (bool, &str) {
    let line = line.trim_start();
    match line.strip_prefix("export") {
        // Any whitespace may follow (`\r` too, as dotenvy reads it); `export = 1` assigns a
        // variable named `export`.
        Some(rest) if rest.starts_with(char::is_whitespace) && !rest.trim_start().starts_with('=') => {
            (true, rest.trim_start())
        }
        _ => (false, line),
    }
}

/// `text` with the assignment of `var` replaced by `var=value` (added at the end when it has
/// none); comments, order, blank lines and line endings of everything else stay as they were.
pub fn set_dotenv_line(text: &str, var: &str, value: &str) -> String {
    let mut out = String::with_capacity(text.len() + value.len());
    let mut done = false;
    for line in text.split_inclusive('\n') {
        let body = line.trim_end_matches(['\n', '\r']);
        let ending = &line[body.len()..];
        let (exported, assigned) = unexported(body);
        let is_var = assigned.strip_prefix(var).is_some_and(|rest| rest.trim_start().starts_with('='));
        if is_var && !done {
            let export = if exported { "export " } else { "" };
            out.push_str(&format!("{export}{var}={value}{ending}"));
            done = true;
        } else if !is_var {
            out.push_str(line);
        }
    }
    if !done {
        // An appended line ends as the file's lines do (CRLF in a Windows-made file).
        let ending = if text.contains("\r\n") { "\r\n" } else { "\n" };
        if !out.is_empty() && !out.ends_with('\n') {
            out.push_str(ending);
        }
        out.push_str(&format!("{var}={value}{ending}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotenv_rewrites_one_line_and_keeps_the_rest() {
        let old = "# broker\nUPSTOX_API_KEY=abc\nUPSTOX_ACCESS_TOKEN=old\r\n\nOTHER=1";
        assert_eq!(
            set_dotenv_line(old, "UPSTOX_ACCESS_TOKEN", "new"),
            "# broker\nUPSTOX_API_KEY=abc\nUPSTOX_ACCESS_TOKEN=new\r\n\nOTHER=1"
        );
        assert_eq!(set_dotenv_line("A=1", "T", "x"), "A=1\nT=x\n");
        assert_eq!(set_dotenv_line("A=1\r\nB=2", "T", "x"), "A=1\r\nB=2\r\nT=x\r\n");
        assert_eq!(set_dotenv_line("", "T", "x"), "T=x\n");
        assert_eq!(set_dotenv_line("export T = old\nT_OTHER=1\n", "T", "x"), "export T=x\nT_OTHER=1\n");
        // Found by fuzzing: more than one space after `export`.
        assert_eq!(set_dotenv_line(" export  X = 1 \nY=2\n", "X", "y"), "export X=y\nY=2\n");
        assert_eq!(set_dotenv_line("exported=1\n", "X", "y"), "exported=1\nX=y\n");
        // Found by fuzzing: a variable named `export`, written with a space before `=`.
        assert_eq!(set_dotenv_line("export=1\n export = 2\n", "export", "y"), "export=y\n");
        // Found by fuzzing: carriage returns between `export` and the name.
        assert_eq!(set_dotenv_line("export\r\r  X = 0\r \nY=1\n", "X", "y"), "export X=y\nY=1\n");
        // A duplicate assignment would shadow the new value: it goes.
        assert_eq!(set_dotenv_line("T=a\nT=b\n", "T", "x"), "T=x\n");
    }

    #[test]
    fn sink_specs() {
        assert_eq!(Sink::parse("json=x.json"), Ok(Sink::Json { path: "x.json".into() }));
        assert_eq!(
            Sink::parse("dotenv=.env:UPSTOX_ACCESS_TOKEN"),
            Ok(Sink::Dotenv { path: ".env".into(), var: Some("UPSTOX_ACCESS_TOKEN".into()) })
        );
        assert_eq!(Sink::parse("dotenv=C:/x/.env"), Ok(Sink::Dotenv { path: "C:/x/.env".into(), var: None }));
        assert!(Sink::parse("ftp=x").is_err());
        assert!(Sink::parse("json").is_err());
    }
}
