# slate: plain Makefile. `make` builds build/slate-bundle, build/slate and
# build/slate-monitor (the per-app monitor, which slate runs from its own
# directory);
# `make test` installs what is missing (make deps), builds and runs every
# test; `make check-asan` runs every test against an ASan + UBSan build.

PREFIX ?= /usr/local
DESTDIR ?=
BUILD ?= build
CC ?= cc
PKGS := libarchive libzstd libcrypto jansson libcap libseccomp

# Debian packages the build, the tests, the demo and the benchmarks need.
DEPS_BUILD := build-essential pkg-config libarchive-dev libzstd-dev libssl-dev libjansson-dev \
	libcap-dev libseccomp-dev libcmocka-dev
DEPS_RUNTIME := php8.2-fpm php8.2-cli php8.2-common php8.2-opcache php8.2-mysql \
	php8.2-mbstring php8.2-intl php8.2-gd php8.2-zip php8.2-curl php8.2-xml \
	php8.2-bcmath nginx tzdata ca-certificates libc-bin
DEPS_TEST := zstd tar openssl coreutils python3 curl binutils iproute2 valgrind procps gcc-multilib
DEPS_BENCH := hyperfine wrk crun bubblewrap
DEPS_FUZZ := clang libclang-rt-14-dev
DEPS := $(DEPS_BUILD) $(DEPS_RUNTIME) $(DEPS_TEST) $(DEPS_BENCH)

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
# slate-monitor, one per running app, is linked statically with only what
# it runs (sections nobody calls are dropped; libarchive is not linked, so
# the link fails if a monitor path ever needs it, and of libcrypto only the
# SHA-256 block functions the tamper alarm calls are pulled in): its
# resident memory is its own few pages, not the shared libraries'
# relocations. MONITOR_LINK=dynamic for sanitizer builds.
MONITOR_LINK ?= static
MONITOR_PKGS := jansson libcap libseccomp libcrypto
ifeq ($(MONITOR_LINK),static)
MONITOR_LDFLAGS := -static-pie -Wl,--gc-sections
MONITOR_LIBS := $(shell pkg-config --static --libs $(MONITOR_PKGS) 2>/dev/null)
else
MONITOR_LDFLAGS := -pie -Wl,--gc-sections
MONITOR_LIBS := $(shell pkg-config --libs $(MONITOR_PKGS) 2>/dev/null)
endif

WARN := -Wall -Wextra -Wshadow -Wmissing-prototypes -Wformat=2 -Wno-format-nonliteral -Werror
HARDEN := -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fPIE
OPT ?= -O2 -g
CFLAGS_ALL := -std=c11 -D_GNU_SOURCE $(OPT) $(WARN) $(HARDEN) -ffunction-sections -fdata-sections -Iinclude \
	$(PKG_CFLAGS) $(EXTRA_CFLAGS)
LDFLAGS_ALL := -pie -Wl,-z,relro,-z,now -pthread $(EXTRA_LDFLAGS)

LIB_SRC := $(wildcard lib/*.c)
BUNDLER_SRC := $(wildcard bundler/*.c)
MONITOR_MAIN := runtime/monitor_main.c
RUNTIME_SRC := $(filter-out $(MONITOR_MAIN),$(wildcard runtime/*.c))
RUNTIME_ASM := $(wildcard runtime/*.S)
UNIT_SRC := $(wildcard tests/unit/test_*.c)
# Shared helpers of the unit tests (tmp dirs, files), if any.
UNIT_HELPERS := $(wildcard tests/unit/testutil.c)

LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/%.o)
BUNDLER_OBJ := $(BUNDLER_SRC:%.c=$(BUILD)/%.o)
RUNTIME_OBJ := $(RUNTIME_SRC:%.c=$(BUILD)/%.o) $(RUNTIME_ASM:%.S=$(BUILD)/%.o)
# Unit tests link the bundler's objects (but not its main) too.
BUNDLER_LIB_OBJ := $(filter-out $(BUILD)/bundler/main.o $(BUILD)/bundler/cmd_%.o,$(BUNDLER_OBJ))
RUNTIME_LIB_OBJ := $(filter-out $(BUILD)/runtime/main.o $(BUILD)/runtime/cmd_%.o,$(RUNTIME_OBJ))
UNIT_BIN := $(UNIT_SRC:tests/unit/%.c=$(BUILD)/tests/%)
# Fuzz harnesses (fuzz/fuzz_NAME.c): linked with libFuzzer by `make fuzz`,
# and with a replay driver into test_fuzz_NAME, which `make test` runs over
# each harness's corpus and regression inputs.
FUZZ_NAMES := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_COMMON := fuzz/util.c fuzz/bundle_common.c
FUZZ_REPLAY_BIN := $(FUZZ_NAMES:%=$(BUILD)/tests/test_fuzz_%)
FUZZ_BIN := $(FUZZ_NAMES:%=$(BUILD)/fuzz/fuzz_%)
FUZZ_SECONDS ?= 60

.DEFAULT_GOAL := all
include tests/probe/Makefile.inc

.PHONY: all deps test unit integration check-asan valgrind install clean format-check demo bench fuzz fuzz-bins

all: $(BUILD)/slate-bundle $(BUILD)/slate $(BUILD)/slate-monitor

# Objects follow the flags: they depend on this Makefile too.
$(BUILD)/%.o: %.c Makefile
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -MMD -MP -c -o $@ $<

# Data embedded with .incbin (the default seccomp profile).
$(BUILD)/%.o: %.S
	@mkdir -p $(dir $@)
	$(CC) -Iinclude -MMD -MP -c -o $@ $<

# -MMD does not see .incbin.
$(BUILD)/runtime/seccomp_profile.o: runtime/seccomp-default.json

$(BUILD)/libslate.a: $(LIB_OBJ)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BUILD)/slate-bundle: $(BUNDLER_OBJ) $(BUILD)/libslate.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(BUILD)/slate: $(RUNTIME_OBJ) $(BUILD)/libslate.a
	$(CC) $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(BUILD)/slate-monitor: $(BUILD)/runtime/monitor_main.o $(RUNTIME_LIB_OBJ) $(BUILD)/libslate.a
	$(CC) $(MONITOR_LDFLAGS) -Wl,-z,relro,-z,now -pthread $(EXTRA_LDFLAGS) -o $@ $^ $(MONITOR_LIBS)

$(BUILD)/tests/%: tests/unit/%.c $(UNIT_HELPERS) $(BUNDLER_LIB_OBJ) $(RUNTIME_LIB_OBJ) $(BUILD)/libslate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Ibundler -Iruntime -Ilib -Itests/unit $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS) -lcmocka

$(BUILD)/tests/test_fuzz_%: fuzz/fuzz_%.c fuzz/driver.c $(FUZZ_COMMON) $(RUNTIME_LIB_OBJ) $(BUILD)/libslate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iruntime -Ifuzz -DFUZZ_NAME='"$*"' $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

$(BUILD)/fuzz/fuzz_%: fuzz/fuzz_%.c $(FUZZ_COMMON) $(RUNTIME_LIB_OBJ) $(BUILD)/libslate.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_ALL) -Iruntime -Ifuzz -fsanitize=fuzzer $(LDFLAGS_ALL) -o $@ $^ $(PKG_LIBS)

fuzz-bins: $(FUZZ_BIN)

# Install the Debian packages that are missing (as root, with apt-get).
deps:
	@missing=""; for p in $(DEPS); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'install ok installed' || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
		echo "make deps: installing$$missing"; \
		if [ "$$(id -u)" != 0 ]; then echo "make deps: run as root to install:$$missing" >&2; exit 1; fi; \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

test: deps
	@$(MAKE) --no-print-directory all unit-bins probes
	@tests/run.sh

unit-bins: $(UNIT_BIN) $(FUZZ_REPLAY_BIN)

unit: all unit-bins
	@tests/run.sh unit

integration: all probes
	@tests/run.sh integration

check-asan:
	@$(MAKE) --no-print-directory BUILD=build-asan OPT="-O1 -g -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		EXTRA_LDFLAGS="-fsanitize=address,undefined" HARDEN="-fPIE" MONITOR_LINK=dynamic all unit-bins probes
	@BUILD=build-asan SANITIZERS=1 tests/run.sh

# libFuzzer (clang) with ASan + UBSan: every harness for FUZZ_SECONDS.
fuzz:
	@$(MAKE) --no-print-directory deps DEPS="$(DEPS) $(DEPS_FUZZ)"
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory BUILD=build-fuzz CC=clang \
		OPT="-O1 -g -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" \
		EXTRA_LDFLAGS="-fsanitize=address,undefined" HARDEN="-fPIE" MONITOR_LINK=dynamic fuzz-bins
	@BUILD=build-fuzz FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh

valgrind: all unit-bins
	@VALGRIND=1 tests/run.sh unit

demo: deps
	@$(MAKE) --no-print-directory all
	@examples/demo.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(BUILD)/slate-bundle $(BUILD)/slate $(BUILD)/slate-monitor $(DESTDIR)$(PREFIX)/bin/

format-check:
	@clang-format --dry-run --Werror $(LIB_SRC) $(BUNDLER_SRC) $(RUNTIME_SRC) $(MONITOR_MAIN) include/slate/*.h fuzz/*.c fuzz/*.h

clean:
	rm -rf build build-asan build-fuzz

-include $(LIB_OBJ:.o=.d) $(BUNDLER_OBJ:.o=.d) $(RUNTIME_OBJ:.o=.d) $(BUILD)/runtime/monitor_main.d
