/* erpc client calls. */
#include "rpc/rcall.h"

#include <string.h>

#include "dist/control.h"
#include "dist/node.h"

/* See rcall.h. m, f and args stay the caller's; ref_out is appended
 * to only on success. Nothing is queued for a later retry. */
int sbx_rcall(struct sbx_node *node, const struct sbx_proc *from, uint64_t conn_id,
              const char *m, const char *f, const char *args, size_t args_len, ei_x_buff *ref_out) {
    ei_x_buff ctl, msg, ref;
    int rc;
    ei_x_new(&ref);
    sbx_node_make_ref(node, &ref);
    ei_x_new_with_version(&ctl);
    ei_x_new_with_version(&msg);
    /* {29, ReqId, From, GroupLeader, {erpc, execute_call, 4}, [monitor]} */
    ei_x_encode_tuple_header(&ctl, 6);
    ei_x_encode_long(&ctl, 29);
    ei_x_append(&ctl, &ref);
    sbx_node_encode_self_pid(node, &ctl, from);
    sbx_node_encode_self_pid(node, &ctl, from);
    ei_x_encode_tuple_header(&ctl, 3);
    ei_x_encode_atom(&ctl, "erpc");
    ei_x_encode_atom(&ctl, "execute_call");
    ei_x_encode_long(&ctl, 4);
    ei_x_encode_list_header(&ctl, 1);
    ei_x_encode_atom(&ctl, "monitor");
    ei_x_encode_empty_list(&ctl);
    /* [Ref, M, F, Args] */
    ei_x_encode_list_header(&msg, 4);
    ei_x_append(&msg, &ref);
    ei_x_encode_atom(&msg, m);
    ei_x_encode_atom(&msg, f);
    ei_x_append_buf(&msg, args, (int)args_len);
    ei_x_encode_empty_list(&msg);
    rc = sbx_node_send(node, conn_id, &ctl, &msg);
    if (rc == 0)
        ei_x_append(ref_out, &ref);
    ei_x_free(&ctl);
    ei_x_free(&msg);
    ei_x_free(&ref);
    return rc;
}

/* See rcall.h. msg must be validated; *ref points into msg and is set for any 'DOWN'. */
int sbx_rcall_result(const char *msg, const char **ref, size_t *ref_len, int *value_idx) {
    int idx = 0, version, arity;
    char atom[MAXATOMLEN_UTF8];
    *value_idx = -1;
    if (ei_decode_version(msg, &idx, &version) != 0 || ei_decode_tuple_header(msg, &idx, &arity) != 0 ||
        arity != 5 || sbx_decode_atom(msg, &idx, atom) != 0 || strcmp(atom, "DOWN") != 0 ||
        sbx_term_span(msg, &idx, ref, ref_len) != 0 || ei_skip_term(msg, &idx) != 0 ||
        ei_skip_term(msg, &idx) != 0)
        return -1;
    int save = idx;
    if (ei_decode_tuple_header(msg, &idx, &arity) != 0 || arity != 3 || ei_skip_term(msg, &idx) != 0 ||
        sbx_decode_atom(msg, &idx, atom) != 0 || strcmp(atom, "return") != 0) {
        (void)save;
        return 0;
    }
    *value_idx = idx;
    return 1;
}
