# Device tests: cmocka programs that link the device core and the sim board (explicit
# rules: the generic rule in tests/module.mk links only the protocol libraries), the
# power-cut replays, and the `ternd sim` scenario scripts.
DEVICE_UNIT_TESTS := test_sim_flash test_agent test_powercut
UNIT_TESTS += $(DEVICE_UNIT_TESTS)
DEVICE_TEST_HELPERS := $(BUILD)/obj/tests/device/relbuild.o $(BUILD)/obj/tests/device/simtest.o

$(DEVICE_UNIT_TESTS:%=$(BUILD)/tests/%): $(BUILD)/tests/%: $(BUILD)/obj/tests/device/%.o \
		$(DEVICE_TEST_HELPERS) $(SIM_LIB) $(POSIX_LIB) $(DEVICE_LIB) $(PROTO_SIGN_LIB) $(PROTO_LIB)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) $< $(DEVICE_TEST_HELPERS) -o $@ $(SIM_LIB) $(POSIX_LIB) $(DEVICE_LIB) $(TEST_LIBS)

CHECK_BUILDS += $(BUILD)/ternd
SCRIPT_TESTS += tests/device/scenarios.sh tests/device/core-purity.sh
