//! Generates `$OUT_DIR/uapi.rs`: the series' syscall numbers and flags, read from the
//! headers of `make headers_install` (include dir in `KCONTAINER_UAPI_HEADERS`), with the
//! values of `shared/uapi.md` for anything they lack, so every commit of the series (and
//! a plain 7.3) still builds and runs the suite.

#[path = "src/uapi_gen.rs"]
mod uapi_gen;

use std::path::{Path, PathBuf};
use std::{env, fs};

const ENV: &str = "KCONTAINER_UAPI_HEADERS";

fn main() {
    println!("cargo:rerun-if-env-changed={ENV}");
    println!("cargo:rerun-if-changed=src/uapi_gen.rs");

    let include_dir = env::var_os(ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    let mut defs = uapi_gen::Defs::default();
    if let Some(dir) = &include_dir {
        for header in uapi_gen::headers() {
            let path = dir.join(header);
            match fs::read_to_string(&path) {
                Ok(text) => {
                    println!("cargo:rerun-if-changed={}", path.display());
                    defs.parse(&text);
                }
                Err(e) => {
                    // Missing before the series adds it: rebuild once it appears.
                    println!(
                        "cargo:warning={}: {e}; using uapi.md values",
                        path.display()
                    );
                    if let Some(parent) = path.parent().filter(|p| p.is_dir()) {
                        println!("cargo:rerun-if-changed={}", parent.display());
                    }
                }
            }
        }
    }

    let dir_str = include_dir.as_deref().map(Path::to_string_lossy);
    let out = uapi_gen::render(&defs, dir_str.as_deref());
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out_dir.join("uapi.rs"), out).expect("write $OUT_DIR/uapi.rs");
}
