# skywire — build, run, test, bench, release.
SHELL   := /bin/bash
GO      ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
PKG     := github.com/skywire-mesh/skywire
LDFLAGS := -s -w -X $(PKG)/internal/cli/buildinfo.Version=$(VERSION) -X $(PKG)/internal/cli/buildinfo.Commit=$(COMMIT)
BIN     := bin/skywire
# make run keeps its state (app table, sockets, logs) here, so a second
# `make run` finds the daemons the first one left running.
RUN_STATE ?= $(CURDIR)/.run/state
FUZZTIME  ?= 3s
# make install: PREFIX and DESTDIR as usual (DESTDIR for packaging).
PREFIX  ?= /usr/local
BINDIR  ?= $(PREFIX)/bin
UNITDIR ?= $(PREFIX)/lib/systemd/system
SHAREDIR ?= $(PREFIX)/share
# What install builds first; `make install INSTALL_DEPS= BIN=path` installs
# a binary built elsewhere.
INSTALL_DEPS ?= build

.PHONY: all build run install test deps vet fmt-check lint unit fuzz fuzz-long bench release clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN) .

## run: the viscript shell on the embedded default config
run: build
	@mkdir -p $(RUN_STATE)
	@echo "To reach this demo from another terminal, paste:"
	@echo '  export PATH="$(abspath $(dir $(BIN))):$$PATH" SKYWIRE_STATE_DIR="$(RUN_STATE)" SKYWIRE_CONFIG="$(CURDIR)/skywire.toml"'
	SKYWIRE_STATE_DIR=$(RUN_STATE) SKYWIRE_CONFIG="$(CURDIR)/skywire.toml" $(abspath $(BIN)) viscript || true

## install: the binary, its skywire-ROLE links, the systemd unit and shell
## completions under $(DESTDIR)$(PREFIX)
install: $(INSTALL_DEPS)
	install -d '$(DESTDIR)$(BINDIR)' '$(DESTDIR)$(UNITDIR)' '$(DESTDIR)$(SHAREDIR)/bash-completion/completions' \
		'$(DESTDIR)$(SHAREDIR)/zsh/site-functions' '$(DESTDIR)$(SHAREDIR)/fish/vendor_completions.d'
	install -m 0755 '$(BIN)' '$(DESTDIR)$(BINDIR)/skywire'
	'$(BIN)' links --target skywire --force '$(DESTDIR)$(BINDIR)' >/dev/null
	sed 's|/usr/local/bin/skywire|$(BINDIR)/skywire|' contrib/skywire-viscript.service > '$(DESTDIR)$(UNITDIR)/skywire-viscript.service'
	chmod 0644 '$(DESTDIR)$(UNITDIR)/skywire-viscript.service'
	'$(BIN)' completion bash > '$(DESTDIR)$(SHAREDIR)/bash-completion/completions/skywire'
	'$(BIN)' completion zsh > '$(DESTDIR)$(SHAREDIR)/zsh/site-functions/_skywire'
	'$(BIN)' completion fish > '$(DESTDIR)$(SHAREDIR)/fish/vendor_completions.d/skywire.fish'
	@echo "installed $(DESTDIR)$(BINDIR)/skywire; start the launcher with: systemctl daemon-reload && systemctl enable --now skywire-viscript"

## test: everything CI runs (vet, gofmt, staticcheck, go mod tidy, unit + e2e tests with -race, short fuzz runs)
test: deps vet fmt-check lint unit fuzz

deps:
	@bash scripts/deps.sh

vet:
	$(GO) vet ./...

fmt-check:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi

## lint: staticcheck (pinned in go.mod as a tool) and a tidy go.mod
lint:
	$(GO) tool staticcheck ./...
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; }
	@cd tests/e2e/testdata/extapp && GOWORK=off $(GO) mod tidy -diff || { echo "tests/e2e/testdata/extapp is not tidy: run go mod tidy there"; exit 1; }

unit:
	$(GO) test -race -count=1 -timeout 20m ./...

fuzz:
	@bash scripts/fuzz.sh $(FUZZTIME)

## fuzz-long: every fuzz target for 1M executions, each process under 1 GiB
## (not part of make test: hours on 2 cores)
fuzz-long:
	@FUZZ_MAX_RSS_MB=$${FUZZ_MAX_RSS_MB:-1024} bash scripts/fuzz.sh $${FUZZ_EXECS:-1000000}x

## bench: benchmarks and the figures table for docs/PERFORMANCE.md
bench: build
	@bash scripts/bench.sh

## release: static binaries and SHA-256 sums in dist/
release:
	@bash scripts/release.sh '$(LDFLAGS)'

clean:
	rm -rf bin dist .run
