/* Error value encoders. */
#include "api/reply.h"

#include <string.h>

/* See reply.h. Appends to x, without a version byte. */
void sbx_reply_error(ei_x_buff *x, const char *atom) {
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "error");
    ei_x_encode_atom(x, atom);
}

/* See reply.h. A missing field or why is sent as argument or invalid. */
void sbx_reply_badarg(ei_x_buff *x, const struct sbx_badarg *err) {
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "error");
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, "badarg");
    if (err->field_term != NULL)
        ei_x_append_buf(x, err->field_term, (int)err->field_term_len);
    else
        ei_x_encode_atom(x, err->field != NULL ? err->field : "argument");
    ei_x_encode_atom(x, err->why != NULL ? err->why : "invalid");
}

/* See reply.h. A reason other than backend or unavailable is answered as {error, Reason}
 * ({error, {limit_reached, What}} when limit_reached has a detail); no reason at all counts
 * as backend. */
void sbx_reply_err(ei_x_buff *x, const char *backend, const struct sbx_err *err) {
    if (err->reason_atom != NULL && strcmp(err->reason_atom, "limit_reached") == 0 &&
        err->detail[0] != '\0') {
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_atom(x, "error");
        ei_x_encode_tuple_header(x, 2);
        ei_x_encode_atom(x, "limit_reached");
        ei_x_encode_atom(x, err->detail);
        return;
    }
    if (err->reason_atom != NULL && strcmp(err->reason_atom, "backend") != 0 &&
        strcmp(err->reason_atom, "unavailable") != 0) {
        sbx_reply_error(x, err->reason_atom);
        return;
    }
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "error");
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, err->reason_atom != NULL ? err->reason_atom : "backend");
    ei_x_encode_atom(x, backend);
    ei_x_encode_binary(x, err->detail, (int)strlen(err->detail));
}

/* See reply.h. Appends to x, without a version byte. */
void sbx_reply_unavailable(ei_x_buff *x, const char *backend, const char *why) {
    ei_x_encode_tuple_header(x, 2);
    ei_x_encode_atom(x, "error");
    ei_x_encode_tuple_header(x, 3);
    ei_x_encode_atom(x, "unavailable");
    ei_x_encode_atom(x, backend);
    ei_x_encode_binary(x, why, (int)strlen(why));
}
