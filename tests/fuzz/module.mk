# libFuzzer targets (clang -fsanitize=fuzzer,address,undefined), built under build/fuzz
# with the protocol library instrumented for coverage too.
#   make fuzz [FUZZ_SECONDS=60]   run each target over its corpus, keeping new inputs
# `make check` builds them and replays the committed corpus and seeds once
# (tests/fuzz/replay.sh). Seeds (tests/fuzz/seeds/<target>/, written by make_seeds.py)
# stay as they are; what the fuzzer finds goes to tests/fuzz/corpus/<target>/.
FUZZ_TARGETS := fuzz_release fuzz_bootenv
FUZZ_SECONDS ?= 60
FUZZ_BUILD := build/fuzz
FUZZ_BINS := $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)

# In the sub-make that builds the fuzzers, everything gets coverage instrumentation.
ifeq ($(FUZZ),1)
ALL_CFLAGS += -fsanitize=fuzzer-no-link
endif

# The Linux board's readers (environments, config files) link its library too.
$(BUILD)/fuzz_bootenv: $(BUILD)/obj/tests/fuzz/fuzz_bootenv.o $(LINUX_LIB) $(POSIX_LIB) $(DEVICE_LIB) \
		$(PROTO_LIB)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer $< -o $@ $(LINUX_LIB) $(POSIX_LIB) $(DEVICE_LIB) $(PROTO_LIB) \
		$(PROTO_LIBS)

$(BUILD)/fuzz_%: $(BUILD)/obj/tests/fuzz/fuzz_%.o $(PROTO_LIB)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer $< -o $@ $(PROTO_LIB) $(PROTO_LIBS)

.PHONY: fuzz-bins
fuzz-bins: deps
	$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=clang SANITIZE=1 FUZZ=1 $(FUZZ_BINS)

fuzz: fuzz-bins
	@set -e; for t in $(FUZZ_TARGETS); do \
		c=tests/fuzz/corpus/$${t#fuzz_}; s=tests/fuzz/seeds/$${t#fuzz_}; \
		mkdir -p $$c; \
		echo "== $$t for $(FUZZ_SECONDS) s over $$c and $$s"; \
		$(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_SECONDS) -max_len=12288 \
			-artifact_prefix=tests/fuzz/ -print_final_stats=1 $$c $$s; \
	done

CHECK_BUILDS += fuzz-bins
SCRIPT_TESTS += tests/fuzz/replay.sh

# Minimizes each committed corpus: keeps only the inputs that add coverage beyond the
# seeds (libFuzzer -merge=1 into a scratch copy of the seeds, counting edges but not
# hit counts, to stay small), then replaces the corpus.
.PHONY: fuzz-merge
fuzz-merge: fuzz-bins
	@set -e; for t in $(FUZZ_TARGETS); do \
		c=tests/fuzz/corpus/$${t#fuzz_}; s=tests/fuzz/seeds/$${t#fuzz_}; \
		m=$(FUZZ_BUILD)/merge-$${t#fuzz_}; rm -rf $$m $$m.new; mkdir -p $$c $$m.new; \
		cp -r $$s $$m; \
		$(FUZZ_BUILD)/$$t -merge=1 -use_counters=0 $$m $$c 2>$(FUZZ_BUILD)/merge-$${t#fuzz_}.log; \
		for f in $$m/*; do [ -e $$s/$${f##*/} ] || mv $$f $$m.new/; done; \
		echo "$$t: corpus $$(ls $$c | wc -l) -> $$(ls $$m.new | wc -l) inputs"; \
		rm -rf $$c; mv $$m.new $$c; rm -rf $$m; \
	done
