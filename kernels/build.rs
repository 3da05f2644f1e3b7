// SPDX-License-Identifier: GPL-2.0-only OR MIT
//! Builds every `src/*.c` into a flat kernel image and embeds it, as a
//! constant of its own and in the table `ALL`.

use std::{env, fmt::Write, fs, path::PathBuf, process::Command};

fn main() {
    let dir = PathBuf::from(env::var("CARGO_MANIFEST_DIR").unwrap());
    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let cc = dir.join("../scripts/kernel-cc.sh");
    for f in [
        "rsvm_kernel.h",
        "kernel.ld",
        "../scripts/kernel-cc.sh",
        "src",
    ] {
        println!("cargo:rerun-if-changed={}", dir.join(f).display());
    }
    let mut srcs: Vec<_> = fs::read_dir(dir.join("src"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "c"))
        .collect();
    srcs.sort();
    let mut rs = String::new();
    let mut all = String::new();
    for src in srcs {
        let name = src.file_stem().unwrap().to_str().unwrap().to_owned();
        let bin = out.join(format!("{name}.bin"));
        let st = Command::new(&cc).arg(&src).arg(&bin).status().unwrap();
        assert!(st.success(), "kernel-cc.sh {} failed", src.display());
        writeln!(
            rs,
            "/// `kernels/src/{name}.c`.\npub const {}: &[u8] = include_bytes!({:?});",
            name.to_uppercase(),
            bin.display().to_string()
        )
        .unwrap();
        writeln!(all, "    ({name:?}, {}),", name.to_uppercase()).unwrap();
    }
    writeln!(
        rs,
        "/// Every kernel by the name of its source file.\npub const ALL: &[(&str, &[u8])] = &[\n{all}];"
    )
    .unwrap();
    fs::write(out.join("kernels.rs"), rs).unwrap();
}
