// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Generates the uAPI bindings from `uapi/rsvm_drm.h` with bindgen, against
//! the kernel headers the build installed (`make kernel` puts them in
//! `build/hdr`): the library compiles against the same header as the C
//! tests, never a hand-kept copy.

use std::{env, path::PathBuf, process::Command};

fn var_or(name: &str, default: PathBuf) -> PathBuf {
    println!("cargo:rerun-if-env-changed={name}");
    env::var_os(name).map(PathBuf::from).unwrap_or(default)
}

fn main() {
    let top = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap()).join("..");
    let build = var_or("BUILD", top.join("build"));
    let bindgen = var_or("BINDGEN", build.join("tools/bindgen/bin/bindgen"));
    let libclang = var_or("LIBCLANG_PATH", build.join("tools/libclang/native"));
    let hdr = var_or("RSVM_KERNEL_HEADERS", build.join("hdr/include"));
    let header = top.join("uapi/rsvm_drm.h");
    println!("cargo:rerun-if-changed={}", header.display());

    for (what, path) in [("bindgen", &bindgen), ("kernel headers", &hdr)] {
        assert!(
            path.exists(),
            "{what} not found at {} (run `make kernel` first, or set BINDGEN, \
             LIBCLANG_PATH and RSVM_KERNEL_HEADERS)",
            path.display()
        );
    }
    let out = PathBuf::from(env::var("OUT_DIR").unwrap()).join("uapi.rs");
    let st = Command::new(&bindgen)
        .env("LIBCLANG_PATH", &libclang)
        .arg(&header)
        .args([
            "--allowlist-item",
            "(DRM_RSVM|DRM_IOCTL_RSVM|drm_rsvm)_.*",
            "--use-core",
            "--no-doc-comments",
            "--with-derive-default",
            "-o",
        ])
        .arg(&out)
        .arg("--")
        .arg(format!("-I{}", hdr.join("drm").display()))
        .arg(format!("-I{}", hdr.display()))
        .status()
        .expect("cannot run bindgen");
    assert!(st.success(), "bindgen failed on {}", header.display());
}
