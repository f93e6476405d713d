# arrears — see README.md. Every target works on a fresh machine: tests use
# the machine's PostgreSQL/NATS when they answer on their default ports and
# start private ones otherwise.
GO       ?= go
GOFLAGS  ?=
PKGS     := ./...

.PHONY: run build test test-short lint bench gobench clean

## run: start API + relay + workers with zero configuration (./data)
run:
	$(GO) run ./cmd/arrears serve

## build: compile bin/arrears
build:
	$(GO) build -o bin/arrears ./cmd/arrears

## test: lint, then every test with the race detector
test: lint
	$(GO) test -race -count=1 -timeout 15m $(PKGS)

## test-short: skip the long concurrency proofs
test-short:
	$(GO) test -short -count=1 $(PKGS)

## lint: gofmt and go vet
lint:
	@unformatted=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt needed:"; echo "$$unformatted"; exit 1; fi
	$(GO) vet $(PKGS)

## bench: end-to-end load benchmark on a fresh database (arrears bench; see
## README "Performance"); BENCHFLAGS=-quick for a short run
BENCHFLAGS ?=
bench:
	$(GO) run ./cmd/arrears bench $(BENCHFLAGS)

## gobench: Go benchmarks of the hot paths (domain, event-store append, projections)
gobench:
	$(GO) test -run '^$$' -bench . -benchmem -count=1 $(PKGS)

clean:
	rm -rf bin
