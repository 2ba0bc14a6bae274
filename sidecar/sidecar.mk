# sidecar/sidecar.mk, included by the Makefile: the sidecar tsoracled, the
# operator CLI tsoracle-ctl and libtsoracle (build/libtsoracle.a), built
# with gcc into $(BUILD) (docs/architecture.md, "Where to change what").
# Needs libraft (DEPS_PREFIX, scripts/deps.sh).

SC_CC ?= gcc
SC_CFLAGS = -std=gnu11 -O2 -g -Wall -Wextra -Wshadow -Wconversion \
	-Wno-sign-conversion -Werror=implicit-function-declaration \
	-Iinclude -Icommon -Isidecar -I$(DEPS_PREFIX)/include -MMD -MP
# OpenSSL (Debian's libssl): TLS on the peer transport and the client port (common/tls.h).
# libmicrohttpd (Debian's): the metrics endpoint's HTTP (sidecar/metrics.h).
SC_LIBS = $(DEPS_PREFIX)/lib/libraft.a -luv -llz4 -lssl -lcrypto -lmicrohttpd -lpthread -lm

# libtsoracle (include/tsoracle.h): the allocator, its log commands and the
# leadership driver; its sources stay in sidecar/ beside the daemon's
# (docs/architecture.md, "Where to change what").
LIB_SRCS = sidecar/alloc.c sidecar/fsm.c sidecar/lead.c sidecar/lead_clock.c
LIB_OBJS = $(patsubst %.c,$(BUILD)/%.o,$(LIB_SRCS))
LIB = $(BUILD)/libtsoracle.a

SIDECAR_SRCS = $(filter-out sidecar/ctl.c $(LIB_SRCS),$(wildcard sidecar/*.c)) common/proto.c common/tls.c \
	common/tlsio.c common/addr.c
SIDECAR_OBJS = $(patsubst %.c,$(BUILD)/%.o,$(SIDECAR_SRCS))
CTL_OBJS = $(BUILD)/sidecar/ctl.o $(BUILD)/sidecar/config.o $(BUILD)/sidecar/log.o \
	$(BUILD)/common/dial.o $(BUILD)/common/proto.o $(BUILD)/common/tls.o $(BUILD)/common/addr.o

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(SC_CC) $(SC_CFLAGS) -c -o $@ $<

# Every object that calls err_set depends on common/err.h by name: an
# object built when it was sidecar/err.h (an extern function) would
# otherwise be kept, its .d naming a header that no longer exists.
ERR_USERS = $(wildcard sidecar/*.c common/*.c test/*/*.c)
$(patsubst %.c,$(BUILD)/%.o,$(ERR_USERS)) $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(ERR_USERS)): common/err.h

$(LIB): $(LIB_OBJS)
	rm -f $@
	$(AR) rcs $@ $^

# Relinked when libraft is rebuilt (scripts/deps.sh, e.g. for a new patch).
$(BUILD)/tsoracled: $(SIDECAR_OBJS) $(LIB) $(DEPS_PREFIX)/lib/libraft.a
	$(SC_CC) -o $@ $(SIDECAR_OBJS) $(LIB) $(SC_LIBS)

$(BUILD)/tsoracle-ctl: $(CTL_OBJS) $(LIB)
	$(SC_CC) -o $@ $^ -lssl -lcrypto

.PHONY: sidecar install-sidecar
sidecar: $(BUILD)/tsoracled $(BUILD)/tsoracle-ctl $(LIB)
all: sidecar

# make install installs these too (PREFIX, default /usr/local; DESTDIR).
PREFIX ?= /usr/local
install-sidecar: $(BUILD)/tsoracled $(BUILD)/tsoracle-ctl
	install -d '$(DESTDIR)$(PREFIX)/bin'
	install -m 0755 $(BUILD)/tsoracled $(BUILD)/tsoracle-ctl '$(DESTDIR)$(PREFIX)/bin/'
