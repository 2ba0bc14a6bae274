# test/test.mk, included by the Makefile: everything built for the tests
# only, never installed: the unit tests (make unit, make check-unit), the
# history checker, the fuzz targets (make fuzz), the planted-bug controls,
# the raw Raft writer, the benchmark client (make bench) and the
# simulation. Uses sidecar/sidecar.mk's objects and flags.

UNIT_TESTS = $(patsubst test/unit/%.c,$(BUILD)/test/%,$(wildcard test/unit/test_*.c))

# A unit test links its own file, the common codec, every sidecar module
# except main.c and the library; the linker keeps only what the test uses.
UNIT_LIB_OBJS = $(filter-out $(BUILD)/sidecar/main.o,$(SIDECAR_OBJS)) $(LIB)
$(BUILD)/test/%: $(BUILD)/test/unit/%.o $(UNIT_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(SC_CC) -o $@ $^ $(SC_LIBS) -lcmocka

# test_server.c compiles sidecar/server.c in (its dispatch is static), so
# it links without server.o.
$(BUILD)/test/test_server: $(BUILD)/test/unit/test_server.o $(filter-out $(BUILD)/sidecar/server.o,$(UNIT_LIB_OBJS))
	@mkdir -p $(dir $@)
	$(SC_CC) -o $@ $^ $(SC_LIBS) -lcmocka

# The history checker (test/checker/): a libpq client, and its check,
# which the unit tests also drive with made-up histories.
LIBPQ_INCLUDE := $(shell pkg-config --cflags-only-I libpq 2>/dev/null)
$(BUILD)/test/checker/checker.o: SC_CFLAGS += $(LIBPQ_INCLUDE)
$(BUILD)/tsoracle-checker: $(BUILD)/test/checker/checker.o $(BUILD)/test/checker/history.o
	$(SC_CC) -o $@ $^ -lpq -lpthread
$(BUILD)/test/test_history: $(BUILD)/test/checker/history.o
all: $(BUILD)/tsoracle-checker
unit: $(UNIT_TESTS)

# ---- fuzzing (libFuzzer, clang; docs/building.md) ------------------------
# Five targets in test/fuzz/, each built as $(BUILD)/fuzz_NAME with
# AddressSanitizer and UndefinedBehaviorSanitizer:
#   proto         the wire protocol codec (common/proto.c)
#   fsm           the state machine's command decoding and apply (sidecar/fsm.c)
#   fsm_snapshot  the state machine's snapshot restore
#   config        the config file parser and checks (sidecar/config.c)
#   tls_framing   the framing that follows the TLS layer (common/tlsio.c
#                 into common/proto.c's reader): what the client port decodes
#                 and what the worker and forwarder decode, through real
#                 TLS 1.3 sessions (its certificates from scripts/certs.sh)
# `make fuzz` runs each for FUZZ_RUNS executions (10 million) from its seed
# corpus (test/fuzz/corpus/NAME, valid inputs) plus what earlier runs found
# ($(BUILD)/fuzz/corpus/NAME); crash inputs land in $(BUILD)/fuzz/NAME-*.
# `make fuzz-brief` (run by `make test`) runs each FUZZ_BRIEF_RUNS times
# with the fixed seed FUZZ_SEED. FUZZ_TARGETS="fsm" picks targets.
FUZZ_CC ?= clang
FUZZ_RUNS ?= 10000000
FUZZ_SEED ?= 1
FUZZ_TARGETS ?= proto fsm fsm_snapshot config tls_framing
FUZZ_SAN = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS = -std=gnu11 -O1 -g -fno-omit-frame-pointer $(FUZZ_SAN) \
	-Iinclude -Icommon -Isidecar -Itest/fuzz -I$(DEPS_PREFIX)/include
# The code under test, compiled with the sanitizers and coverage, in an
# archive: each target links only the modules it uses.
FUZZ_LIB_SRCS = $(filter-out sidecar/main.c,$(SIDECAR_SRCS)) $(LIB_SRCS)
FUZZ_LIB_OBJS = $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(FUZZ_LIB_SRCS))

$(BUILD)/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

$(BUILD)/fuzzobj/libfuzzlib.a: $(FUZZ_LIB_OBJS)
	rm -f $@
	ar rcs $@ $^

$(BUILD)/fuzz_%: test/fuzz/fuzz_%.c test/fuzz/fuzz_check.h test/fuzz/fuzz_sidecar.h $(BUILD)/fuzzobj/libfuzzlib.a
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $< $(BUILD)/fuzzobj/libfuzzlib.a $(SC_LIBS)

FUZZ_BINS = $(patsubst %,$(BUILD)/fuzz_%,$(FUZZ_TARGETS))

.PHONY: fuzz fuzz-build fuzz-brief
fuzz-build: $(FUZZ_BINS)

# The seed corpus, where a target has one (proto starts from nothing).
FUZZ_SEEDS = $$([ -d test/fuzz/corpus/$$t ] && echo test/fuzz/corpus/$$t)

fuzz: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		mkdir -p $(BUILD)/fuzz/corpus/$$t; \
		echo "== fuzz_$$t: $(FUZZ_RUNS) runs"; \
		start=$$(date +%s); \
		$(BUILD)/fuzz_$$t -runs=$(FUZZ_RUNS) -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/fuzz/$$t- $(BUILD)/fuzz/corpus/$$t $(FUZZ_SEEDS) \
			2>$(BUILD)/fuzz/$$t.log || { tail -n 40 $(BUILD)/fuzz/$$t.log; exit 1; }; \
		grep -E '^stat::number_of_executed_units' $(BUILD)/fuzz/$$t.log; \
		echo "== fuzz_$$t: clean, $$(( $$(date +%s) - start )) s"; \
	done

# A repeatable short run: a fresh corpus from the seeds, a fixed seed and a
# fixed number of runs (a time bound only as a backstop).
FUZZ_BRIEF_RUNS ?= 100000
FUZZ_BRIEF_MAX_SECONDS ?= 60
fuzz-brief: $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
		rm -rf $(BUILD)/fuzz/brief/$$t; mkdir -p $(BUILD)/fuzz/brief/$$t; \
		echo "== fuzz_$$t: $(FUZZ_BRIEF_RUNS) runs, -seed=$(FUZZ_SEED)"; \
		$(BUILD)/fuzz_$$t -seed=$(FUZZ_SEED) -runs=$(FUZZ_BRIEF_RUNS) \
			-max_total_time=$(FUZZ_BRIEF_MAX_SECONDS) -print_final_stats=1 \
			-artifact_prefix=$(BUILD)/fuzz/brief/$$t- $(BUILD)/fuzz/brief/$$t $(FUZZ_SEEDS) \
			2>$(BUILD)/fuzz/brief/$$t.log || { tail -n 40 $(BUILD)/fuzz/brief/$$t.log; exit 1; }; \
		grep -E '^stat::number_of_executed_units' $(BUILD)/fuzz/brief/$$t.log; \
	done

# ---- test only: the allocator's positive controls ----------------------
# (owned by the allocator's tests; see docs/allocator.md, "Tests")
# Each planted bug is a test-only source, test/broken/broken_<kind>.c, that
# replaces one library function through the linker (-Wl,--wrap=<function>:
# calls to it from the other objects go to __wrap_<function>, which may
# call the real one as __real_<function>); the production sources carry no
# trace of them. test_alloc_broken_<kind> links one with test/unit/
# test_alloc.c compiled with -DTA_EXPECT_BROKEN: that binary passes only if
# the property checker catches the bug. Never linked into what is installed.
BROKEN_WRAP_fence = ta_lead_begin
BROKEN_WRAP_lease = ta_lead_begin
BROKEN_WRAP_mixlease = ta_lead_begin
BROKEN_WRAP_monotonic = ta_grant
BROKEN_WRAP_release = ta_established
BROKEN_WRAP_ahead = ta_grant ta_room
BROKEN_WRAP_clock = lead_clock_observe lead_clock_view lead_clock_member_supported
BROKEN_WRAP_startfloor = ta_set_start_floor
BROKEN_WRAP_floor = ta_raise_floor
BROKEN_WRAP_peergate = peer_gate_judge
BROKEN_WRAP_membercert = node_is_member
comma := ,
BROKEN_WRAP_FLAGS = $(addprefix -Wl$(comma)--wrap=,$(BROKEN_WRAP_$*))
ALLOC_BROKEN_KINDS = fence monotonic lease ahead
# (release: only the simulation can catch it, it takes a planned handover)
ALLOC_BROKEN_TESTS = $(patsubst %,$(BUILD)/test/test_alloc_broken_%,$(ALLOC_BROKEN_KINDS))
UNIT_TESTS += $(ALLOC_BROKEN_TESTS)
# `unit: $(UNIT_TESTS)` above was expanded before this +=, so name them too.
unit: $(ALLOC_BROKEN_TESTS)

$(BUILD)/test/broken/test_alloc.o: test/unit/test_alloc.c
	@mkdir -p $(dir $@)
	$(SC_CC) $(SC_CFLAGS) -DTA_EXPECT_BROKEN -c -o $@ $<

$(ALLOC_BROKEN_TESTS): $(BUILD)/test/test_alloc_broken_%: $(BUILD)/test/broken/test_alloc.o \
		$(BUILD)/test/broken/broken_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(SC_CC) $(BROKEN_WRAP_FLAGS) -o $@ $^ -lcmocka

# A whole tsoracled with one planted allocator bug, for the nemesis runs'
# positive controls (scripts/test.sh): the checker must catch it through
# the real parts (monotonic: with no fault; fence: under clock-kill, with
# PostgreSQL's tsoracle.refuse_backward_grants off). Never installed.
TSORACLED_BROKEN = $(BUILD)/control/tsoracled-broken-monotonic $(BUILD)/control/tsoracled-broken-fence \
	$(BUILD)/control/tsoracled-broken-clock $(BUILD)/control/tsoracled-broken-startfloor \
	$(BUILD)/control/tsoracled-broken-floor $(BUILD)/control/tsoracled-broken-peergate \
	$(BUILD)/control/tsoracled-broken-membercert
$(TSORACLED_BROKEN): $(BUILD)/control/tsoracled-broken-%: $(SIDECAR_OBJS) $(BUILD)/test/broken/broken_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(SC_CC) $(BROKEN_WRAP_FLAGS) -o $@ $^ $(SC_LIBS)
unit: $(TSORACLED_BROKEN)

# tsoracled-broken-quorum, t/112_membership.pl's positive control
# (scripts/test.sh): member remove does not refuse a removal that would
# leave no quorum of the members that are up. The refusal is inside
# member_remove, so not a --wrap: the build copies sidecar/member.c with
# that refusal patched out (the pattern must match, or the build stops) and
# links the daemon with it in place of member.o. Never installed.
$(BUILD)/control/member_broken_quorum.c: sidecar/member.c
	@mkdir -p $(dir $@)
	perl -0pe 's/if \(!force\) \{/if (!force && BROKEN_QUORUM_REFUSAL) {/ or die "planted bug: the quorum refusal of member_remove was not found\n"' $< > $@ || \
		{ rm -f $@; exit 1; }

$(BUILD)/control/member_broken_quorum.o: $(BUILD)/control/member_broken_quorum.c
	$(SC_CC) $(SC_CFLAGS) -DBROKEN_QUORUM_REFUSAL=0 -c -o $@ $<

$(BUILD)/control/tsoracled-broken-quorum: $(filter-out $(BUILD)/sidecar/member.o,$(SIDECAR_OBJS)) \
		$(BUILD)/control/member_broken_quorum.o $(LIB)
	$(SC_CC) -o $@ $^ $(SC_LIBS)
unit: $(BUILD)/control/tsoracled-broken-quorum

# The process-level lease control (scripts/nemesis.sh partition-lease):
# test/broken/long_lease.c gives every member a lease longer than the
# election timeout, which tsoracled's configuration refuses, so that the
# new-leader wait is the only thing between a cut-off leader still within
# its lease and its successor. tsoracled-long-lease (the real wait) must
# pass that nemesis; tsoracled-broken-lease adds broken_lease.c (a new
# leader skips the wait, the same planted bug as test_alloc_broken_lease and
# sim_broken_lease) and must fail it. Never installed.
$(BUILD)/control/tsoracled-long-lease: $(SIDECAR_OBJS) $(BUILD)/test/broken/long_lease.o $(LIB)
	@mkdir -p $(dir $@)
	$(SC_CC) -Wl,--wrap=ta_init -o $@ $^ $(SC_LIBS)
$(BUILD)/control/tsoracled-broken-lease: $(SIDECAR_OBJS) $(BUILD)/test/broken/long_lease.o \
		$(BUILD)/test/broken/broken_lease.o $(LIB)
	@mkdir -p $(dir $@)
	$(SC_CC) -Wl,--wrap=ta_init -Wl,--wrap=ta_lead_begin -o $@ $^ $(SC_LIBS)
unit: $(BUILD)/control/tsoracled-long-lease $(BUILD)/control/tsoracled-broken-lease

# ---- test only: a writer of raw Raft commands (test/fsm/raft_append.c) ---
# For t/120_fsm_refusals.pl: appends commands tsoracled would never propose
# to a real data directory, through libraft's uv I/O. Never installed.
$(BUILD)/test-bin/tsoracle-raft-append: $(BUILD)/test/fsm/raft_append.o
	@mkdir -p $(dir $@)
	$(SC_CC) -o $@ $^ $(SC_LIBS)
unit: $(BUILD)/test-bin/tsoracle-raft-append

# ---- benchmarks (test/bench/, scripts/bench.sh, docs/performance.md) ----
# tsoracle-bench: a load generator and latency meter for tsoracled, linked
# with the common codec. `make bench` measures this machine (about 10 min;
# BENCH_QUICK=1 under 1 min) and rewrites the generated part of
# docs/performance.md. Needs root (installs the extension, runs PostgreSQL
# as the postgres user).
$(BUILD)/bench/bench.o: test/bench/bench.c
	@mkdir -p $(dir $@)
	$(SC_CC) $(SC_CFLAGS) -c -o $@ $<

$(BUILD)/tsoracle-bench: $(BUILD)/bench/bench.o $(BUILD)/common/proto.o $(BUILD)/common/dial.o \
		$(BUILD)/common/tls.o $(BUILD)/common/addr.o
	$(SC_CC) -o $@ $^ -lpthread -lssl -lcrypto

all: $(BUILD)/tsoracle-bench

bench: deps
	@$(MAKE) --no-print-directory all
	@scripts/bench.sh

# ---- test only: the deterministic simulation (test/sim/, docs/simulation.md)
# build/test/sim: libraft's fixture cluster with libtsoracle on every node
# (the FSM, the allocator and the leadership driver tsoracled runs), under
# thousands of seeded fault schedules; TSO_SIM_SEED, TSO_SIM_SCHEDULES and
# TSO_SIM_STEPS scale it. build/test/sim_broken_*: the same, linked with one
# planted bug (test/broken/, the positive controls' rule above) and its main
# compiled to expect the violation that bug causes: they pass only if the
# simulation catches it.
SIM_LIB_OBJS = $(patsubst test/sim/%.c,$(BUILD)/sim/%.o,$(filter-out test/sim/sim.c,$(wildcard test/sim/*.c)))
SIM_BROKEN_KINDS = lease fence release clock floor mixlease
SIM_EXPECT_lease = SIM_P_REALTIME
SIM_EXPECT_fence = SIM_P_DUPLICATE
SIM_EXPECT_release = SIM_P_REALTIME
SIM_EXPECT_clock = SIM_P_CLOCK
SIM_EXPECT_floor = SIM_P_FLOOR
SIM_EXPECT_mixlease = SIM_P_REALTIME
# Planted in the driver's object rather than wrapped (below).
SIM_RENAMED_KINDS = removed
SIM_EXPECT_removed = SIM_P_REMOVED
SIM_TESTS = $(BUILD)/test/sim $(patsubst %,$(BUILD)/test/sim_broken_%,$(SIM_BROKEN_KINDS))
UNIT_TESTS += $(SIM_TESTS)
# `unit: $(UNIT_TESTS)` above was expanded before this +=, so name them too.
unit: $(SIM_TESTS)

$(BUILD)/sim/%.o: test/sim/%.c
	@mkdir -p $(dir $@)
	$(SC_CC) $(SC_CFLAGS) -c -o $@ $<

# Static patterns: their prerequisites do not depend on the stem, so an open
# pattern would also "make" the included .d files (via make's %: %.o).
$(patsubst %,$(BUILD)/sim/sim_expect_%.o,$(SIM_BROKEN_KINDS) $(SIM_RENAMED_KINDS)): $(BUILD)/sim/sim_expect_%.o: test/sim/sim.c
	@mkdir -p $(dir $@)
	$(SC_CC) $(SC_CFLAGS) -DTSO_SIM_EXPECT_VIOLATION=$(SIM_EXPECT_$*) -c -o $@ $<

$(BUILD)/test/sim: $(BUILD)/sim/sim.o $(SIM_LIB_OBJS) $(LIB)
	@mkdir -p $(dir $@)
	$(SC_CC) -o $@ $^ $(SC_LIBS)

$(filter-out $(BUILD)/test/sim,$(SIM_TESTS)): $(BUILD)/test/sim_broken_%: $(BUILD)/sim/sim_expect_%.o \
		$(SIM_LIB_OBJS) $(BUILD)/test/broken/broken_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(SC_CC) $(BROKEN_WRAP_FLAGS) -o $@ $^ $(SC_LIBS)

# sim_broken_removed (docs/simulation.md, "Membership"): a leader removed
# from the configuration keeps serving from its lease. Not a --wrap: the
# simulation itself and libraft's fixture read raft_state too, and must read
# the truth. The leadership driver's object has its calls to raft_state
# renamed (objcopy) to the planted bug's, and comes before the library, so
# the library's own lead.o is not linked.
SIM_RENAMED_TESTS = $(patsubst %,$(BUILD)/test/sim_broken_%,$(SIM_RENAMED_KINDS))
UNIT_TESTS += $(SIM_RENAMED_TESTS)
unit: $(SIM_RENAMED_TESTS)

$(BUILD)/sim/lead_removed.o: $(BUILD)/sidecar/lead.o
	objcopy --redefine-sym raft_state=broken_removed_raft_state $< $@

$(SIM_RENAMED_TESTS): $(BUILD)/test/sim_broken_%: $(BUILD)/sim/sim_expect_%.o $(SIM_LIB_OBJS) \
		$(BUILD)/sim/lead_%.o $(BUILD)/test/broken/broken_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(SC_CC) -o $@ $^ $(SC_LIBS)

# ---- test only: positive controls of the libraft patches ------------------
# test_raft_prevote, test_raft_snapshot_leak and test_raft_change_index
# linked with a libraft built without the patch each one tests (scripts/deps.sh, TSO_RAFT_OMIT_PATCHES:
# a directory of its own in the cache): each must fail there, or it proves
# nothing about its patch. scripts/test.sh runs them (suite "positive
# controls: libraft patches"); never installed.
RAFT_CONTROL_OMIT = raft-0.22.1-prevote-term.patch raft-0.22.1-snapshot-busy-leak.patch \
	raft-0.22.1-change-index.patch
RAFT_CONTROL_TESTS = build/control/test_raft_prevote build/control/test_raft_snapshot_leak \
	build/control/test_raft_change_index
.PHONY: raft-controls $(RAFT_CONTROL_TESTS)
raft-controls:
	@TSO_RAFT_OMIT_PATCHES='$(RAFT_CONTROL_OMIT)' scripts/deps.sh --no-apt
	@$(MAKE) --no-print-directory $(RAFT_CONTROL_TESTS) \
		RAFT_CONTROL_PREFIX=$$(TSO_RAFT_OMIT_PATCHES='$(RAFT_CONTROL_OMIT)' scripts/deps.sh --raft-prefix)

$(RAFT_CONTROL_TESTS): build/control/%: test/unit/%.c
	@test -n "$(RAFT_CONTROL_PREFIX)" || { echo "make raft-controls builds these"; exit 2; }
	@mkdir -p $(dir $@)
	$(SC_CC) -I$(RAFT_CONTROL_PREFIX)/include $(SC_CFLAGS) -o $@ $< $(RAFT_CONTROL_PREFIX)/lib/libraft.a \
		-luv -llz4 -lcmocka
