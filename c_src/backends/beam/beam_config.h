/* The beam_node type's own config keys (name, code_paths, apps, erl_args, cookie, user). */
#ifndef SBX_BACKENDS_BEAM_BEAM_CONFIG_H
#define SBX_BACKENDS_BEAM_BEAM_CONFIG_H

#include "core/config.h"

extern const struct sbx_config_schema sbx_beam_config_schema;

#endif
