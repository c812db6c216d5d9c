# sandboxd — top-level targets. `make run` and `make test` install what is missing.
#   make            build priv/sandboxd and compile src/ into ebin/
#   make run        install, build, start sandboxd (process backend) in the foreground
#   make test       install, build (plain and ASan+UBSan), start epmd and Docker, run every suite
#   make test-selftest  check that scripts/test.sh counts every failure (fixtures in test/selftest)
#   make docker-up  install docker.io, start dockerd, build the test image (scripts/docker-up.sh)
#   make vm-image   the default VM image in priv/vm (Debian cloud kernel, busybox, the guest agent)
#   make fuzz       libFuzzer over framing/term/handshake parsing (FUZZ_SECONDS, default 120)
#   make bench      benchmarks against the anchors (bench/rpc)
#   make bench-trace trace events relayed per second, remote_call vs erpc (bench/trace)
#   make bench-docker  Docker sandboxes against curl on the Engine API and the docker CLI (bench/docker)

ERLC      ?= erlc
ERLC_OPTS := +warnings_as_errors +debug_info
SRC_ERL   := $(wildcard src/*.erl)
EBIN      := ebin
BEAMS     := $(SRC_ERL:src/%.erl=$(EBIN)/%.beam)
TEST_ERL  := $(wildcard test/erl/*.erl)
TEST_EBIN := _build/test/ebin
TEST_BEAMS := $(TEST_ERL:test/erl/%.erl=$(TEST_EBIN)/%.beam)
# Modules sandboxd loads into the BEAM nodes it hosts (code:load_binary), shipped next to
# the binary: any src/sbx_*_agent.erl or src/sbx_*_helper.erl.
PRIV_BEAMS := $(patsubst src/%.erl,priv/%.beam,$(wildcard src/sbx_*_agent.erl src/sbx_*_helper.erl))
FUZZ_SECONDS ?= 120

all: c erl

c:
	$(MAKE) -C c_src

c-asan:
	$(MAKE) -C c_src SANITIZE=1

c-unit:
	$(MAKE) -C c_src unit

erl: $(BEAMS) $(EBIN)/sandboxd.app $(PRIV_BEAMS)

# What the daemon needs in priv/ (the binary and the modules it loads into BEAM nodes): the
# step mix.exs and rebar.config run when the project is another project's dependency.
priv: c $(PRIV_BEAMS)

priv/%.beam: $(EBIN)/%.beam
	@mkdir -p priv
	cp $< $@

$(EBIN)/%.beam: src/%.erl include/sandboxd.hrl
	@mkdir -p $(EBIN)
	$(ERLC) $(ERLC_OPTS) -I include -o $(EBIN) $<

$(EBIN)/sandboxd.app: src/sandboxd.app.src
	@mkdir -p $(EBIN)
	cp $< $@

$(TEST_EBIN)/%.beam: test/erl/%.erl
	@mkdir -p $(TEST_EBIN)
	$(ERLC) $(ERLC_OPTS) -I include -o $(TEST_EBIN) $<

# The Elixir client (lib/) for the ExUnit files of test/elixir, which run with plain `elixir`.
LIB_EX    := $(wildcard lib/*.ex lib/*/*.ex)
LIB_STAMP := $(TEST_EBIN)/.elixir-lib
$(LIB_STAMP): $(LIB_EX) $(BEAMS)
	@mkdir -p $(TEST_EBIN)
	elixirc --warnings-as-errors --ignore-module-conflict -pa $(EBIN) -o $(TEST_EBIN) $(LIB_EX)
	@touch $@

test-build: all c-asan c-unit $(TEST_BEAMS) $(LIB_STAMP) vm-image vm-test-images

# The VM backend's guest side (guest/agent): the agent, the hostile test inits and
# sbx-agentctl in _build/vm; the default image in priv/vm (scripts/vm-image.sh rebuilds it
# only when its inputs changed; the kernel package is downloaded once per machine).
vm-guest:
	@$(MAKE) --no-print-directory -s -C guest/agent

vm-image: vm-guest
	@scripts/vm-image.sh

vm-test-images: vm-image
	@scripts/vm-image.sh --hostile

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

run: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory vm-image || echo "make run: the VM image could not be built: vm sandboxes are unavailable"
	@scripts/run.sh

test: deps-test
	@mkdir -p _build
	@$(MAKE) --no-print-directory -j2 test-build >_build/make-test-build.log 2>&1 || \
	  { mkdir -p _build; cat _build/make-test-build.log; echo "0 passed, 1 failed"; exit 1; }
	@scripts/test.sh

# The runner's own self-test (scripts/selftest.sh): fixtures fed to scripts/tally.sh, the
# counting of scripts/test.sh. scripts/test.sh runs it first, as a suite.
test-selftest: $(TEST_BEAMS)
	@scripts/selftest.sh

docker-up:
	@scripts/docker-up.sh

fuzz:
	@scripts/deps.sh fuzz
	$(MAKE) -C c_src fuzz-bin
	scripts/fuzz.sh $(FUZZ_SECONDS)
	FUZZ_TARGET=fuzz_tls scripts/fuzz.sh $(FUZZ_SECONDS)
	FUZZ_TARGET=fuzz_agent scripts/fuzz.sh $(FUZZ_SECONDS)

bench: deps-test all $(TEST_BEAMS)
	bench/rpc

bench-trace: deps-test all
	bench/trace/run

bench-docker: deps-test all
	bench/docker

clean:
	$(MAKE) -C c_src clean
	rm -rf $(EBIN) _build $(PRIV_BEAMS) priv/vm

.PHONY: priv all c c-asan c-unit erl test-build deps deps-test run test test-selftest docker-up fuzz bench bench-trace bench-docker clean \
        vm-guest vm-image vm-test-images
