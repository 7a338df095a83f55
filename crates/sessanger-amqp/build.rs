//! Lets the PAM binding link on a machine without `libpam0g-dev`.
//!
//! `libpam-sys` asks the linker for `-lpam`, which only the development package's
//! `libpam.so` symlink satisfies; the runtime package ships `libpam.so.0` alone. When the
//! symlink is missing we make our own in `OUT_DIR` and add it to the search path, so
//! `cargo build` works on a fresh machine and the binary still loads the system's libpam.

use std::{env, path::PathBuf};

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    let dirs = [
        format!("/usr/lib/{arch}-linux-gnu"),
        format!("/lib/{arch}-linux-gnu"),
        "/usr/lib64".into(),
        "/lib64".into(),
        "/usr/lib".into(),
        "/lib".into(),
    ];
    let dirs: Vec<PathBuf> = dirs.iter().map(PathBuf::from).collect();
    if dirs.iter().any(|dir| dir.join("libpam.so").exists()) {
        return;
    }
    let Some(runtime) = dirs.iter().map(|dir| dir.join("libpam.so.0")).find(|lib| lib.exists()) else {
        println!("cargo:warning=neither libpam.so nor libpam.so.0 found: install libpam0g");
        return;
    };
    let shim = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("pam-link");
    std::fs::create_dir_all(&shim).expect("creating OUT_DIR/pam-link");
    let link = shim.join("libpam.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&runtime, &link).expect("linking libpam.so to libpam.so.0");
    println!("cargo:rustc-link-search=native={}", shim.display());
}
