# libternproto: what host and device agree on byte for byte.
PROTO_SRC := protocol/err.c protocol/cbor.c protocol/cose.c protocol/manifest.c \
	protocol/release.c protocol/topic.c protocol/msg.c protocol/frame.c protocol/crc32.c \
	$(SHA_SRC)
# Signing (host side only) lives in its own library so devices never link it.
PROTO_SIGN_SRC := protocol/sign.c protocol/msg_sign.c protocol/es256_sign_mbedtls.c \
	$(SIGN_BACKEND_SRC)

PROTO_LIB := $(BUILD)/libternproto.a
PROTO_SIGN_LIB := $(BUILD)/libternsign.a
PROTO_LIBS := $(CRYPTO_LIBS) $(PKG_LIBS)

$(PROTO_LIB): $(PROTO_SRC:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

$(PROTO_SIGN_LIB): $(PROTO_SIGN_SRC:%.c=$(BUILD)/obj/%.o)
	@rm -f $@
	ar rcs $@ $^

all: $(PROTO_LIB) $(PROTO_SIGN_LIB)
