# libternposix: small POSIX helpers shared by the host tool, the boards and the
# transport (never the device core): whole pread/pwrite, key=value text records.
ALL_CFLAGS += -Iposix/include
POSIX_SRC := posix/fdio.c posix/kvtext.c
POSIX_LIB := $(BUILD)/libternposix.a

$(POSIX_LIB): $(POSIX_SRC:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

all: $(POSIX_LIB)
