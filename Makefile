# rsvm: top-level build.
#
#   make run     build everything on first use, boot the guest with the GPU
#                model, load rsvm and run the demo
#   make check   build, then run every test: host cargo tests, lints, and the
#                guest tests (IGT-style tests and the kernel's hmm-tests);
#                ends with "N passed, N failed"
#   make bench   the benchmarks: copy engine (host), GPU fault cost next to
#                test_hmm (guest); results and plot in build/bench/
#
# Everything downloaded or built lives in build/ (ignored by git); a second
# make only redoes what changed.

BUILD ?= $(CURDIR)/build
export BUILD
export CARGO_TARGET_DIR := $(BUILD)/target

# make CLIPPY=1 runs clippy on the kernel's Rust code, the driver included.
ifneq ($(CLIPPY),)
export CLIPPY
endif

.PHONY: all setup kernel model initramfs run check bench help clean distclean

all: initramfs model

setup:
	@scripts/setup-host.sh

kernel: setup
	@scripts/kernel.sh

# The userspace library (librsvm) needs the kernel's uAPI headers: it is
# built with the initramfs, after the kernel.
model: setup
	@cargo build --release --quiet --workspace --exclude rsvm

initramfs: kernel model
	@scripts/initramfs.sh

run: all
	@scripts/vm.py demo

check: all
	@scripts/check.py

# Benchmarks (see README "Benchmarks"): the model's copy engine on the
# host, then the GPU fault path next to test_hmm's in one guest run.
bench: all
	@mkdir -p $(BUILD)/bench
	@$(CARGO_TARGET_DIR)/release/rsvm-gpu-bench 64 | tee $(BUILD)/bench/model.md
	@scripts/vm.py bench --quiet

# The inner loops: what to run while working on one part.
help:
	@echo "make run | check | bench    the demo, every test, the benchmarks"
	@echo "make all                    build what changed (driver edits: ~30 s)"
	@echo "make CLIPPY=1 all           the same, with clippy on the kernel's Rust code"
	@echo
	@echo "Inner loops:"
	@echo "  cargo test --release -p rsvm-gpu           the GPU model's unit and integration tests"
	@echo "  scripts/kernel.sh build                    rebuild the kernel and rsvm.ko only"
	@echo "  scripts/kernel.sh clippy                   clippy on the driver and rust/ only"
	@echo "  make all && scripts/vm.py check --only BIN[:SUBTEST]"
	@echo "                                             one guest test binary or subtest (~30 s)"
	@echo "  scripts/vm.py bench                        the guest benchmarks only"
	@echo "  scripts/imports.py                         the driver's import graph and its cycles"
	@echo "  scripts/overlay-series.py                  rust/ as an upstream patch series (build/series/)"
	@echo
	@echo "Guest logs: build/run/{serial,guest,model,qemu}.log"

clean:
	rm -rf $(BUILD)/kbuild $(BUILD)/target $(BUILD)/guest $(BUILD)/initramfs* $(BUILD)/bzImage $(BUILD)/modroot $(BUILD)/stamps/kernel-config

# Also forgets the downloads, the tools and the QEMU chroot.
distclean:
	-scripts/chroot.sh umount
	rm -rf --one-file-system $(BUILD)
