/* The export table. */
#include "api/api.h"

#include <string.h>

static const struct sbx_api_entry table[] = {
    {"sandbox", "ping", 0, sbx_api_ping},
    {"sandbox", "info", 0, sbx_api_info},
    {"sandbox", "net_ping", 1, sbx_api_net_ping},
    {"erlang", "node", 0, sbx_api_erlang_node},
};

const struct sbx_api_entry *sbx_api_find(const char *module, const char *function, int arity) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].arity == arity && strcmp(table[i].function, function) == 0 &&
            strcmp(table[i].module, module) == 0)
            return &table[i];
    return NULL;
}
