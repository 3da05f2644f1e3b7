#!/usr/bin/env python3
"""Runs every test of the project and prints 'N passed, N failed'.

1. host: `cargo test` of the workspace (the GPU model and userspace crates)
2. lints: rustfmt on the driver and the crates, checkpatch on C sources
3. guest: boot with the model; IGT-style tests, then the kernel's hmm-tests
Each test is one line in the summary; the last line is the count.
"""

import glob
import json
import os
import re
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
# The kernel version is spelled once, in scripts/common.sh.
with open(os.path.join(TOP, "scripts", "common.sh")) as _f:
    KVER = re.search(r"^KVER=(\S+)$", _f.read(), re.M).group(1)
KSRC = os.path.join(BUILD, f"linux-{KVER}")

results = []  # (name, passed: True/False/None for skipped, note)


def record(name, passed, note=""):
    results.append((name, passed, note))
    tag = {True: "PASS", False: "FAIL", None: "SKIP"}[passed]
    print(f"{tag} {name}{'  (' + note + ')' if note and passed is not True else ''}", flush=True)


def cargo_tests():
    t0 = time.monotonic()
    p = subprocess.run(["cargo", "test", "--workspace", "--release", "--", "--test-threads=2"],
                       cwd=TOP, capture_output=True, text=True)
    seen = 0
    for line in p.stdout.splitlines():
        m = re.match(r"^test (\S+) \.\.\. (ok|FAILED|ignored)", line)
        if m:
            seen += 1
            record(f"cargo/{m.group(1)}", {"ok": True, "FAILED": False, "ignored": None}[m.group(2)])
    if p.returncode != 0 or seen == 0:
        sys.stdout.write(p.stdout[-4000:] + p.stderr[-4000:])
        record("cargo/test-run", False, f"cargo test exited {p.returncode}")
    print(f"[rsvm] cargo test: {time.monotonic() - t0:.1f} s", file=sys.stderr)


def lints():
    driver = sorted(glob.glob(os.path.join(TOP, "drivers/gpu/drm/rsvm/**/*.rs"), recursive=True)
                    + glob.glob(os.path.join(TOP, "rust/**/*.rs"), recursive=True))
    p = subprocess.run(["rustfmt", "--check", "--edition", "2021",
                        "--config-path", os.path.join(KSRC, ".rustfmt.toml"), *driver],
                       capture_output=True, text=True)
    record("lint/rustfmt-kernel", p.returncode == 0, p.stdout[:2000])
    # The kernel's vertical import layout (coding-guidelines.rst), which
    # rustfmt keeps but does not make.
    p = subprocess.run([os.path.join(TOP, "scripts", "vertical-imports.py"), "--check", *driver],
                       capture_output=True, text=True)
    record("lint/vertical-imports", p.returncode == 0, p.stdout[:2000])
    p = subprocess.run(["cargo", "fmt", "--all", "--check"], cwd=TOP, capture_output=True, text=True)
    record("lint/rustfmt-crates", p.returncode == 0, p.stdout[:2000])
    p = subprocess.run(["cargo", "clippy", "--quiet", "--release", "--workspace", "--all-targets", "--",
                        "-D", "warnings"], cwd=TOP, capture_output=True, text=True)
    record("lint/clippy-crates", p.returncode == 0, p.stderr[-3000:])
    csrc = sorted(glob.glob(os.path.join(TOP, "igt-tests/**/*.[ch]"), recursive=True)
                  + glob.glob(os.path.join(TOP, "tools/*.c")) + glob.glob(os.path.join(TOP, "kernels/**/*.[ch]"), recursive=True)
                  + [os.path.join(TOP, "uapi/rsvm_drm.h")])
    igt_h = os.path.join(TOP, "igt-tests/lib/igt.h")
    checkpatch = [os.path.join(KSRC, "scripts/checkpatch.pl"), "--no-tree", "--quiet", "--show-types"]
    # Userspace and GPU-kernel C: the kernel's attribute macros (__printf,
    # __used, ...) do not exist there.
    userspace = ["--ignore", "PREFER_DEFINED_ATTRIBUTE_MACRO"]
    p = subprocess.run([*checkpatch, *userspace, "-f", *[c for c in csrc if c != igt_h]],
                       capture_output=True, text=True)
    # igt.h reimplements IGT's macro interface (igt_subtest and friends are
    # control flow by design, as in IGT itself).
    q = subprocess.run([*checkpatch, *userspace, "--ignore", "COMPLEX_MACRO,MACRO_WITH_FLOW_CONTROL",
                        "-f", igt_h], capture_output=True, text=True)
    record("lint/checkpatch", p.returncode == 0 and q.returncode == 0,
           (p.stdout + p.stderr + q.stdout + q.stderr)[:3000])
    p = subprocess.run([os.path.join(TOP, "scripts", "kernel.sh"), "clippy"], capture_output=True, text=True)
    record("lint/clippy-kernel", p.returncode == 0, (p.stdout + p.stderr)[-3000:])
    # The driver's files import each other one way (no cycle but the
    # drm::Driver triangle); svm.rst draws the graph.
    svg = os.path.join(BUILD, "imports.svg")
    p = subprocess.run([os.path.join(TOP, "scripts", "imports.py"), "--svg", svg],
                       capture_output=True, text=True)
    drawn = os.path.join(TOP, "Documentation/gpu/rsvm/imports.svg")
    current = os.path.exists(svg) and open(svg).read() == open(drawn).read()
    record("lint/import-graph", p.returncode == 0 and current,
           "\n".join(l for l in p.stdout.splitlines() if "CYCLE" in l)
           + ("" if current else "\nimports.svg is stale: run scripts/imports.py --svg " + drawn))
    # MODULE_FIRMWARE: modinfo names the image the driver requests.
    ko = os.path.join(BUILD, "kbuild", "drivers", "gpu", "drm", "rsvm", "rsvm.ko")
    fw = b"firmware=rsvm/gv100-model.bin\0"
    found = os.path.exists(ko) and fw in open(ko, "rb").read()
    record("lint/modinfo-firmware", found, f"{ko} has no {fw!r}")


def guest():
    out = os.path.join(BUILD, "run", "check-results.json")
    if os.path.exists(out):
        os.unlink(out)
    vram = os.environ.get("RSVM_CHECK_VRAM_MIB", "384")
    log = os.path.join(BUILD, "run", "check-console.log")
    os.makedirs(os.path.dirname(log), exist_ok=True)
    with open(log, "w") as f:
        p = subprocess.run([os.path.join(TOP, "scripts", "vm.py"), "check", "--quiet",
                            "--vram-mib", vram, "--json", out], stdout=f, stderr=subprocess.PIPE, text=True)
    sys.stderr.write(p.stderr)
    if not os.path.exists(out):
        record("guest/boot", False, f"vm.py exited {p.returncode}; see {log}")
        return
    with open(out) as f:
        for name, passed, note in json.load(f):
            record(name, passed, note)


def main():
    t0 = time.monotonic()
    cargo_tests()
    lints()
    guest()
    failed = [r for r in results if r[1] is False]
    skipped = [r for r in results if r[1] is None]
    passed = [r for r in results if r[1] is True]
    if failed:
        print("\nFailures:")
        for name, _, note in failed:
            print(f"  {name}: {note.strip()[:500]}")
    print(f"[rsvm] check took {time.monotonic() - t0:.0f} s", file=sys.stderr)
    print(f"{len(passed)} passed, {len(failed)} failed" + (f", {len(skipped)} skipped" if skipped else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
