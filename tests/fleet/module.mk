# The fleet simulator end to end: ternd fleet + tern publish/deploy/watch/devices against
# a real mosquitto (tests/lib/broker.sh).
SCRIPT_TESTS += tests/fleet/test_fleet.sh

# The raw fan-out baseline of `make bench BENCH=fleet` (plain paho subscribers).
$(BUILD)/tools/fanout: tools/fanout.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@ -lpaho-mqtt3as -lpthread

all: $(BUILD)/tools/fanout
