/* MQTT topic names: bounded builders and parsers, no heap, no printf. */
#include "tern/tern_topic.h"

#include "tern/tern_err.h"
#include "tern/tern_manifest.h"

#include <string.h>

static const char *const dev_names[TERN_DEV__COUNT] = {"desired", "state", "events", "online"};

static bool is_id_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-';
}

bool tern_topic_id_valid(const char *s, size_t max)
{
	if (!s)
		return false;
	size_t n = strnlen(s, max + 1);
	if (n == 0 || n > max)
		return false;
	for (size_t i = 0; i < n; i++)
		if (!is_id_char(s[i]))
			return false;
	return true;
}

bool tern_topic_prefix_valid(const char *prefix)
{
	if (!prefix)
		return false;
	size_t n = strnlen(prefix, TERN_TOPIC_PREFIX_MAX + 1);
	if (n == 0 || n > TERN_TOPIC_PREFIX_MAX || prefix[0] == '/' || prefix[n - 1] == '/')
		return false;
	for (size_t i = 0; i < n; i++) {
		if (prefix[i] == '/') {
			if (prefix[i + 1] == '/')
				return false;
		} else if (!is_id_char(prefix[i])) {
			return false;
		}
	}
	return true;
}

const char *tern_dev_topic_name(enum tern_dev_topic kind)
{
	return (unsigned)kind < TERN_DEV__COUNT ? dev_names[kind] : NULL;
}

/* A bounded string builder; after the first overflow every append is ignored. */
struct topic_buf {
	char *out;
	size_t size;
	size_t pos;
	bool bad;
};

static void tb_init(struct topic_buf *b, char *out, size_t size, const char *prefix)
{
	b->out = out;
	b->size = size;
	b->pos = 0;
	b->bad = !out || size == 0 || !tern_topic_prefix_valid(prefix);
	if (out && size)
		out[0] = '\0';
}

static void tb_put(struct topic_buf *b, const char *s, size_t n)
{
	if (b->bad)
		return;
	if (n >= b->size - b->pos) {
		b->bad = true;
		return;
	}
	memcpy(b->out + b->pos, s, n);
	b->pos += n;
	b->out[b->pos] = '\0';
}

static void tb_str(struct topic_buf *b, const char *s)
{
	if (!b->bad)
		tb_put(b, s, strlen(s));
}

/* Appends "/" and @id after checking it is a valid id of at most @max bytes. */
static void tb_id(struct topic_buf *b, const char *id, size_t max)
{
	if (!tern_topic_id_valid(id, max)) {
		b->bad = true;
		return;
	}
	tb_put(b, "/", 1);
	tb_str(b, id);
}

static void tb_u64(struct topic_buf *b, uint64_t v)
{
	char digits[20];
	size_t n = 0;
	do {
		digits[sizeof(digits) - 1 - n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	tb_put(b, "/", 1);
	tb_put(b, digits + sizeof(digits) - n, n);
}

static size_t tb_done(struct topic_buf *b)
{
	if (!b->bad)
		return b->pos;
	if (b->out && b->size)
		b->out[0] = '\0';
	return 0;
}

/* PREFIX/rel/RELEASE */
static void tb_release(struct topic_buf *b, const char *prefix, const char *release)
{
	tb_str(b, prefix);
	tb_put(b, "/rel", 4);
	tb_id(b, release, TERN_RELEASE_ID_MAX);
}

size_t tern_topic_manifest(const char *prefix, const char *release, char *out, size_t size)
{
	struct topic_buf b;
	tb_init(&b, out, size, prefix);
	tb_release(&b, prefix, release);
	tb_str(&b, "/manifest");
	return tb_done(&b);
}

size_t tern_topic_index(const char *prefix, const char *release, const char *component, char *out,
			size_t size)
{
	struct topic_buf b;
	tb_init(&b, out, size, prefix);
	tb_release(&b, prefix, release);
	tb_id(&b, component, TERN_NAME_MAX);
	tb_str(&b, "/index");
	return tb_done(&b);
}

size_t tern_topic_index_filter(const char *prefix, const char *release, char *out, size_t size)
{
	struct topic_buf b;
	tb_init(&b, out, size, prefix);
	tb_release(&b, prefix, release);
	tb_str(&b, "/+/index");
	return tb_done(&b);
}

size_t tern_topic_chunk(const char *prefix, const char *release, const char *component,
			uint64_t chunk, char *out, size_t size)
{
	struct topic_buf b;
	tb_init(&b, out, size, prefix);
	tb_release(&b, prefix, release);
	tb_id(&b, component, TERN_NAME_MAX);
	tb_u64(&b, chunk / TERN_WINDOW_CHUNKS);
	tb_u64(&b, chunk);
	return tb_done(&b);
}

size_t tern_topic_window_filter(const char *prefix, const char *release, const char *component,
				uint64_t window, char *out, size_t size)
{
	struct topic_buf b;
	tb_init(&b, out, size, prefix);
	tb_release(&b, prefix, release);
	tb_id(&b, component, TERN_NAME_MAX);
	tb_u64(&b, window);
	tb_str(&b, "/+");
	return tb_done(&b);
}

size_t tern_topic_dev(const char *prefix, const char *device_id, enum tern_dev_topic kind,
		      char *out, size_t size)
{
	struct topic_buf b;
	tb_init(&b, out, size, prefix);
	const char *name = tern_dev_topic_name(kind);
	if (!name)
		b.bad = true;
	tb_str(&b, prefix);
	tb_put(&b, "/dev", 4);
	tb_id(&b, device_id, TERN_DEVICE_ID_MAX);
	tb_put(&b, "/", 1);
	tb_str(&b, name ? name : "");
	return tb_done(&b);
}

size_t tern_topic_dev_filter(const char *prefix, enum tern_dev_topic kind, char *out, size_t size)
{
	struct topic_buf b;
	tb_init(&b, out, size, prefix);
	const char *name = tern_dev_topic_name(kind);
	if (!name)
		b.bad = true;
	tb_str(&b, prefix);
	tb_put(&b, "/dev/+/", 7);
	tb_str(&b, name ? name : "");
	return tb_done(&b);
}

/* A cursor over a topic that is not NUL-terminated. */
struct topic_cur {
	const char *p;
	size_t left;
};

/* Consumes @s exactly; false if the topic does not continue with it. */
static bool cur_lit(struct topic_cur *c, const char *s)
{
	size_t n = strlen(s);
	if (n > c->left || memcmp(c->p, s, n) != 0)
		return false;
	c->p += n;
	c->left -= n;
	return true;
}

/* Consumes one segment (up to '/' or the end); sets @seg and @n. */
static bool cur_seg(struct topic_cur *c, const char **seg, size_t *n)
{
	size_t i = 0;
	while (i < c->left && c->p[i] != '/')
		i++;
	*seg = c->p;
	*n = i;
	c->p += i;
	c->left -= i;
	return i > 0;
}

/* Consumes "/" then exactly the segment @s. */
static bool cur_id(struct topic_cur *c, const char *s)
{
	const char *seg;
	size_t n;
	if (!cur_lit(c, "/") || !cur_seg(c, &seg, &n))
		return false;
	return n == strlen(s) && memcmp(seg, s, n) == 0;
}

/* Consumes "/" then a decimal number without leading zeros. */
static bool cur_u64(struct topic_cur *c, uint64_t *v)
{
	const char *seg;
	size_t n;
	if (!cur_lit(c, "/") || !cur_seg(c, &seg, &n) || n > 19 || (n > 1 && seg[0] == '0'))
		return false;
	uint64_t x = 0;
	for (size_t i = 0; i < n; i++) {
		if (seg[i] < '0' || seg[i] > '9')
			return false;
		x = x * 10 + (uint64_t)(seg[i] - '0');
	}
	*v = x;
	return true;
}

int tern_topic_parse_dev(const char *prefix, const char *topic, size_t len, char *id,
			 size_t id_size, enum tern_dev_topic *kind)
{
	struct topic_cur c = {topic, len};
	const char *seg;
	size_t n;
	if (!tern_topic_prefix_valid(prefix) || !cur_lit(&c, prefix) || !cur_lit(&c, "/dev/") ||
	    !cur_seg(&c, &seg, &n) || n > TERN_DEVICE_ID_MAX)
		return TERN_E_NOT_FOUND;
	for (size_t i = 0; i < n; i++)
		if (!is_id_char(seg[i]))
			return TERN_E_NOT_FOUND;
	const char *name;
	size_t name_len;
	if (!cur_lit(&c, "/") || !cur_seg(&c, &name, &name_len) || c.left != 0)
		return TERN_E_NOT_FOUND;
	for (int k = 0; k < TERN_DEV__COUNT; k++) {
		if (strlen(dev_names[k]) != name_len || memcmp(dev_names[k], name, name_len))
			continue;
		if (n + 1 > id_size)
			return TERN_E_TOO_LARGE;
		memcpy(id, seg, n);
		id[n] = '\0';
		*kind = (enum tern_dev_topic)k;
		return 0;
	}
	return TERN_E_NOT_FOUND;
}

int tern_topic_parse_chunk(const char *prefix, const char *release, const char *component,
			   const char *topic, size_t len, uint64_t *chunk)
{
	struct topic_cur c = {topic, len};
	uint64_t w, n;
	if (!tern_topic_prefix_valid(prefix) ||
	    !tern_topic_id_valid(release, TERN_RELEASE_ID_MAX) ||
	    !tern_topic_id_valid(component, TERN_NAME_MAX))
		return TERN_E_NOT_FOUND;
	if (!cur_lit(&c, prefix) || !cur_lit(&c, "/rel") || !cur_id(&c, release) ||
	    !cur_id(&c, component) || !cur_u64(&c, &w) || !cur_u64(&c, &n) || c.left != 0)
		return TERN_E_NOT_FOUND;
	if (n / TERN_WINDOW_CHUNKS != w)
		return TERN_E_NOT_FOUND;
	*chunk = n;
	return 0;
}
