# The coze tools. Every target here is what CI runs (.ci/run calls `make lint` and
# `make test`); nothing in CI is done any other way.
PREFIX ?= /usr/local
BINDIR = $(DESTDIR)$(PREFIX)/bin
CARGO ?= cargo
BINS = coze-auth coze-token coze-conv coze-chat coze-fake

.PHONY: all build release test unit referee lint fmt demo install uninstall clean

all: build

build:
	$(CARGO) build --workspace

release:
	$(CARGO) build --workspace --release

# Unit tests of every crate, the end-to-end tests (real binaries against coze-fake),
# then the official Python SDK refereeing coze-fake.
test: build
	$(CARGO) test --workspace
	bash scripts/referee.sh

referee: build
	bash scripts/referee.sh

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings

fmt:
	$(CARGO) fmt --all

# The whole pipeline offline against coze-fake; finishes in seconds, leaves nothing running.
demo: build
	bash scripts/demo.sh

install: release
	install -d $(BINDIR)
	for b in $(BINS); do install -m 0755 target/release/$$b $(BINDIR)/$$b; done

uninstall:
	for b in $(BINS); do rm -f $(BINDIR)/$$b; done

clean:
	$(CARGO) clean
