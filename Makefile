# The coze tools. Every target here is what CI runs (.ci/run calls `make lint` and
# `make test`); nothing in CI is done any other way.
PREFIX ?= /usr/local
BINDIR = $(DESTDIR)$(PREFIX)/bin
CARGO ?= cargo
BINS = coze-auth coze-token coze-conv coze-chat coze-file coze-workflow coze-bot coze-fake
MANDIR = $(DESTDIR)$(PREFIX)/share/man/man1
BASHDIR = $(DESTDIR)$(PREFIX)/share/bash-completion/completions
ZSHDIR = $(DESTDIR)$(PREFIX)/share/zsh/site-functions
FISHDIR = $(DESTDIR)$(PREFIX)/share/fish/vendor_completions.d
MANPAGES = coze-auth coze-auth-doctor coze-token coze-conv coze-chat coze-file coze-workflow coze-bot coze-fake

# `make install` builds and installs the release binaries. BUILD=debug installs the
# debug ones instead; BINDIR_SRC=DIR installs the binaries already in DIR and builds
# nothing (the packaging test does this, from inside `cargo test`).
BUILD ?= release
ifeq ($(origin BINDIR_SRC),undefined)
BINDIR_SRC = target/$(BUILD)
INSTALL_BUILD = $(if $(filter debug,$(BUILD)),build,release)
endif

.PHONY: all build release test unit referee lint fmt demo bench install uninstall clean

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

# Unit tests of every crate, the end-to-end tests (real binaries against coze-fake),
# then the official Python SDK refereeing coze-fake. scripts/test-deps.sh comes first:
# silent when the programs the tests run are all there; as root on Debian it installs
# the missing ones, otherwise it names them and stops.
test:
	@bash scripts/test-deps.sh
	$(CARGO) build --workspace
	$(CARGO) test --workspace
	bash scripts/referee.sh

referee:
	@bash scripts/test-deps.sh --for 'make referee' python3 venv
	$(CARGO) build --workspace
	bash scripts/referee.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# The whole pipeline offline against coze-fake; finishes in seconds, leaves nothing running.
demo: build
	bash scripts/demo.sh

# coze-chat (release) against curl and cozepy on loopback; prints a report (also in
# target/bench/report.md). Not part of `make test`: nothing here asserts a timing.
# BENCH_ARGS=--update-docs writes the report into docs/benchmarks.md.
bench:
	bash scripts/bench.sh $(BENCH_ARGS)

# Coverage-guided fuzzers (cargo-fuzz, libFuzzer + ASan) over the parsers that read
# untrusted bytes: the SSE reader (random chunking), JSON lines + records, the OAuth
# callback query, and json_pick (against serde_json). FUZZ_SECONDS each (default 120), seeded from fuzz/seeds/. Not part of
# `make test` or CI (those run the deterministic randomized tests of the same parsers:
# crates/coze-core/src/wire/fuzz_tests.rs, and those of the records and the callback).
# cargo-fuzz needs nightly features: RUSTC_BOOTSTRAP=1 enables them on a stable toolchain.
FUZZ_SECONDS ?= 120
FUZZ_TARGETS ?= sse jsonl callback json_pick

.PHONY: fuzz

fuzz:
	$(CARGO) fuzz --version >/dev/null 2>&1 || $(CARGO) install cargo-fuzz --locked
	cd fuzz && RUSTC_BOOTSTRAP=1 $(CARGO) fuzz build
	cd fuzz && for t in $(FUZZ_TARGETS); do \
	    mkdir -p corpus/$$t artifacts/$$t; \
	    echo "fuzz: $$t for $(FUZZ_SECONDS) s (log: fuzz/artifacts/$$t.log)"; \
	    RUSTC_BOOTSTRAP=1 $(CARGO) fuzz run $$t corpus/$$t seeds/$$t -- \
	        -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 > artifacts/$$t.log 2>&1 \
	        || { tail -60 artifacts/$$t.log; echo "fuzz: $$t FAILED: the crashing input is in fuzz/artifacts/$$t/"; exit 1; }; \
	    grep -E '^Done [0-9]+ runs|stat::(number_of_executed_units|peak_rss_mb)|^#[0-9]+.*DONE' artifacts/$$t.log; \
	done

# The man pages (man/*.1) and shell completions (completions/) are generated from the
# binaries' --help and checked in; run this after changing a help text (the packaging
# test fails until you do).
.PHONY: man completions

man: build
	python3 scripts/gen-man.py --bin-dir target/debug --out man --completions completions

completions: man

# Binaries, man pages and bash/zsh/fish completions under $(DESTDIR)$(PREFIX).
install: $(INSTALL_BUILD)
	install -d $(BINDIR) $(MANDIR) $(BASHDIR) $(ZSHDIR) $(FISHDIR)
	for b in $(BINS); do install -m 0755 $(BINDIR_SRC)/$$b $(BINDIR)/$$b || exit 1; done
	for m in $(MANPAGES); do install -m 0644 man/$$m.1 $(MANDIR)/$$m.1 || exit 1; done
	for b in $(BINS); do \
	    install -m 0644 completions/bash/$$b $(BASHDIR)/$$b && \
	    install -m 0644 completions/zsh/_$$b $(ZSHDIR)/_$$b && \
	    install -m 0644 completions/fish/$$b.fish $(FISHDIR)/$$b.fish || exit 1; \
	done

# Removes exactly what install put there (directories stay: they may be shared).
uninstall:
	for b in $(BINS); do \
	    rm -f $(BINDIR)/$$b $(BASHDIR)/$$b $(ZSHDIR)/_$$b $(FISHDIR)/$$b.fish; \
	done
	for m in $(MANPAGES); do rm -f $(MANDIR)/$$m.1; done

clean:
	$(CARGO) clean
