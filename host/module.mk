# tern: the operator's host tool.
HOST_SRC := host/main.c host/host_util.c host/keys.c host/chunks.c host/release_file.c \
	host/cmd_release.c
TERN_BIN := $(BUILD)/tern

$(TERN_BIN): $(HOST_SRC:%.c=$(BUILD)/obj/%.o) $(PROTO_SIGN_LIB) $(PROTO_LIB)
	$(CC) $(ALL_LDFLAGS) $(filter %.o,$^) -o $@ $(PROTO_SIGN_LIB) $(PROTO_LIB) $(PROTO_LIBS) -lpthread

all: $(TERN_BIN)
