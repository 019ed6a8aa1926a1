GO ?= go
BINARIES := berthd berth berth-shim berth-registry
VERSION ?= 0.1.0
COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
LDFLAGS := -s -w -X github.com/berth-dev/berth/version.Version=$(VERSION) -X github.com/berth-dev/berth/version.GitCommit=$(COMMIT)

.PHONY: build test unit vet fmt clean

build:
	@mkdir -p bin
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o bin/ $(addprefix ./cmd/,$(BINARIES))

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || (gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1)

# unit + integration tests; integration tests need root and skip without it.
test: build vet
	BERTH_BIN=$(CURDIR)/bin $(GO) test -count=1 -timeout 60m -p 2 ./...

unit:
	$(GO) test -count=1 -short ./...

clean:
	rm -rf bin
