/* The end of every check test's main(): run the suite, exit 0 or 1.
 * nofork: run the tests in this process (for tests that keep state across
 * cases, such as a server started once). */
#ifndef CRIC_T_CHECK_RUN_H
#define CRIC_T_CHECK_RUN_H

#include <check.h>
#include <stdbool.h>

static inline int cric_check_run(Suite *s, bool nofork)
{
    SRunner *sr = srunner_create(s);
    if (nofork)
        srunner_set_fork_status(sr, CK_NOFORK);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}

#endif
