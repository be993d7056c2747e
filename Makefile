# drplane: see README.md. Tools are installed into .bin/ at pinned versions.
GO       ?= go
BIN      := bin/drplane
TOOLS    := $(CURDIR)/.bin
export PATH := $(TOOLS):$(PATH)
# pipefail: a failing `go test | tee` must fail the target.
SHELL       := /bin/bash
.SHELLFLAGS := -eo pipefail -c

BUF_VERSION                := v1.75.0
PROTOC_GEN_GO_VERSION      := v1.36.12
PROTOC_GEN_GO_GRPC_VERSION := v1.6.0
STATICCHECK_VERSION        := v0.8.2
BENCHSTAT_VERSION          := v0.0.0-20260908200009-22c9c6c9d4da

# Packages whose tests run in make test; the e2e suite is part of it.
TEST_TIMEOUT ?= 20m

.PHONY: all build test e2e lint proto bench demo clean tools prereqs-test prereqs-demo prereqs-bench

all: build

build:
	$(GO) build -o $(BIN) ./cli/drplane

# scripts/prerequisites installs what a fresh Debian or Ubuntu machine
# lacks when run as root (rsync, restic, PostgreSQL 15, ...), and elsewhere
# fails at once naming what to install.
prereqs-test:
	@scripts/prerequisites test
prereqs-demo:
	@scripts/prerequisites demo
prereqs-bench:
	@scripts/prerequisites bench

# The whole output is kept in bin/test.log; on a failure its summary is
# printed last (CI shows the end of a long log): which tests failed and,
# after a timeout, which were still running.
test: prereqs-test
	@mkdir -p bin
	@$(GO) test -race -timeout $(TEST_TIMEOUT) ./... 2>&1 | tee bin/test.log; rc=$${PIPESTATUS[0]}; \
	if [ $$rc -ne 0 ]; then scripts/test-summary bin/test.log; fi; exit $$rc

e2e:
	$(GO) test -race -timeout $(TEST_TIMEOUT) -v ./e2e/...

# buf breaking compares the .proto files with branch main: a change that
# breaks the wire or generated code of the services needs a new version.
lint: $(TOOLS)/staticcheck $(TOOLS)/buf
	@scripts/check-tracked-files
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	$(TOOLS)/staticcheck ./...
	$(TOOLS)/buf lint
	$(TOOLS)/buf breaking --against '.git#branch=main'

proto: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-go-grpc
	$(TOOLS)/buf lint
	$(TOOLS)/buf generate

# Benchmarks print medians over -count runs (benchstat's center column).
# BenchmarkPull pulls a tree through the rsync tunnel and copies it with a
# local rsync, full and after changing 1% of the files, and reports the
# ratio tunnel/local; its tree is 50 MB in 2,000 files, or 1 GiB in 10,000
# files with BENCH_FULL=1 (make bench BENCH_FULL=1: a few minutes more).
# BenchmarkSnapshot reports builtin snapshot create and restore in MB/s.
# BenchmarkPgBackRest_Throughput fills a PostgreSQL database of 1 GB and
# reports a full pgBackRest backup's and its restore's MB/s (3 runs).
# BenchmarkNetns_* run in the network-namespace topology (root), one fresh
# deployment per run and 5 runs each (about 15 minutes): switchover and
# failover by command, automatic failover on site loss and partition; see
# e2e/netns_bench_test.go for their figures.
bench: prereqs-bench $(TOOLS)/benchstat build
	@mkdir -p bin
	$(GO) test -run '^$$' -bench 'BenchmarkFSMApply' -benchtime 2s -count 6 ./controlplane/ | tee bin/bench-apply.txt
	$(GO) test -run '^$$' -bench 'BenchmarkKPIs' -benchtime 20x -count 6 ./controlplane/ | tee bin/bench-kpis.txt
	$(GO) test -run '^$$' -bench 'BenchmarkReelection' -benchtime 1x -count 6 -timeout 20m ./e2e/ | tee bin/bench-election.txt
	DRPLANE_BENCH_FULL=$(BENCH_FULL) $(GO) test -run '^$$' -bench 'BenchmarkPull' \
		-benchtime $(if $(filter 1,$(BENCH_FULL)),1x,2x) -count 6 -timeout 40m ./hostagent/rsync/ | tee bin/bench-rsync.txt
	$(GO) test -run '^$$' -bench 'BenchmarkSnapshot' -benchtime 1x -count 6 -timeout 20m ./hostagent/snapshot/ | tee bin/bench-snapshot.txt
	$(GO) test -run '^$$' -bench 'BenchmarkPgBackRest' -benchtime 1x -count 3 -timeout 60m ./hostagent/backup/ | tee bin/bench-pgbackrest.txt
	$(GO) test -run '^$$' -bench 'BenchmarkRestorePlan' -benchtime 1x -count 3 -timeout 60m ./e2e/ | tee bin/bench-restore-plan.txt
	$(GO) test -run '^$$' -bench 'BenchmarkSwitchover|BenchmarkFailover|BenchmarkRestart|BenchmarkCommitLatency' -benchtime 1x -count 6 -timeout 30m ./e2e/ | tee bin/bench-plans.txt
	$(GO) test -run '^$$' -bench 'BenchmarkNetns' -benchtime 1x -count 5 -timeout 60m ./e2e/ | tee bin/bench-netns.txt
	@echo; echo "== medians over 6 runs (3 for BenchmarkPgBackRest and BenchmarkRestorePlan, 5 for BenchmarkNetns_*) =="; $(TOOLS)/benchstat bin/bench-apply.txt bin/bench-election.txt \
		bin/bench-rsync.txt bin/bench-snapshot.txt bin/bench-pgbackrest.txt bin/bench-restore-plan.txt bin/bench-plans.txt bin/bench-netns.txt

demo: prereqs-demo build
	$(GO) run ./deploy/demo --bin $(CURDIR)/$(BIN)

clean:
	rm -rf bin

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-go-grpc:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/grpc/cmd/protoc-gen-go-grpc@$(PROTOC_GEN_GO_GRPC_VERSION)
$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
$(TOOLS)/benchstat:
	GOBIN=$(TOOLS) $(GO) install golang.org/x/perf/cmd/benchstat@$(BENCHSTAT_VERSION)
