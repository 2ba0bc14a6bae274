# The piggyback example (examples/kv/, docs/embedding.md): kvd, a replicated
# key-value service whose libraft log also carries tsoracle's commands,
# linked with libtsoracle like any outside service would (one header, one
# archive); kvload, its clients and checks (the history checker's check).
#
#   make examples        build build/examples/kvd and build/examples/kvload
#   make check-examples  run three kvd replicas as real processes under load,
#                        with kill -9 of the leader, a restart and a
#                        snapshot install (examples/kv/check.sh)
EXAMPLES = $(BUILD)/examples/kvd $(BUILD)/examples/kvload

$(BUILD)/examples/%.o: examples/kv/%.c
	@mkdir -p $(dir $@)
	$(SC_CC) $(SC_CFLAGS) -Itest/checker -c -o $@ $<

$(BUILD)/examples/kvd: $(BUILD)/examples/kvd.o $(LIB) $(DEPS_PREFIX)/lib/libraft.a
	$(SC_CC) -o $@ $(BUILD)/examples/kvd.o $(LIB) $(DEPS_PREFIX)/lib/libraft.a -luv -llz4

$(BUILD)/examples/kvload: $(BUILD)/examples/kvload.o $(BUILD)/test/checker/history.o $(BUILD)/common/addr.o
	$(SC_CC) -o $@ $^ -lpthread

# Positive controls (never installed): kvd with a planted bug that
# check.sh's CONTROL mode runs, expecting kvload to fail. monotonic: the
# library's allocator ignores the last value handed out (test/broken/);
# write: the write path corrupts one value in 100 (examples/kv/).
EXAMPLE_CONTROLS = $(BUILD)/examples/kvd-broken-monotonic $(BUILD)/examples/kvd-broken-write

$(BUILD)/examples/kvd-broken-monotonic: $(BUILD)/examples/kvd.o $(BUILD)/test/broken/broken_monotonic.o $(LIB) \
		$(DEPS_PREFIX)/lib/libraft.a
	$(SC_CC) -Wl,--wrap=ta_grant -o $@ $(filter %.o,$^) $(LIB) $(DEPS_PREFIX)/lib/libraft.a -luv -llz4

$(BUILD)/examples/kvd-broken-write: $(BUILD)/examples/kvd.o $(BUILD)/examples/broken_write.o $(LIB) \
		$(DEPS_PREFIX)/lib/libraft.a
	$(SC_CC) -Wl,--wrap=raft_apply -o $@ $(filter %.o,$^) $(LIB) $(DEPS_PREFIX)/lib/libraft.a -luv -llz4

.PHONY: examples check-examples
examples: $(EXAMPLES)
all: examples $(EXAMPLE_CONTROLS)

check-examples: deps
	@$(MAKE) --no-print-directory examples $(EXAMPLE_CONTROLS)
	@examples/kv/check.sh $(BUILD)
	@CONTROL=monotonic examples/kv/check.sh $(BUILD)
	@CONTROL=write examples/kv/check.sh $(BUILD)
