//! The `.env` reader and rewriter. For any file: reading never panics, and rewriting one
//! variable changes only its own line: every other line is kept byte for byte and in order
//! (CRLF kept), exactly one assignment of the variable remains, and it holds the new value.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The file, then after a NUL byte the new value; which variable: the input's length.
    let data = String::from_utf8_lossy(data);
    let (text, value) = data.split_once('\0').unwrap_or((&data, "new-token"));
    let pick = data.len();
    let vars = tokenhost::settings::dotenv_vars(text.as_bytes());
    // A variable of the file (or a new one), as a sink names it; a value as a token is: one line.
    let names: Vec<&String> = vars.keys().filter(|k| is_var(k)).collect();
    let var = if names.is_empty() { "TOKENHOST_ACCESS_TOKEN" } else { names[pick % names.len()].as_str() };
    let value: String = value.chars().filter(|c| !c.is_control()).collect();
    let out = tokenhost::sinks::set_dotenv_line(text, var, &value);

    let others = |t: &str| -> Vec<String> {
        t.split_inclusive('\n')
            .filter(|l| !assigns(l, var))
            .map(|l| l.trim_end_matches(['\r', '\n']).to_string())
            .collect()
    };
    assert_eq!(others(text), others(&out), "a line other than {var}'s changed");
    let endings = |t: &str| -> Vec<bool> {
        t.split_inclusive('\n').filter(|l| !assigns(l, var)).map(|l| l.ends_with("\r\n")).collect()
    };
    let (before, after) = (endings(text), endings(&out));
    // Every line keeps its CRLF; only a last line that had no ending may gain one.
    assert_eq!(before[..before.len().saturating_sub(1)], after[..before.len().saturating_sub(1)]);
    let mine: Vec<&str> = out.split_inclusive('\n').filter(|l| assigns(l, var)).collect();
    assert_eq!(mine.len(), 1, "{var} assigned {} times", mine.len());
    let body = mine[0].trim_end_matches(['\r', '\n']);
    assert!(body == format!("{var}={value}") || body == format!("export {var}={value}"), "{body:?}");
    // And the reader reads a token back (letters, digits, `-._~+/=`, as brokers' tokens are),
    // where no quote or escape in the file makes a multi-line value of what follows.
    let plain = |t: &str| !t.contains(['#', '"', '\'', '\\', '$', '`']);
    let token_like =
        |t: &str| !t.is_empty() && t.chars().all(|c| c.is_ascii_alphanumeric() || "-._~+/=".contains(c));
    if plain(text) && token_like(&value) {
        assert_eq!(tokenhost::settings::dotenv_vars(out.as_bytes()).get(var), Some(&value), "{out:?}");
    }
});

fn is_var(k: &str) -> bool {
    !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Whether `line` assigns `var` (as dotenv readers see it: `[export] VAR [ws] =`).
fn assigns(line: &str, var: &str) -> bool {
    let body = line.trim_end_matches(['\r', '\n']).trim_start();
    let body = match body.strip_prefix("export") {
        Some(rest) if rest.starts_with(char::is_whitespace) && !rest.trim_start().starts_with('=') => {
            rest.trim_start()
        }
        _ => body,
    };
    body.strip_prefix(var).is_some_and(|rest| rest.trim_start().starts_with('='))
}
