# tern - plain GNU make. Objects go under $(BUILD) (out of tree).
#   make            build tern (host tool) and the libraries
#   make check      every test, plus the unit tests again under ASan+UBSan
#   make bench      benchmarks, as ratios against baselines measured in the same run
#   make demo       the main job on a simulated fleet
#   make fuzz       run the libFuzzer targets for FUZZ_SECONDS each
#   make format     clang-format every C file
# CRYPTO=mbedtls builds SHA-256, the ES256 signature check and the host's ES256 signing
# on mbedtls instead of OpenSSL's libcrypto.

BUILD ?= build
CC ?= cc
CRYPTO ?= libcrypto
SANITIZE ?=
PREFIX ?= /usr/local
DESTDIR ?=

ifeq ($(origin CC),default)
CC := gcc
endif

PKGS := libcbor
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

# -Wconversion and -Wshadow are on for all code, tests included.
WARN := -Wall -Wextra -Werror -Wshadow -Wconversion -Wstrict-prototypes -Wmissing-prototypes
CFLAGS ?= -O2 -g
ALL_CFLAGS := -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE $(WARN) $(CFLAGS) \
	-Iprotocol/include -Idevice/include -MMD -MP $(PKG_CFLAGS)
ALL_LDFLAGS := $(LDFLAGS)

ifeq ($(SANITIZE),1)
ALL_CFLAGS += -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
ALL_LDFLAGS += -fsanitize=address,undefined
endif

ifeq ($(CRYPTO),mbedtls)
SHA_SRC := protocol/sha256_mbedtls.c protocol/es256_mbedtls.c
SIGN_BACKEND_SRC := protocol/es256_sign_use_mbedtls.c
CRYPTO_LIBS := -lmbedcrypto
else
SHA_SRC := protocol/sha256_libcrypto.c protocol/es256_libcrypto.c
SIGN_BACKEND_SRC := protocol/es256_sign_libcrypto.c
CRYPTO_LIBS := -lmbedcrypto -lcrypto
endif

.PHONY: all deps check check-unit check-asan bench demo fuzz format size clean install
all: deps

# Every module adds its own targets.
include protocol/module.mk
include posix/module.mk
include device/module.mk
include transport/module.mk
include boards/sim/module.mk
include boards/linux/module.mk
include host/module.mk
include tests/module.mk

$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c $< -o $@

# make install [PREFIX=/usr/local] [DESTDIR=]: tern, ternd, the systemd unit, udev rules
# (any *.rules under boards/, host/, scripts/ or scripts/udev/), the USB gadget script
# (libexec/tern/usb-gadget-setup), the docs and the examples.
BINDIR ?= $(PREFIX)/bin
LIBEXECDIR ?= $(PREFIX)/libexec/tern
UNITDIR ?= $(PREFIX)/lib/systemd/system
UDEVDIR ?= $(PREFIX)/lib/udev/rules.d
DOCDIR ?= $(PREFIX)/share/doc/tern
UDEV_RULES := $(wildcard boards/*/*.rules host/*.rules scripts/*.rules scripts/udev/*.rules)

install: all
	install -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(UNITDIR) \
		$(DESTDIR)$(DOCDIR)/examples
	install -m 755 $(BUILD)/tern $(BUILD)/ternd $(DESTDIR)$(BINDIR)/
	install -m 755 boards/linux/usb-gadget-setup $(DESTDIR)$(LIBEXECDIR)/
	sed -e 's|@BINDIR@|$(BINDIR)|g' -e 's|@DOCDIR@|$(DOCDIR)|g' \
		-e 's|@LIBEXECDIR@|$(LIBEXECDIR)|g' boards/linux/ternd.service \
		>$(DESTDIR)$(UNITDIR)/ternd.service
	chmod 644 $(DESTDIR)$(UNITDIR)/ternd.service
	$(if $(UDEV_RULES),install -d $(DESTDIR)$(UDEVDIR) && install -m 644 $(UDEV_RULES) $(DESTDIR)$(UDEVDIR)/)
	install -m 644 README.md docs/*.md $(DESTDIR)$(DOCDIR)/
	cp -R boards/linux/examples/files-uboot boards/linux/examples/files-grub $(DESTDIR)$(DOCDIR)/examples/

# Installs missing Debian packages (scripts/install-deps.sh); quick when all are there.
deps:
	@scripts/install-deps.sh -q

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf build

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)

# Benchmarks: figures and ratios, never pass/fail. `make bench BENCH=release` runs one.
bench: all
	BUILD=$(abspath $(BUILD)) /usr/bin/python3 scripts/bench.py $(BENCH)

demo: all
	BUILD=$(BUILD) scripts/demo.sh
