# MQTT: tern publish, deploy, watch and devices against a real mosquitto, and the broker
# ACL template over TLS. The scripts start their own brokers (tests/lib/broker.sh).
SCRIPT_TESTS += tests/mqtt/test_mqtt.sh tests/mqtt/test_acl_tls.sh tests/mqtt/test_revert.sh

# What a device does with a desired state, as a program the scripts can call.
MQTT_TEST_TOOLS := $(BUILD)/tests/mqtt/desired_check
CHECK_BUILDS += $(MQTT_TEST_TOOLS)

$(BUILD)/tests/mqtt/desired_check: $(BUILD)/obj/tests/mqtt/desired_check.o $(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $< -o $@ $(PROTO_LIB) $(PROTO_LIBS)
