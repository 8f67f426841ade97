/* Rollout plan: durations, ratios, waves, member order, gates (pure functions). */
#include "rollout_plan.h"

#include "tern/tern_err.h"
#include "tern/tern_sha256.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rollout_parse_duration(const char *s, uint64_t *secs)
{
	uint64_t v = 0;
	size_t i = 0;
	if (!s)
		return TERN_E_USAGE;
	for (; s[i] >= '0' && s[i] <= '9'; i++) {
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > ROLLOUT_MAX_SECS)
			return TERN_E_USAGE;
	}
	if (i == 0)
		return TERN_E_USAGE;
	uint64_t mult;
	if (!s[i] || (s[i] == 's' && !s[i + 1]))
		mult = 1;
	else if (s[i] == 'm' && !s[i + 1])
		mult = 60;
	else if (s[i] == 'h' && !s[i + 1])
		mult = 3600;
	else if (s[i] == 'd' && !s[i + 1])
		mult = 86400;
	else
		return TERN_E_USAGE;
	if (v * mult > ROLLOUT_MAX_SECS)
		return TERN_E_USAGE;
	*secs = v * mult;
	return 0;
}

const char *rollout_format_duration(uint64_t secs, char *out, size_t size)
{
	if (secs % 3600 == 0 && secs >= 3600)
		snprintf(out, size, "%lluh", (unsigned long long)(secs / 3600));
	else if (secs >= 3600)
		snprintf(out, size, "%lluh%llum", (unsigned long long)(secs / 3600),
			 (unsigned long long)(secs % 3600 / 60));
	else if (secs % 60 == 0 && secs >= 60)
		snprintf(out, size, "%llum", (unsigned long long)(secs / 60));
	else if (secs >= 60)
		snprintf(out, size, "%llum%02llus", (unsigned long long)(secs / 60),
			 (unsigned long long)(secs % 60));
	else
		snprintf(out, size, "%llus", (unsigned long long)secs);
	return out;
}

/* "12.5" (digits, optional dot and up to 4 decimals) as ten-thousandths of a unit. */
static int parse_decimal4(const char *s, size_t len, uint64_t *out)
{
	uint64_t v = 0;
	size_t i = 0, decimals = 0;
	bool dot = false;
	for (; i < len; i++) {
		if (s[i] == '.' && !dot && i > 0) {
			dot = true;
			continue;
		}
		if (s[i] < '0' || s[i] > '9' || (dot && ++decimals > 4))
			return TERN_E_USAGE;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > 100000000u)
			return TERN_E_USAGE;
	}
	if (len == 0 || s[len - 1] == '.')
		return TERN_E_USAGE;
	for (; decimals < 4; decimals++)
		v *= 10;
	*out = v;
	return 0;
}

int rollout_parse_ratio(const char *s, uint32_t *ppm)
{
	size_t len = s ? strlen(s) : 0;
	uint64_t v;
	if (len < 2 || s[len - 1] != '%' || parse_decimal4(s, len - 1, &v))
		return TERN_E_USAGE;
	/* v is in 1/10000 of a percent = 1/1000000 of the whole: ppm already. */
	if (v > ROLLOUT_PPM)
		return TERN_E_USAGE;
	*ppm = (uint32_t)v;
	return 0;
}

const char *rollout_format_ratio(uint32_t ppm, char *out, size_t size)
{
	unsigned whole = ppm / 10000, frac = ppm % 10000;
	if (!frac) {
		snprintf(out, size, "%u%%", whole);
		return out;
	}
	char digits[8];
	snprintf(digits, sizeof(digits), "%04u", frac);
	size_t n = strlen(digits);
	while (n > 0 && digits[n - 1] == '0')
		digits[--n] = '\0';
	snprintf(out, size, "%u.%s%%", whole, digits);
	return out;
}

const char *rollout_format_rate(uint32_t rate, char *out, size_t size)
{
	if (rate)
		snprintf(out, size, "%u desired state%s a second", rate, rate == 1 ? "" : "s");
	else
		snprintf(out, size, "each wave's desired states at once");
	return out;
}

int rollout_parse_waves(const char *s, struct rollout_wave_spec *w, size_t max, size_t *n)
{
	size_t count = 0;
	const char *p = s;
	if (!s || !*s)
		return TERN_E_USAGE;
	for (;;) {
		const char *end = strchr(p, ',');
		size_t len = end ? (size_t)(end - p) : strlen(p);
		if (len == 0 || count == max)
			return TERN_E_USAGE;
		struct rollout_wave_spec ws = {0};
		char item[32];
		if (len >= sizeof(item))
			return TERN_E_USAGE;
		memcpy(item, p, len);
		item[len] = '\0';
		if (item[len - 1] == '%') {
			uint32_t ppm;
			if (rollout_parse_ratio(item, &ppm) || ppm == 0)
				return TERN_E_USAGE;
			ws.percent = true;
			ws.value = ppm;
		} else {
			uint64_t v = 0;
			for (size_t i = 0; i < len; i++) {
				if (item[i] < '0' || item[i] > '9' || v > 100000000u)
					return TERN_E_USAGE;
				v = v * 10 + (uint64_t)(item[i] - '0');
			}
			if (v == 0)
				return TERN_E_USAGE;
			ws.value = v;
		}
		/* Entries of the same kind must not decrease (mixed kinds depend on the set). */
		for (size_t j = 0; j < count; j++)
			if (w[j].percent == ws.percent && w[j].value > ws.value)
				return TERN_E_USAGE;
		w[count++] = ws;
		if (!end)
			break;
		p = end + 1;
	}
	*n = count;
	return 0;
}

int rollout_wave_sizes(const struct rollout_wave_spec *w, size_t n, uint64_t n_targets,
		       uint64_t *sizes, size_t max, size_t *n_out)
{
	uint64_t done = 0;
	size_t k = 0;
	for (size_t i = 0; i < n; i++) {
		uint64_t cum = w[i].value;
		if (w[i].percent)
			cum = (n_targets * w[i].value + ROLLOUT_PPM - 1) / ROLLOUT_PPM;
		if (cum > n_targets)
			cum = n_targets;
		if (cum <= done)
			continue;
		if (k == max)
			return TERN_E_TOO_LARGE;
		sizes[k++] = cum - done;
		done = cum;
	}
	*n_out = k;
	return k ? 0 : TERN_E_INVAL;
}

void rollout_member_key(const char *name, const char *device_id, uint8_t key[32])
{
	struct tern_sha256 h;
	tern_sha256_init(&h);
	tern_sha256_update(&h, "tern-rollout", sizeof("tern-rollout"));
	tern_sha256_update(&h, name, strlen(name) + 1);
	tern_sha256_update(&h, device_id, strlen(device_id));
	tern_sha256_final(&h, key);
}

struct keyed {
	uint8_t key[32];
	const char *id;
};

static int cmp_keyed(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;
	int c = memcmp(x->key, y->key, sizeof(x->key));
	return c ? c : strcmp(x->id, y->id);
}

int rollout_order(const char *name, const char **ids, size_t n)
{
	if (n == 0)
		return 0;
	struct keyed *k = calloc(n, sizeof(*k));
	if (!k)
		return TERN_E_NOMEM;
	for (size_t i = 0; i < n; i++) {
		rollout_member_key(name, ids[i], k[i].key);
		k[i].id = ids[i];
	}
	qsort(k, n, sizeof(*k), cmp_keyed);
	for (size_t i = 0; i < n; i++)
		ids[i] = k[i].id;
	free(k);
	return 0;
}

enum rollout_gate rollout_gate(const struct rollout_counts *c, uint32_t max_fail_ppm,
			       uint32_t min_success_ppm, bool bake_over)
{
	if (c->size == 0)
		return ROLLOUT_GATE_PASS;
	/* failed/size > max  <=>  failed * PPM > max * size (exact in integers) */
	if (c->failed * ROLLOUT_PPM > (uint64_t)max_fail_ppm * c->size)
		return ROLLOUT_GATE_TOO_MANY_FAILED;
	if (c->pending > 0 || !bake_over)
		return ROLLOUT_GATE_WAIT;
	if (c->succeeded * ROLLOUT_PPM < (uint64_t)min_success_ppm * c->size)
		return ROLLOUT_GATE_TOO_FEW_SUCCEEDED;
	return ROLLOUT_GATE_PASS;
}
