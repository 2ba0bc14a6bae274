# tsoracle: the PostgreSQL extension (built with PGXS), the sidecar daemon
# tsoracled, the operator CLI tsoracle-ctl, and the tests.
#
#   make demo        install what is missing, build, start a demo (README)
#   make demo-stop   stop every process the demo started
#   make test        install what is missing, build, run every test suite
#   make             build (needs `make deps` once)
#   make install     the extension (PGXS: PG_CONFIG, DESTDIR) and tsoracled,
#                    tsoracle-ctl (PREFIX, default /usr/local; DESTDIR)
#   make deb         Debian packages into build/deb/
#
# This file is PGXS for the extension; the rest is in sidecar/sidecar.mk
# (daemon, CLI, libtsoracle), test/test.mk (unit, simulation, fuzz,
# controls, bench client) and examples/examples.mk.

# The checkout: the extension is also built out of tree, once per
# PostgreSQL version, in build/pgNN/ext (scripts/common.sh, install_all),
# with EXT_ONLY=1 (only the PGXS part below).
TSO_SRCDIR := $(patsubst %/,%,$(dir $(abspath $(firstword $(MAKEFILE_LIST)))))
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
# libraft, built by scripts/deps.sh into a cache outside the clone
# (TSO_DEPS_DIR, default /var/cache/tsoracle-deps), in a directory named
# after its version, patches and flags (docs/building.md).
DEPS_PREFIX := $(shell $(TSO_SRCDIR)/scripts/deps.sh --raft-prefix)
BUILD := build

# ---- sanitizers: make SANITIZE=1 ... (docs/building.md) -------------------
# Builds libraft (scripts/deps.sh with the flags below: a directory of its
# own in the cache), the daemon, the tools and the C tests with
# AddressSanitizer (with its leak checker) and UndefinedBehaviorSanitizer,
# in build-san/ beside build/; `make test SANITIZE=1` runs the suites with
# them (scripts/test.sh). Any report ends the process with a failure
# status. The extension is not instrumented: it runs inside PostgreSQL,
# which is not.
SANITIZE ?=
ifeq ($(SANITIZE),1)
SAN_FLAGS = -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
export TSO_RAFT_CFLAGS = -O1 -fPIC -g $(SAN_FLAGS)
DEPS_PREFIX := $(shell TSO_RAFT_CFLAGS='$(TSO_RAFT_CFLAGS)' $(TSO_SRCDIR)/scripts/deps.sh --raft-prefix)
BUILD := build-san
# On the compiler's command line (sidecar/sidecar.mk), so that every
# compile and link has it.
SC_CC ?= gcc
override SC_CC += $(SAN_FLAGS)
endif

# ---- the extension (PGXS) ----------------------------------------------
EXTENSION = tsoracle
MODULE_big = tsoracle
OBJS = src/tsoracle.o src/ring.o src/worker.o src/worker_conn.o \
	src/worker_addr.o src/worker_trust.o src/funcs.o src/decode.o src/status.o common/proto.o \
	src/worker_tls.o common/tls.o common/tlsio.o common/addr.o
# Every install and upgrade script (as pgvector does), named relative to
# the checkout so that an out-of-tree build finds them too.
DATA = $(patsubst $(TSO_SRCDIR)/%,%,$(wildcard $(TSO_SRCDIR)/sql/*--*.sql))
# EXT_CONTROL_CPPFLAGS: a control build's library name (scripts/test.sh,
# control_ext: its planted bug is a patch, test/broken/ext_*.patch);
# empty for the extension itself.
PG_CPPFLAGS = -I$(TSO_SRCDIR)/common $(EXT_CONTROL_CPPFLAGS)
# The worker's TLS (src/worker_tls.c, common/tls.c): OpenSSL, the library
# PostgreSQL itself links.
SHLIB_LINK += $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
# pg_regress tests run by scripts/test.sh against a cluster it starts.
REGRESS = $(patsubst sql/%.sql,%,$(filter-out sql/tsoracle--%,$(wildcard sql/*.sql)))

PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(PGXS),)
include $(PGXS)
endif
ifneq ($(CURDIR),$(TSO_SRCDIR))
# Out of tree, PGXS would look for every file through VPATH, and would
# take the checkout's objects (built for another server version) for
# ours: only sources are looked for there. (pg_buildext passes VPATH on
# the command line, hence override.) Only the extension is built there.
override VPATH =
override srcdir = $(TSO_SRCDIR)
EXT_ONLY = 1
vpath %.c $(TSO_SRCDIR)
vpath %.h $(TSO_SRCDIR)
vpath %.control $(TSO_SRCDIR)
vpath %.sql $(TSO_SRCDIR)
# (the objects' directories, which PGXS's rules do not make)
$(shell mkdir -p $(sort $(dir $(OBJS))))
endif
# The protocol codec and the TLS layer are linked into the module as well:
# their tp_*, tls_* and tlsio_* symbols stay private to it, like the
# extension's own (TSO_PRIVATE, src/compat.h); so is the address parser
# (common/addr.c) that tsoracle.sidecar_address shares with tsoracled.
common/proto.o common/tls.o common/tlsio.o common/addr.o: CFLAGS += -fvisibility=hidden
# PGXS tracks no header dependencies (without --enable-depend): every
# object depends on every header of the extension and of common/, so that
# a changed struct (common/proto.h's status, say) never leaves an object
# of the old layout behind (seen: a stale status.o smashing the stack).
$(OBJS): $(wildcard $(TSO_SRCDIR)/src/*.h) $(wildcard $(TSO_SRCDIR)/common/*.h)
.DEFAULT_GOAL := all

ifeq ($(EXT_ONLY),)

# ---- the rest: the sidecar, the tests, the examples, the workflow ------
include sidecar/sidecar.mk
include test/test.mk
include examples/examples.mk

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)


.PHONY: deps unit check-unit build test demo demo-cluster demo-stop bench format deb

# make install: the extension (PGXS, above) and the daemon and ctl.
install: install-sidecar

# PG=17 or PG=18 (make demo, make test; PG="15 18" for make test): those
# PostgreSQL versions are built too.
deps:
	@scripts/deps.sh $(foreach v,$(PG),--pg $(v))

# Everything, after making sure the dependencies are there. Recursive, so
# that PGXS is included once pg_config exists.
build: deps
	@$(MAKE) --no-print-directory all unit

check-unit: unit
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done

test: build
	@SANITIZE=$(SANITIZE) scripts/test.sh

demo: build
	@scripts/demo.sh start

demo-cluster: build
	@scripts/demo.sh cluster

demo-stop:
	@scripts/demo.sh stop

format:
	clang-format -i include/*.h common/*.[ch] sidecar/*.[ch] test/broken/*.[ch] test/unit/*.[ch] test/fuzz/*.[ch] test/fsm/*.[ch] test/bench/*.[ch] test/checker/*.[ch] test/sim/*.[ch] examples/kv/*.[ch]

clean: clean-build
clean-build:
	rm -rf $(BUILD)

# Debian packages (debian/; docs/building.md, "Packages") into build/deb/.
deb: deps
	@scripts/deb.sh

endif # EXT_ONLY
