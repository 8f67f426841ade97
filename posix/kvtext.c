/* "key=value" text records (see tern_kvtext.h). */
#include "tern/tern_kvtext.h"

#include <string.h>

bool tern_kv_get(const char *text, const char *key, char *out, size_t size)
{
	size_t klen = strlen(key);
	for (const char *line = text; line && *line;) {
		const char *nl = strchr(line, '\n');
		size_t llen = nl ? (size_t)(nl - line) : strlen(line);
		if (llen > klen && !strncmp(line, key, klen) && line[klen] == '=') {
			size_t vlen = llen - klen - 1;
			if (vlen >= size)
				return false;
			memcpy(out, line + klen + 1, vlen);
			out[vlen] = '\0';
			return true;
		}
		line = nl ? nl + 1 : NULL;
	}
	return false;
}
