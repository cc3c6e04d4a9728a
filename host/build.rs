//! Builds the guest components (`components/`) for wasm32-wasip2 so that a plain
//! `cargo build` / `cargo test` needs no manual step, and adds the wasm target with rustup
//! when it is missing (machines with RUSTUP_AUTO_INSTALL=0 do not add it on their own).
//! The component paths reach the crate as `TOKENHOST_COMPONENT_<NAME>` variables.

use std::path::{Path, PathBuf};
use std::process::Command;

const TARGET: &str = "wasm32-wasip2";

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ sits in the workspace").to_path_buf();
    let components = root.join("components");
    watch(&root.join("wit"));
    watch(&components.join("Cargo.toml"));
    let members = members(&components);
    for m in &members {
        watch(&components.join(m));
    }

    // Components built already (by the main build, for a second toolchain such as the fuzzers'
    // nightly): take them as they are instead of building them again.
    println!("cargo:rerun-if-env-changed=TOKENHOST_PREBUILT_COMPONENTS");
    if let Some(dir) = std::env::var_os("TOKENHOST_PREBUILT_COMPONENTS").map(PathBuf::from) {
        emit(&dir, &members);
        return;
    }

    ensure_target();

    let target_dir =
        std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).unwrap_or_else(|| root.join("target"));
    let wasm_dir = target_dir.join("wasm");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    {
        let mut cmd = Command::new(&cargo);
        cmd.args(["build", "--release", "--target", TARGET, "--manifest-path"])
            .arg(components.join("Cargo.toml"))
            .arg("--target-dir")
            .arg(&wasm_dir);
        // The outer build's flags and target are for the host, not for the guests.
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_BUILD_TARGET",
            "CARGO_TARGET_DIR",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_RUSTFLAGS",
        ] {
            cmd.env_remove(var);
        }
        let status =
            cmd.status().unwrap_or_else(|e| panic!("could not run cargo to build the components: {e}"));
        if !status.success() {
            panic!(
                "building the provider components in {} failed (see the errors above)",
                components.display()
            );
        }
    }
    emit(&wasm_dir.join(TARGET).join("release"), &members);
}

/// Hands the crate the path of each component in `out` as `TOKENHOST_COMPONENT_<NAME>`.
fn emit(out: &Path, members: &[String]) {
    for m in members {
        let file = out.join(format!("{}.wasm", m.replace('-', "_")));
        if file.is_file() {
            let var = format!("TOKENHOST_COMPONENT_{}", m.to_ascii_uppercase().replace('-', "_"));
            println!("cargo:rustc-env={var}={}", file.display());
        }
    }
    println!("cargo:rustc-env=TOKENHOST_COMPONENTS_DIR={}", out.display());
}

fn watch(p: &Path) {
    println!("cargo:rerun-if-changed={}", p.display());
}

/// The folders under components/ that hold a crate.
fn members(components: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(components)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    names.sort();
    names
}

/// Adds the wasm target when the toolchain lacks it, or stops with the one command to run.
fn ensure_target() {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into());
    let libdir = Command::new(&rustc)
        .args(["--print", "target-libdir", "--target", TARGET])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    if libdir.as_ref().is_some_and(|d| d.join("libstd").exists() || has_std(d)) {
        return;
    }
    println!("cargo:warning=the {TARGET} target is missing; adding it with `rustup target add {TARGET}`");
    let added =
        Command::new("rustup").args(["target", "add", TARGET]).status().map(|s| s.success()).unwrap_or(false);
    if !added {
        panic!(
            "the {TARGET} target is not installed and rustup could not add it: run `rustup target add {TARGET}` and build again"
        );
    }
}

fn has_std(dir: &Path) -> bool {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
}
