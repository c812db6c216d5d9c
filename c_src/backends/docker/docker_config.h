/* The docker type's own config keys (image, ports, volumes, network, pull, beam). */
#ifndef SBX_BACKENDS_DOCKER_DOCKER_CONFIG_H
#define SBX_BACKENDS_DOCKER_DOCKER_CONFIG_H

#include "core/config.h"

extern const struct sbx_config_schema sbx_docker_config_schema;

#endif
