# tern: the operator's host tool.
HOST_SRC := host/main.c host/host_util.c host/keys.c host/chunks.c host/release_file.c \
	host/cmd_release.c host/broker.c host/mqtt.c host/db.c host/cmd_publish.c \
	host/cmd_deploy.c host/cmd_fleet.c host/usb.c host/cmd_usb.c host/deploy.c \
	host/recorder.c host/rollout_plan.c host/rollout_db.c host/rollout_lease.c host/cmd_rollout.c host/cmd_report.c
# MQTT (paho's TLS-capable async client; no pkg-config file), SQLite, and libusb-1.0.
USB_CFLAGS := $(shell pkg-config --cflags libusb-1.0 2>/dev/null)
HOST_LIBS := -lpaho-mqtt3as $(shell pkg-config --libs sqlite3 libusb-1.0 2>/dev/null)
$(BUILD)/obj/host/%.o: ALL_CFLAGS += $(USB_CFLAGS)
TERN_BIN := $(BUILD)/tern

$(TERN_BIN): $(HOST_SRC:%.c=$(BUILD)/obj/%.o) $(POSIX_LIB) $(PROTO_SIGN_LIB) $(PROTO_LIB)
	$(CC) $(ALL_LDFLAGS) $(filter %.o,$^) -o $@ $(POSIX_LIB) $(PROTO_SIGN_LIB) $(PROTO_LIB) $(PROTO_LIBS) $(HOST_LIBS) -lpthread

all: $(TERN_BIN)
