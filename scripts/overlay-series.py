#!/usr/bin/env python3
"""Writes the kernel-crate additions (`rust/` and the Rust kernel patches)
as the patch series upstream would review: one `git format-patch` commit
per abstraction, on the pinned tree's pristine files, each adding its own
module declaration so that every step builds on the one before.

    scripts/overlay-series.py      -> build/series/*.patch

Needs the prepared kernel tree (`scripts/kernel.sh prepare`), whose
pristine copies of the touched files are in build/kpatch/orig.
"""
import os
import shutil
import subprocess
import sys

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
ORIG = os.path.join(BUILD, "kpatch", "orig")
OUT = os.path.join(BUILD, "series")
WORK = os.path.join(OUT, "work")

MODULES = [
    # ((file, cfg), (file, cfg) or None, subject, body)
    (("mmu_notifier", "CONFIG_MMU_NOTIFIER"), None, "rust: mm: add MMU interval notifier bindings",
     "An IntervalNotifier over a range of an address space, its ops with a\n"
     "state only the notifier lock reaches, and lock_if_unchanged(): the\n"
     "mmu_interval_read_retry() protocol of Documentation/mm/hmm.rst in the\n"
     "type system. Also the PgmapOwner token and annotate_reclaim(), which\n"
     "primes locks taken in reclaim for lockdep."),
    (("hmm", "CONFIG_HMM_MIRROR"), None, "rust: mm: add HMM range fault bindings",
     "Range::fault() over hmm_range_fault() with per-page requests, and the\n"
     "pages it found as system or device-private pages of different types."),
    # migrate and pagemap use each other: one patch, so that each builds.
    (("migrate", "CONFIG_MIGRATION"), ("pagemap", "CONFIG_DEVICE_PRIVATE"),
     "rust: mm: add migrate_vma and device-private pagemap bindings",
     "A MigrateVma session as a typestate (collected, then migrated) that\n"
     "borrows its VMA, so the mmap lock is held from setup to finalize, and\n"
     "finalizes on drop so that no isolated page can leak; a\n"
     "MEMORY_DEVICE_PRIVATE dev_pagemap with folio_free and migrate_to_ram,\n"
     "and DeviceFolio, the reference to a device folio."),
]


def add_module(mm, name, cfg):
    """Adds rust/kernel/mm/NAME.rs and its declaration in mm.rs."""
    copy(f"rust/kernel/mm/{name}.rs", TOP)
    with open(mm) as f:
        src = f.read()
    anchor = "pub mod virt;\n"
    start = src.index(anchor) + len(anchor)
    line = f"#[cfg({cfg})]\npub mod {name};\n"
    if not src[start:].startswith("\n#[cfg("):
        src = src[:start] + "\n" + line + src[start:]
    else:
        # Keep the declarations sorted, after `virt` and a blank line.
        block = start + 1
        rest, decls = src[block:], []
        while rest.startswith("#[cfg("):
            cfg_line, mod_line, rest = rest.split("\n", 2)
            decls.append(cfg_line + "\n" + mod_line + "\n")
        decls.append(line)
        decls.sort(key=lambda d: d.split("pub mod ")[1])
        src = src[:block] + "".join(decls) + rest
    with open(mm, "w") as f:
        f.write(src)


def git(*args):
    subprocess.run(["git", "-C", WORK, *args], check=True, capture_output=True)


def copy(rel, src_root):
    dst = os.path.join(WORK, rel)
    os.makedirs(os.path.dirname(dst), exist_ok=True)
    shutil.copy(os.path.join(src_root, rel), dst)


def commit(subject, body):
    git("add", "-A")
    git("-c", "user.name=rsvm developers", "-c", "user.email=rsvm@localhost",
        "commit", "-q", "-m", subject + "\n\n" + body)


def main():
    ksrc = os.path.join(BUILD, "linux-" + kver())
    if not os.path.isdir(ORIG):
        sys.exit("no pristine copies: run scripts/kernel.sh prepare first")
    shutil.rmtree(OUT, ignore_errors=True)
    os.makedirs(WORK)
    git("init", "-q")
    for rel in ["rust/bindings/bindings_helper.h", "rust/helpers/helpers.c",
                "rust/kernel/mm.rs", "rust/kernel/maple_tree.rs"]:
        copy(rel, ORIG)
    commit("base: the pinned tree's files", "Linux " + kver() + ", unmodified.")
    # The glue first: headers for bindgen and the C helpers.
    for rel in ["rust/bindings/bindings_helper.h", "rust/helpers/helpers.c"]:
        copy(rel, ksrc)
    copy("rust/helpers/hmm.c", TOP)
    commit("rust: helpers: add the mm helpers of the HMM, migration and notifier bindings",
           "Make linux/hmm.h, linux/memremap.h, linux/migrate.h and\n"
           "linux/mmu_notifier.h visible to bindgen and add the helpers for the\n"
           "static inlines the following abstractions use.")
    mm = os.path.join(WORK, "rust/kernel/mm.rs")
    for first, second, subject, body in MODULES:
        for name, cfg in [m for m in (first, second) if m]:
            add_module(mm, name, cfg)
        commit(subject, body)
    with open(os.path.join(TOP, "kernel", "patches",
                           "0005-rust-maple_tree-implement-Send-and-Sync.patch")) as f:
        patch = f.read()
    subprocess.run(["patch", "-s", "-p1", "-d", WORK], input=patch, text=True, check=True)
    subject = patch.split("Subject: [PATCH] ", 1)[1].split("\n", 1)[0]
    body = patch.split("\n\n", 1)[1].split("\n---\n", 1)[0]
    commit(subject, body)
    subprocess.run(["git", "-C", WORK, "format-patch", "-q", "-o", OUT, "HEAD~5"], check=True)
    for p in sorted(os.listdir(OUT)):
        if p.endswith(".patch"):
            print(os.path.join(OUT, p))


def kver():
    with open(os.path.join(TOP, "scripts", "common.sh")) as f:
        for line in f:
            if line.startswith("KVER="):
                return line.strip().split("=", 1)[1]
    sys.exit("no KVER in scripts/common.sh")


if __name__ == "__main__":
    main()
