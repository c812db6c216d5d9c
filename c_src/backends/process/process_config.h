/* The process type's own config keys (isolation, user); its schema also requires cmd. */
#ifndef SBX_BACKENDS_PROCESS_PROCESS_CONFIG_H
#define SBX_BACKENDS_PROCESS_PROCESS_CONFIG_H

#include "core/config.h"

extern const struct sbx_config_schema sbx_process_config_schema;

#endif
