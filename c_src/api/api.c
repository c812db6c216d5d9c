/* The export table. */
#include "api/api.h"

#include <string.h>

static const struct sbx_api_entry table[] = {
    {"sandbox", "ping", 0, sbx_api_ping},
    {"sandbox", "info", 0, sbx_api_info},
    {"sandbox", "net_ping", 1, sbx_api_net_ping},
    {"sandbox", "create", 3, sbx_api_create},
    {"sandbox", "destroy", 1, sbx_api_destroy},
    {"sandbox", "stop", 1, sbx_api_stop},
    {"sandbox", "start", 1, sbx_api_start},
    {"sandbox", "restart", 1, sbx_api_restart},
    {"sandbox", "get", 1, sbx_api_get},
    {"sandbox", "list", 0, sbx_api_list0},
    {"sandbox", "list", 1, sbx_api_list1},
    {"sandbox", "exec", 2, sbx_api_exec2},
    {"sandbox", "exec", 3, sbx_api_exec3},
    {"sandbox", "logs", 1, sbx_api_logs1},
    {"sandbox", "logs", 2, sbx_api_logs2},
    {"sandbox", "metrics", 1, sbx_api_metrics},
    {"sandbox", "processes", 1, sbx_api_processes},
    {"sandbox", "shell", 1, sbx_api_shell},
    {"sandbox", "subscribe", 3, sbx_api_subscribe},
    {"sandbox", "unsubscribe", 1, sbx_api_unsubscribe},
    {"sandbox", "copy_to", 3, sbx_api_copy_to},
    {"sandbox", "copy_from", 2, sbx_api_copy_from},
    {"sandbox", "trace_start", 2, sbx_api_trace_start},
    {"sandbox", "trace_stop", 1, sbx_api_trace_stop},
    {"sandbox", "remote_call", 4, sbx_api_remote_call4},
    {"sandbox", "remote_call", 5, sbx_api_remote_call5},
    {"sandbox", "get_state", 2, sbx_api_get_state},
    {"sandbox", "pause", 1, sbx_api_pause},
    {"sandbox", "resume", 1, sbx_api_resume},
    {"erlang", "node", 0, sbx_api_erlang_node},
};

/* See api.h. A linear search of the static table; the entry returned is static. */
const struct sbx_api_entry *sbx_api_find(const char *module, const char *function, int arity) {
    for (size_t i = 0; i < sizeof table / sizeof table[0]; i++)
        if (table[i].arity == arity && strcmp(table[i].function, function) == 0 &&
            strcmp(table[i].module, module) == 0)
            return &table[i];
    return NULL;
}
