//! What every end-to-end test needs: a temp folder, the CLI as a user runs it, a mock broker
//! on 127.0.0.1, and a scan of everything printed or written for secrets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use tokenhost_sandbox::{ExampleBroker, Server};

/// The test provider component (`components/fixture`).
pub const FIXTURE: &str = env!("TOKENHOST_COMPONENT_FIXTURE");
/// A provider that imports `wasi:filesystem` (`components/fixture-fs`).
pub const FIXTURE_FS: &str = env!("TOKENHOST_COMPONENT_FIXTURE_FS");

/// One test's world. The folder is removed when it is dropped.
pub struct World {
    pub dir: PathBuf,
    pub state: PathBuf,
    pub broker: ExampleBroker,
    pub server: Server,
    pub secret: String,
    env: Vec<(String, String)>,
    /// Everything the CLI printed, except the stdout of `get` (which prints the token on purpose).
    printed: Mutex<Vec<String>>,
}

impl World {
    pub fn new(name: &str) -> World {
        let dir = std::env::temp_dir().join(format!(
            "tokenhost-e2e-{name}-{}-{}",
            std::process::id(),
            tokenhost_sandbox::nonce()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = format!("key-{}", tokenhost_sandbox::nonce());
        let secret = format!("SeCrEt-{}", tokenhost_sandbox::nonce());
        let broker = ExampleBroker::new(&key, &secret, 8 * 3600);
        let server = broker.serve().unwrap();
        let env = vec![
            ("EXAMPLE_API_ROOT".to_string(), server.url()),
            ("EXAMPLE_API_KEY".to_string(), key.clone()),
            ("EXAMPLE_API_SECRET".to_string(), secret.clone()),
        ];
        World { state: dir.join("state"), dir, broker, server, secret, env, printed: Mutex::new(Vec::new()) }
    }

    /// Sets (or with `None` removes) an environment variable for later commands.
    pub fn set_env(&mut self, name: &str, value: Option<&str>) {
        self.env.retain(|(k, _)| k != name);
        if let Some(v) = value {
            self.env.push((name.into(), v.into()));
        }
    }

    /// The command, run from the test folder with the test's state directory.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_tokenhost"));
        c.args(args).current_dir(&self.dir).stdin(Stdio::null());
        for var in ["TOKENHOST_CONFIG", "TOKENHOST_STATE_DIR", "EXAMPLE_MODE", "RUST_LOG"] {
            c.env_remove(var);
        }
        c.env("TOKENHOST_STATE_DIR", &self.state);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    /// Runs the CLI to the end and records what it printed.
    pub fn run(&self, args: &[&str]) -> Out {
        let out = self.command(args).output().unwrap();
        self.record(args, &out);
        Out::from(out)
    }

    pub fn record(&self, args: &[&str], out: &Output) {
        let mut p = self.printed.lock().unwrap();
        p.push(String::from_utf8_lossy(&out.stderr).into_owned());
        if args.first() != Some(&"get") {
            p.push(String::from_utf8_lossy(&out.stdout).into_owned());
        }
    }

    pub fn account_dir(&self, account: &str) -> PathBuf {
        self.state.join("accounts").join(account)
    }

    pub fn token_file(&self) -> PathBuf {
        self.account_dir("example").join("token.json")
    }

    /// The stored token's JSON.
    pub fn stored(&self) -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(self.token_file()).unwrap()).unwrap()
    }

    pub fn write(&self, name: &str, text: &str) -> PathBuf {
        let p = self.dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    /// Fails if the API secret appears in anything printed or in any file of the state
    /// directory, or if a token the broker issued appears in anything printed or logged.
    pub fn assert_no_secret_leaked(&self) {
        let tokens: Vec<String> = self.broker.state().live.clone();
        self.assert_not_leaked(std::slice::from_ref(&self.secret), &tokens);
    }

    /// Fails if one of `secrets` appears in anything printed or in any file of the state
    /// directory, or one of `tokens` in anything printed or any file but the token store.
    pub fn assert_not_leaked(&self, secrets: &[String], tokens: &[String]) {
        let printed = self.printed.lock().unwrap().join("\n");
        for s in secrets {
            assert!(!printed.contains(s.as_str()), "a secret was printed:\n{printed}");
        }
        for t in tokens {
            assert!(!printed.contains(t.as_str()), "a token was printed outside `get`:\n{printed}");
        }
        for file in files_under(&self.state) {
            let text = String::from_utf8_lossy(&std::fs::read(&file).unwrap_or_default()).into_owned();
            for s in secrets {
                assert!(!text.contains(s.as_str()), "a secret is in {}", file.display());
            }
            let is_token_store = file.file_name().is_some_and(|n| n == "token.json");
            if !is_token_store {
                for t in tokens {
                    assert!(!text.contains(t.as_str()), "a token is in {}", file.display());
                }
            }
        }
    }
}

impl Drop for World {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out
}

/// A finished command.
pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Out {
    fn from(o: Output) -> Out {
        Out {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Out {
    #[track_caller]
    pub fn assert_code(&self, code: i32) -> &Out {
        assert_eq!(self.code, code, "exit code\n--- stdout\n{}\n--- stderr\n{}", self.stdout, self.stderr);
        self
    }

    #[track_caller]
    pub fn assert_stderr_has(&self, needle: &str) -> &Out {
        assert!(self.stderr.contains(needle), "stderr lacks {needle:?}:\n{}", self.stderr);
        self
    }

    #[track_caller]
    pub fn assert_stdout_has(&self, needle: &str) -> &Out {
        assert!(self.stdout.contains(needle), "stdout lacks {needle:?}:\n{}", self.stdout);
        self
    }
}

#[cfg(unix)]
pub fn mode(p: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}
