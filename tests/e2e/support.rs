//! What every end-to-end test needs: a temp folder, the CLI as a user runs it, a mock broker
//! on 127.0.0.1, and a scan of everything printed or written for secrets.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Mutex;
use tokenhost_sandbox::browser::{Browser, Page, Step};
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

    /// Adds `text` (a page tokenhost showed a browser) to what the leak scans read.
    pub fn note_shown(&self, text: &str) {
        self.printed.lock().unwrap().push(text.to_string());
    }

    /// `tokenhost ARGS` (a `login ... --no-browser`), with `browser` as the person's: it opens
    /// the address tokenhost prints and goes through the broker's login page (a stand-in's
    /// logs in at once). `at_callback` gets the step that would reach tokenhost's `redirect`
    /// URI and says which step to make instead (`None`: none, as if the tab were closed). The
    /// page tokenhost answers the callback with is added to what the leak scans read.
    pub fn browser_login(
        &self,
        args: &[&str],
        browser: &Browser,
        redirect: &str,
        at_callback: impl FnOnce(Step) -> Option<Step>,
    ) -> BrowserLogin {
        use std::io::{BufRead, BufReader, Read};
        let mut child = self.command(args).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut err_text = String::new();
        let mut shown = None;
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                break;
            }
            err_text.push_str(&line);
            if line.trim_start().starts_with("http") {
                shown = Some(line.trim().to_string());
                break;
            }
        }
        let (mut page, mut callback) = (None, None);
        if let Some(url) = &shown {
            // The pages before the callback are the broker's (which may carry its session key
            // by design); only tokenhost's answer goes to the leak scans.
            let (last, step) = browser.follow(url, |s| s.url.starts_with(redirect));
            page = Some(last);
            if let Some(step) = step {
                callback = Some(step.clone());
                if let Some(step) = at_callback(step) {
                    let answer = browser.request(&step);
                    self.note_shown(&answer.body);
                    page = Some(answer);
                }
            }
        }
        stderr.read_to_string(&mut err_text).unwrap();
        let out = child.wait_with_output().unwrap();
        let out = Output { status: out.status, stdout: out.stdout, stderr: err_text.into_bytes() };
        self.record(args, &out);
        BrowserLogin { out: Out::from(out), shown, page, callback }
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

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() { out.extend(files_under(&p)) } else { out.push(p) }
    }
    out
}

/// How a [`World::browser_login`] went.
pub struct BrowserLogin {
    pub out: Out,
    /// The address tokenhost showed.
    pub shown: Option<String>,
    /// The last page the browser got (tokenhost's answer to the callback, when one was made).
    pub page: Option<Page>,
    /// The step that would have reached tokenhost, as the broker sent it.
    pub callback: Option<Step>,
}

impl BrowserLogin {
    /// tokenhost refused the callback (`page`, else the login's last page, is 400 "Login
    /// refused") and the CLI, given no login, gave up with exit 5.
    #[track_caller]
    pub fn assert_refused(&self, page: Option<&Page>) {
        self.out.assert_code(5).assert_stderr_has("no login arrived within");
        assert_page(page.or(self.page.as_ref()), 400, "Login refused");
    }

    /// The exchange failed: the browser got 400 "Login failed", the CLI `code` and `said`.
    #[track_caller]
    pub fn assert_failed(&self, code: i32, said: &str) {
        self.out.assert_code(code).assert_stderr_has(said);
        assert_page(self.page.as_ref(), 400, "Login failed");
    }
}

#[track_caller]
fn assert_page(page: Option<&Page>, status: u16, text: &str) {
    let page = page.expect("the browser got a page");
    assert_eq!(page.status, status, "{}", page.body);
    assert!(page.body.contains(text), "{}", page.body);
}

/// A loopback redirect URI on a free port, as a user registers for a browser login.
pub fn loopback_redirect() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    format!("http://127.0.0.1:{port}/callback")
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

/// A tool the tests run: the path in `env_var` if set, else the one `script` (under the
/// repository root) installs into the cache, printing its path last.
pub fn installed_tool(env_var: &str, script: &str) -> PathBuf {
    if let Some(p) = std::env::var_os(env_var).filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(script);
    let out = Command::new("bash").arg(&script).stderr(Stdio::inherit()).output().unwrap();
    assert!(out.status.success(), "{} failed", script.display());
    PathBuf::from(String::from_utf8(out.stdout).unwrap().lines().last().unwrap().trim())
}

/// Sends `sig` to a child process the test started; whether it was delivered.
#[cfg(unix)]
pub fn signal(child: &std::process::Child, sig: i32) -> bool {
    // SAFETY: a signal to our own child process.
    unsafe { libc::kill(child.id() as libc::pid_t, sig) == 0 }
}
