#!/usr/bin/env python3
"""Boot the rsvm guest next to the GPU model and judge what happened.

    vm.py demo                 boot, load rsvm, print the device's parameters
    vm.py check [--json F]     boot, run the guest tests, write results to F
    vm.py bench                boot, run rsvm-faultbench next to test_hmm;
                               table, JSON and plot in build/bench/

The model (host side) listens on a vfio-user socket; QEMU (TCG, in the
trixie chroot) connects to it. The kernel console (ttyS0) goes to
build/run/serial.log; the guest's userspace (init and the tests) prints to
ttyS1, build/run/guest.log, so kernel messages never split a result line.
A run fails on timeout, on a kernel oops/BUG/WARNING/leak report, when the
driver does not load, or when the guest does not reach its end marker.
"""

import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time

TOP = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.environ.get("BUILD", os.path.join(TOP, "build"))
RUN = os.path.join(BUILD, "run")  # bind-mounted as /run/rsvm in the chroot
CHROOT = os.path.join(BUILD, "chroot")
MODEL = os.path.join(BUILD, "target", "release", "rsvm-gpu")

# What in a guest kernel log means the run is broken, whatever the tests say.
KERNEL_FAILURES = [
    (re.compile(r"\bBUG:"), "kernel BUG"),
    (re.compile(r"\bWARNING:"), "kernel WARNING"),
    (re.compile(r"\bOops\b|general protection fault"), "kernel oops"),
    (re.compile(r"Kernel panic"), "kernel panic"),
    (re.compile(r"KASAN:|UBSAN:"), "sanitizer report"),
    (re.compile(r"kmemleak: \d+ new suspected memory leaks"), "kmemleak report"),
    (re.compile(r"Trying to free nonexistent resource"), "resource released twice or never held"),
    (re.compile(r"RSVM-FATAL: (.*)"), None),
]

SUBTEST = re.compile(r"^Subtest (\S+): (SUCCESS|FAIL|SKIP|CRASH)")
SUBTEST_FAILED = re.compile(r"^Subtest \S+: (FAIL|CRASH)", re.M)
# KUnit suites of this project, run at boot (built into the kernel crate).
KUNIT_SUITES = ["rust_kernel_hmm", "rust_kernel_migrate", "rust_kernel_pagemap"]
KTAP_SUITE = re.compile(r"^\[[ 0-9.]+\]\s+# Subtest: (\S+)")
KTAP_CASE = re.compile(r"^\[[ 0-9.]+\] {5}(not ok|ok) \d+ (\S+)(.*)$")
KTAP_END = re.compile(r"^\[[ 0-9.]+\] (?:not ok|ok) \d+ (\S+)")
# The markers guest/init writes: their list and meaning is at the top of guest/init.
BINARY = re.compile(r"^RSVM-TEST-BINARY: (\S+)")
EXPECT = re.compile(r"^RSVM-EXPECT: (\S+)")
TAP = re.compile(r"^(ok|not ok) \d+ (\S+)(.*)$")


def log(msg):
    print(f"[rsvm] {msg}", file=sys.stderr, flush=True)


def sh(*args, **kw):
    return subprocess.run(args, check=True, **kw)


def start_model(vram_mib):
    if not os.access(MODEL, os.X_OK):
        raise SystemExit(f"[rsvm] error: the GPU model {MODEL} is missing (build it with make)")
    sock = os.path.join(RUN, "gpu.sock")
    if os.path.exists(sock):
        os.unlink(sock)
    mlog = open(os.path.join(RUN, "model.log"), "w")
    proc = subprocess.Popen([MODEL, "--socket", sock, "--vram-mib", str(vram_mib)],
                            stdout=mlog, stderr=subprocess.STDOUT)
    for _ in range(100):
        if os.path.exists(sock):
            return proc
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    proc.kill()
    raise SystemExit("[rsvm] error: the GPU model did not start; see build/run/model.log")


def qemu_cmd(mode, vram_mib, mem_mib, extra_append):
    append = (f"console=ttyS0 panic=-1 oops=panic loglevel=7 rsvm_guest.mode={mode} "
              f"rsvm_test.vram_mib={vram_mib} {extra_append}").strip()
    dev = json.dumps({"driver": "vfio-user-pci", "rombar": 0,
                      "socket": {"type": "unix", "path": "/run/rsvm/gpu.sock"}})
    return ["chroot", CHROOT, "qemu-system-x86_64",
            "-machine", "q35", "-accel", "tcg,thread=multi",
            "-cpu", "max", "-smp", "2,sockets=2,cores=1,threads=1", "-m", f"{mem_mib}M",
            # Two NUMA nodes, one CPU each, so tests can migrate pages
            # (move_pages); shared memfd RAM, which the model reaches by DMA.
            "-object", f"memory-backend-memfd,id=mem0,size={mem_mib // 2}M,share=on",
            "-object", f"memory-backend-memfd,id=mem1,size={mem_mib - mem_mib // 2}M,share=on",
            "-numa", "node,nodeid=0,cpus=0,memdev=mem0",
            "-numa", "node,nodeid=1,cpus=1,memdev=mem1",
            "-device", dev,
            "-kernel", "/run/rsvm/bzImage", "-initrd", "/run/rsvm/initramfs.cpio",
            "-append", append,
            "-nodefaults", "-display", "none", "-monitor", "none",
            "-serial", "file:/run/rsvm/serial.log",
            "-serial", "file:/run/rsvm/guest.log", "-no-reboot"]


def boot(mode, vram_mib, timeout, echo, mem_mib=1536, extra_append=""):
    """Runs one guest; returns (guest userspace output, console, problems)."""
    for f in ("bzImage", "initramfs.cpio"):
        if not os.path.exists(os.path.join(BUILD, f)):
            raise SystemExit(f"[rsvm] error: build/{f} is missing (run make)")
    sh(os.path.join(TOP, "scripts", "chroot.sh"), "mount")
    problems = []
    model = qemu = None
    serial = os.path.join(RUN, "serial.log")
    guest = os.path.join(RUN, "guest.log")
    logs = {serial: 0, guest: 0}

    def follow():
        for path in logs:
            with open(path, errors="replace") as f:
                f.seek(logs[path])
                chunk = f.read()
                logs[path] = f.tell()
            if chunk and echo:
                sys.stdout.write(chunk)
                sys.stdout.flush()

    try:
        for f in ("bzImage", "initramfs.cpio"):
            shutil.copyfile(os.path.join(BUILD, f), os.path.join(RUN, f))
        for path in logs:
            open(path, "w").close()
        model = start_model(vram_mib)
        qlog = open(os.path.join(RUN, "qemu.log"), "w")
        qemu = subprocess.Popen(qemu_cmd(mode, vram_mib, mem_mib, extra_append),
                                stdout=qlog, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            follow()
            if qemu.poll() is not None:
                break
            if time.monotonic() > deadline:
                problems.append(f"timeout: the guest ran longer than {timeout} s")
                os.killpg(qemu.pid, signal.SIGKILL)
                qemu.wait()
                break
            time.sleep(0.2)
        follow()
        if qemu.returncode not in (0, -9):
            problems.append(f"QEMU exited with status {qemu.returncode}; see build/run/qemu.log")
    finally:
        if qemu and qemu.poll() is None:
            os.killpg(qemu.pid, signal.SIGKILL)
            qemu.wait()
        if model:
            try:
                model.wait(timeout=5)
            except subprocess.TimeoutExpired:
                model.kill()
                model.wait()
        subprocess.run([os.path.join(TOP, "scripts", "chroot.sh"), "umount"], check=False)
    with open(serial, errors="replace") as f:
        console = f.read()
    with open(guest, errors="replace") as f:
        text = f.read()
    for pat, what in KERNEL_FAILURES:
        for m in pat.finditer(console + text):
            problems.append(what or m.group(1))
            break
    if "RSVM-GUEST-DONE" not in text:
        problems.append("the guest did not reach its end marker")
    return text, console, problems


def judge_kunit(console):
    """KTAP results of this project's KUnit suites: [(name, passed, note)]."""
    results = []
    suite = None
    seen = set()
    for line in console.splitlines():
        if m := KTAP_SUITE.match(line):
            suite = m.group(1) if m.group(1) in KUNIT_SUITES else None
        elif suite and (m := KTAP_CASE.match(line)):
            ok, name, rest = m.group(1) == "ok", m.group(2), m.group(3)
            if "# SKIP" in rest:
                results.append((f"kunit/{suite}/{name}", False, "skipped"))
            else:
                results.append((f"kunit/{suite}/{name}", ok, "ok" if ok else "not ok"))
            seen.add(suite)
        elif suite and KTAP_END.match(line):
            suite = None
    for s in KUNIT_SUITES:
        if s not in seen:
            results.append((f"kunit/{s}", False, "the suite did not run"))
    return results


def load_hmm_expectations():
    """igt-tests/hmm-tests.expected: 'name outcome # why', outcome fail|skip."""
    exp = {}
    with open(os.path.join(TOP, "igt-tests", "hmm-tests.expected")) as f:
        for line in f:
            line = line.split("#", 1)[0].strip()
            if line:
                name, outcome = line.split()
                exp[name] = outcome
    return exp


def judge_check(text):
    """Turns the guest output of a check run into [(name, passed, note)]."""
    results = []
    announced = []
    binary = None
    hmm = False
    expected = load_hmm_expectations()
    seen_hmm = set()
    for line in text.splitlines():
        line = line.rstrip("\r")
        if m := BINARY.match(line):
            binary = m.group(1)
        elif m := EXPECT.match(line):
            announced.append(m.group(1))
        elif m := SUBTEST.match(line):
            name, res = f"{binary}/{m.group(1)}", m.group(2)
            if res == "SKIP":
                results.append((name, None, "skipped"))
            else:
                results.append((name, res == "SUCCESS", res))
        elif line.startswith("RSVM-HMM-TESTS-BEGIN"):
            hmm = True
        elif line.startswith("RSVM-HMM-TESTS-END"):
            hmm = False
        elif hmm and (m := TAP.match(line)):
            ok, name, rest = m.group(1) == "ok", m.group(2), m.group(3)
            outcome = "skip" if "# SKIP" in rest else ("pass" if ok else "fail")
            want = expected.get(name, "pass")
            seen_hmm.add(name)
            results.append((f"hmm-tests/{name}", outcome == want,
                            outcome if outcome == want else f"{outcome}, expected {want}"))
    reported = {name for name, _, _ in results}
    for name in announced:
        if name not in reported:
            results.append((name, False, "listed by --list-subtests but reported no result"))
    for name in sorted(set(expected) - seen_hmm):
        results.append((f"hmm-tests/{name}", False, "listed in hmm-tests.expected but did not run"))
    return results


def judge_bench(text, problems):
    """rsvm-faultbench's output -> build/bench/faults.{md,json,svg}."""
    bench = os.path.join(BUILD, "bench")
    os.makedirs(bench, exist_ok=True)
    table = [l if l.startswith("|") else "\n" + l + "\n" for l in text.splitlines()
             if l.startswith(("|", "rsvm-faultbench:", "One BAR0"))]
    per_fault = {m.group(2): float(m.group(1))
                 for m in re.finditer(r"^BENCH ([0-9.]+) (.+)$", text, re.M)}
    ratios = {m.group(3): {"x_test_hmm_16_pages": float(m.group(1)),
                           "x_test_hmm_1_page": float(m.group(2))}
              for m in re.finditer(r"^RATIO ([0-9.]+) ([0-9.]+) (.+)$", text, re.M)}
    breakdown = {m.group(5): {"bar0_accesses": float(m.group(1)),
                              "interrupts": float(m.group(2)),
                              "model_engine_us": float(m.group(3)),
                              "rest_us": float(m.group(4))}
                 for m in re.finditer(r"^BREAKDOWN ([0-9.]+) ([0-9.]+) ([0-9.]+) (-?[0-9.]+) (.+)$",
                                      text, re.M)}
    if "RSVM-BENCH-EXIT: 0" not in text or not per_fault:
        problems.append("rsvm-faultbench did not complete")
    for p in problems:
        log(f"FAILED: {p}")
    if problems:
        print(text)
        return 1
    # A table header after another table's rows starts a new table.
    spaced = []
    for i, l in enumerate(table):
        if (i and l.startswith("|") and table[i - 1].startswith("|")
                and i + 1 < len(table) and table[i + 1].startswith("|---")):
            spaced.append("")
        spaced.append(l)
    table = spaced
    print("\n".join(table))
    with open(os.path.join(bench, "faults.md"), "w") as f:
        f.write("\n".join(table) + "\n")
    with open(os.path.join(bench, "faults.json"), "w") as f:
        json.dump({"per_fault_us": per_fault, "ratios": ratios, "per_fault": breakdown},
                  f, indent=1)
    svg = os.path.join(bench, "fault-cost.svg")
    subprocess.run([sys.executable, os.path.join(TOP, "scripts", "plot.py"),
                    os.path.join(bench, "faults.json"), svg], check=True)
    log(f"wrote {bench}/faults.md, faults.json, fault-cost.svg")
    return 0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("mode", choices=["demo", "check", "bench"])
    ap.add_argument("--vram-mib", type=int, default=256)
    ap.add_argument("--timeout", type=int, default=900)
    ap.add_argument("--json", help="check: write [name, passed, note] results here")
    ap.add_argument("--quiet", action="store_true", help="do not echo the serial console")
    ap.add_argument("--only", metavar="BINARY[:SUBTEST]",
                    help="check: run only this test binary (or subtest), print its output")
    args = ap.parse_args()

    os.makedirs(RUN, exist_ok=True)
    t0 = time.monotonic()
    extra = f"rsvm_guest.only={args.only}" if args.only else ""
    text, console, problems = boot(args.mode, args.vram_mib, args.timeout, echo=not args.quiet,
                                   extra_append=extra)
    log(f"guest finished in {time.monotonic() - t0:.1f} s")

    if args.only:
        print(text)
        for p in problems:
            log(f"FAILED: {p}")
        return 1 if problems or SUBTEST_FAILED.search(text) else 0

    if args.mode == "bench":
        return judge_bench(text, problems)

    if args.mode == "demo":
        if "rsvm-demo: OK" not in text:
            problems.append("rsvm-demo did not report OK")
        for p in problems:
            log(f"FAILED: {p}")
        return 1 if problems else 0

    results = judge_kunit(console) + judge_check(text)
    results += [(f"guest/{p}", False, "see build/run/serial.log and guest.log") for p in problems]
    if not any(n.startswith("hmm-tests/") for n, _, _ in results):
        results.append(("hmm-tests", False, "hmm-tests did not run"))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0 if all(p is not False for _, p, _ in results) else 1


if __name__ == "__main__":
    sys.exit(main())
