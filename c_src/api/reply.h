/* Encoders for the values API handlers answer with ({error, Reason} shapes). */
#ifndef SBX_API_REPLY_H
#define SBX_API_REPLY_H

#include <ei.h>

#include "backends/backend.h"
#include "core/config.h"

/* {error, Atom} */
void sbx_reply_error(ei_x_buff *x, const char *atom);
/* {error, {badarg, Field, Why}} (Field as sent when err->field_term is set) */
void sbx_reply_badarg(ei_x_buff *x, const struct sbx_badarg *err);
/* {error, {backend, Backend, DetailBinary}} or {error, Atom} from a backend error */
void sbx_reply_err(ei_x_buff *x, const char *backend, const struct sbx_err *err);
/* {error, {unavailable, Backend, WhyBinary}} */
void sbx_reply_unavailable(ei_x_buff *x, const char *backend, const char *why);

#endif
