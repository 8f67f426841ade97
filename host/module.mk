# tern: the operator's host tool.
HOST_SRC := host/main.c host/host_util.c host/keys.c host/chunks.c host/release_file.c \
	host/cmd_release.c host/broker.c host/mqtt.c host/db.c host/cmd_publish.c \
	host/cmd_deploy.c host/cmd_fleet.c
# MQTT (paho's TLS-capable async client; no pkg-config file) and SQLite.
HOST_LIBS := -lpaho-mqtt3as $(shell pkg-config --libs sqlite3 2>/dev/null)
TERN_BIN := $(BUILD)/tern

$(TERN_BIN): $(HOST_SRC:%.c=$(BUILD)/obj/%.o) $(PROTO_SIGN_LIB) $(PROTO_LIB)
	$(CC) $(ALL_LDFLAGS) $(filter %.o,$^) -o $@ $(PROTO_SIGN_LIB) $(PROTO_LIB) $(PROTO_LIBS) $(HOST_LIBS) -lpthread

all: $(TERN_BIN)
