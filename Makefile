# edgegw: the targets people run. `make test` is what CI runs.
GO       ?= go
PKGS     := ./...
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
LDFLAGS  := -s -w -X main.version=$(VERSION)
FUZZTIME ?= 20000x

.PHONY: run test deps lint unit fuzz bench cross deb clean

## run: the gateway on its embedded quickstart config (LAN broker, hub emulator, simulated device)
run:
	$(GO) run ./cmd/edgegw

## test: everything CI checks: dependencies, formatting, vet, cross builds, race tests, short fuzz runs
test: deps lint unit fuzz

## deps: install the Debian and npm packages the tests use, when missing
deps:
	@bash scripts/deps.sh

## lint: gofmt and go vet must be clean
lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	cd tools/debpkg && $(GO) vet ./...

## unit: the whole test suite under the race detector; the ARM binaries of
## cross run the quickstart under qemu-user (cmd/edgegw/arm_test.go)
unit: cross
	EDGEGW_CROSS_DIR=$(CURDIR)/dist $(GO) test -race -timeout 25m $(PKGS)
	cd tools/debpkg && $(GO) test ./...

## fuzz: a short run of every fuzz target (seeds are committed under testdata/fuzz)
fuzz:
	@FUZZTIME=$(FUZZTIME) bash scripts/fuzz.sh

## bench: micro-benchmarks and the end-to-end runs (long; not part of test)
bench:
	EDGEGW_BENCH_LONG=1 $(GO) test -run=NONE -bench=. -benchmem -benchtime=1x -timeout 60m $(PKGS)

## cross: static binaries for linux/amd64, linux/arm64, linux/arm/v7 in dist/
cross:
	@mkdir -p dist
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/edgegw-linux-amd64 ./cmd/edgegw
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/edgegw-linux-arm64 ./cmd/edgegw
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '$(LDFLAGS)' -o dist/edgegw-linux-armv7 ./cmd/edgegw
	@ls -l dist/

## deb: Debian packages for amd64, arm64 and armhf in dist/ (nfpm, in its own module tools/debpkg)
deb: cross
	cd tools/debpkg && $(GO) run . -version $(VERSION) -root $(CURDIR) -dist $(CURDIR)/dist

clean:
	rm -rf dist edgegw-data
