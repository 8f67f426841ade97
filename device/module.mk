# The portable device agent core: no heap, no POSIX, no file-scope state.
DEVICE_SRC := device/agent.c device/bootctl.c device/usbdev.c
DEVICE_LIB := $(BUILD)/libterndevice.a

$(DEVICE_LIB): $(DEVICE_SRC:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

all: $(DEVICE_LIB) $(BUILD)/tools/agent-size

# sizeof(struct tern_agent) and the core's text/data/bss.
$(BUILD)/tools/agent-size: tools/agent_size.c $(DEVICE_LIB) | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) $< -o $@

size: $(BUILD)/tools/agent-size $(DEVICE_LIB)
	@$(BUILD)/tools/agent-size
	@size -t $(DEVICE_SRC:%.c=$(BUILD)/obj/%.o)
