/*
 * Event kinds: names round-trip, every kind has a distinct, well-formed
 * MESSAGE_ID, and the installed catalog documents exactly those ids.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/event.h"
#include "unit.h"

static void test_names_round_trip(void) {
        for (int k = 0; k < _EVENT_KIND_MAX; k++) {
                const char *name = event_kind_to_string((enum event_kind) k);
                CU_ASSERT_PTR_NOT_NULL_FATAL(name);
                CU_ASSERT_EQUAL(event_kind_from_string(name), k);
                /* contract: short snake_case names */
                for (const char *p = name; *p; p++)
                        CU_ASSERT(islower((unsigned char) *p) || *p == '_');
                CU_ASSERT_PTR_NOT_NULL(event_kind_description((enum event_kind) k));
        }
        CU_ASSERT_EQUAL(event_kind_from_string("nosuch"), _EVENT_KIND_INVALID);
        CU_ASSERT_EQUAL(event_kind_from_string(NULL), _EVENT_KIND_INVALID);
        CU_ASSERT_STRING_EQUAL(event_kind_to_string(_EVENT_KIND_MAX), "invalid");
        CU_ASSERT_STRING_EQUAL(event_kind_to_string(EVENT_CONFIG_REJECTED), "config_rejected");
}

static void test_contract_kinds_exist(void) {
        static const char *const required[] = {
                "agent_started", "agent_stopping", "config_reloaded", "config_rejected",
        };
        for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
                CU_ASSERT_NOT_EQUAL(event_kind_from_string(required[i]), _EVENT_KIND_INVALID);
}

static void test_message_ids_unique(void) {
        for (int k = 0; k < _EVENT_KIND_MAX; k++) {
                const char *id = event_kind_message_id((enum event_kind) k);
                CU_ASSERT_PTR_NOT_NULL_FATAL(id);
                CU_ASSERT_EQUAL(strlen(id), 32);
                CU_ASSERT_EQUAL(strspn(id, "0123456789abcdef"), 32);
                for (int j = 0; j < k; j++)
                        CU_ASSERT_STRING_NOT_EQUAL(id, event_kind_message_id((enum event_kind) j));
        }
        CU_ASSERT_PTR_NULL(event_kind_message_id(_EVENT_KIND_MAX));
}

/* The catalog must list every id once, and no id that agentd never sends. */
static void test_catalog_matches(void) {
        const char *srcdir = getenv("top_srcdir");
        char path[4096], line[1024];
        int seen[_EVENT_KIND_MAX] = { 0 };
        int entries = 0;
        FILE *f;

        snprintf(path, sizeof(path), "%s/contrib/agentd.catalog", srcdir ? srcdir : "..");
        f = fopen(path, "re");
        CU_ASSERT_PTR_NOT_NULL_FATAL(f);
        while (fgets(line, sizeof(line), f)) {
                if (strncmp(line, "-- ", 3) != 0)
                        continue;
                line[strcspn(line, "\n")] = '\0';
                entries++;
                int found = 0;
                for (int k = 0; k < _EVENT_KIND_MAX; k++)
                        if (strcmp(line + 3, event_kind_message_id((enum event_kind) k)) == 0) {
                                seen[k]++;
                                found = 1;
                        }
                if (!found)
                        fprintf(stderr, "catalog id %s is not an event kind\n", line + 3);
                CU_ASSERT(found);
        }
        fclose(f);
        CU_ASSERT_EQUAL(entries, _EVENT_KIND_MAX);
        for (int k = 0; k < _EVENT_KIND_MAX; k++) {
                if (seen[k] != 1)
                        fprintf(stderr, "kind %s appears %d times in the catalog\n",
                                event_kind_to_string((enum event_kind) k), seen[k]);
                CU_ASSERT_EQUAL(seen[k], 1);
        }
}

static CU_TestInfo event_tests[] = {
        { "names round-trip and are snake_case", test_names_round_trip },
        { "contract kinds exist", test_contract_kinds_exist },
        { "message ids are unique 128-bit hex", test_message_ids_unique },
        { "catalog documents every id exactly once", test_catalog_matches },
        CU_TEST_INFO_NULL,
};

static CU_SuiteInfo suites[] = {
        { "event", NULL, NULL, NULL, NULL, event_tests },
        CU_SUITE_INFO_NULL,
};

int main(void) {
        return unit_run(suites);
}
