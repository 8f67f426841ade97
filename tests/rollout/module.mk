# Rollouts: the pure logic as cmocka tests, the controller against fake devices (and the
# fleet simulator once it exists) through a real mosquitto.
UNIT_TESTS += test_rollout_plan
SCRIPT_TESTS += tests/rollout/test_rollout.sh tests/rollout/test_fleet_rollout.sh

$(BUILD)/obj/tests/rollout/test_rollout_plan.o: ALL_CFLAGS += -Ihost
$(BUILD)/tests/test_rollout_plan: $(BUILD)/obj/tests/rollout/test_rollout_plan.o \
		$(BUILD)/obj/host/rollout_plan.o $(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $(filter %.o,$^) -o $@ $(TEST_LIBS)
