/*
 * agentd: command line, then hand over to the agent. Exit status: 0 clean
 * stop, 1 error (bad config, cannot start), 2 usage.
 */
#include <errno.h>
#include <getopt.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentd/agent.h"
#include "agentd/config.h"
#include "io/journal.h"

#define AGENTD_DEFAULT_CONFIG AGENTD_SYSCONFDIR "/agentd/agentd.conf"

static void usage(FILE *f) {
        fprintf(f,
                "Usage: agentd [--config PATH] [--check-config]\n"
                "       agentd --version | --help\n"
                "\n"
                "Cluster supervision agent: gossip membership, leader election, balancer\n"
                "table and self-healing of local services through systemd.\n"
                "\n"
                "  -c, --config PATH    configuration file (default %s)\n"
                "  -t, --check-config   validate the configuration and exit (0 ok, 1 errors)\n"
                "  -V, --version        print the version and exit\n"
                "  -h, --help           print this help and exit\n"
                "\n"
                "Runs in the foreground; SIGHUP reloads the configuration, SIGTERM stops.\n"
                "See agentd(8) and agentd.conf(5).\n",
                AGENTD_DEFAULT_CONFIG);
}

/*
 * Group names are only known to exist on the machine that runs the agent, so
 * --check-config resolves them too: a config that passes the check starts.
 */
static int check_groups(const char *path, const struct agentd_config *c) {
        gid_t gid;

        if (agent_resolve_group(c->control_group, &gid) < 0) {
                fprintf(stderr, "%s: control.group: no such group \"%s\"\n", path, c->control_group);
                return -ENOENT;
        }
        if (agent_resolve_group(c->admin_group, &gid) < 0) {
                fprintf(stderr, "%s: control.admin_group: no such group \"%s\"\n", path, c->admin_group);
                return -ENOENT;
        }
        return 0;
}

int main(int argc, char **argv) {
        static const struct option options[] = {
                { "config", required_argument, NULL, 'c' },
                { "check-config", no_argument, NULL, 't' },
                { "version", no_argument, NULL, 'V' },
                { "help", no_argument, NULL, 'h' },
                {}
        };
        const char *config_path = AGENTD_DEFAULT_CONFIG;
        bool check_only = false;
        struct agentd_config *config = NULL;
        struct agent *agent = NULL;
        char *error = NULL;
        int c, r;

        while ((c = getopt_long(argc, argv, "c:tVh", options, NULL)) >= 0) {
                switch (c) {
                case 'c':
                        config_path = optarg;
                        break;
                case 't':
                        check_only = true;
                        break;
                case 'V':
                        printf("agentd %s\n", PACKAGE_VERSION);
                        return 0;
                case 'h':
                        usage(stdout);
                        return 0;
                default:
                        usage(stderr);
                        return 2;
                }
        }
        if (optind < argc) {
                fprintf(stderr, "agentd: unexpected argument \"%s\"\n", argv[optind]);
                usage(stderr);
                return 2;
        }

        /*
         * glibc raises its mmap threshold (and with it the heap's trim
         * threshold) to the size of any mmap()ed block that is freed: after
         * the configuration loader's 1 MiB read buffer, every later large
         * table (the replay window, the gossip state) would be carved out of
         * the brk heap, where calloc() zeroes reused memory and freed space
         * goes back to the system only past the raised trim threshold. In a
         * mapping of its own, only the pages a table actually uses are
         * resident (about 250 KiB less RSS for an idle agent).
         */
        mallopt(M_MMAP_THRESHOLD, 128 * 1024);
        r = config_load(config_path, &config, &error);
        if (r < 0) {
                fprintf(stderr, "%s\n", error ? error : strerror(-r));
                free(error);
                return 1;
        }
        if (check_only) {
                r = check_groups(config_path, config);
                config_free(config);
                if (r < 0)
                        return 1;
                printf("%s: configuration ok\n", config_path);
                return 0;
        }

        r = agent_new(config_path, config, &agent);
        if (r < 0)
                return 1;
        r = agent_run(agent);
        agent_free(agent);
        return r;
}
