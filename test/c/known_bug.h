/* known_bug(behaves, what): the check for a c_src bug that was found and fixed. It fails the
 * test when the bug is back (behaves == 0), always: a returning bug is a failure, never a skip.
 * Include after <cmocka.h>. Shared by test_term_check.c, test_handshake.c and the selftest
 * fixture test/selftest/cmocka_known_bug.c. */
#ifndef SBX_TEST_KNOWN_BUG_H
#define SBX_TEST_KNOWN_BUG_H

/* Fails the running cmocka test, naming the bug, unless behaves is non-zero. */
static inline void known_bug(int behaves, const char *what) {
    if (!behaves)
        fail_msg("c_src bug is back: %s", what);
}

#endif
