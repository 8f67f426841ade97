/* Prints the RAM the device core needs per agent (`make size`). */
#include "tern/tern_agent.h"

#include <stdio.h>

_Static_assert(sizeof(struct tern_agent) <= 16 * 1024, "struct tern_agent fits in 16 KiB");

int main(void)
{
	printf("sizeof(struct tern_agent) = %zu bytes (goal <= 16384)\n",
	       sizeof(struct tern_agent));
	printf("  of which write buffer = %d bytes, boot control copy = %zu bytes\n",
	       TERN_AGENT_WBUF, sizeof(struct tern_bootctl));
	return 0;
}
