/*
 * Shared CUnit runner: every test binary lists its suites in a
 * CU_SuiteInfo array and calls unit_run(), which prints CUnit's summary and
 * returns the exit status automake expects (0 pass, 1 fail, 99 hard error).
 */
#ifndef AGENTD_UNIT_H
#define AGENTD_UNIT_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/Basic.h>
#include <CUnit/CUnit.h>

static inline int unit_run(CU_SuiteInfo *suites) {
        unsigned failures;

        if (CU_initialize_registry() != CUE_SUCCESS)
                return 99;
        if (CU_register_suites(suites) != CUE_SUCCESS) {
                fprintf(stderr, "CU_register_suites: %s\n", CU_get_error_msg());
                CU_cleanup_registry();
                return 99;
        }
        CU_basic_set_mode(CU_BRM_VERBOSE);
        CU_basic_run_tests();
        failures = CU_get_number_of_failures() + CU_get_number_of_tests_failed();
        if (CU_get_error() != CUE_SUCCESS)
                failures++;
        CU_cleanup_registry();
        return failures ? 1 : 0;
}

/* Makes a private temporary directory; aborts the test binary when it cannot. */
static inline char *unit_tmpdir(void) {
        char tmpl[] = "/tmp/agentd-test.XXXXXX";
        char *d = mkdtemp(tmpl);
        if (!d) {
                perror("mkdtemp");
                exit(99);
        }
        char *r = strdup(d);
        if (!r)
                exit(99);
        return r;
}

#endif
