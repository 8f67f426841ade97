# The agent's transports that boards share: MQTT over paho (tern_mqttdev.h). A board
# links $(TRANSPORT_LIB), $(POSIX_LIB) and $(TRANSPORT_LIBS) and provides the agent and its
# hooks.
ALL_CFLAGS += -Itransport/include
TRANSPORT_SRC := transport/mqttdev.c
TRANSPORT_LIB := $(BUILD)/libterntransport.a
TRANSPORT_LIBS := -lpaho-mqtt3as -lpthread

$(TRANSPORT_LIB): $(TRANSPORT_SRC:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

all: $(TRANSPORT_LIB)
