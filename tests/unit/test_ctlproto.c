/*
 * The control protocol codec and blocking client: every parse error class
 * with its exact code, the verb table, reply serialization, and
 * ctlproto_call() against scripted servers forked for each case.
 */
#include <errno.h>
#include <grp.h>
#include <signal.h>
#include <stdbool.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/ctlproto.h"
#include "unit.h"

static char *tmpdir;

static int suite_init(void) {
        tmpdir = unit_tmpdir();
        return 0;
}

static int suite_clean(void) {
        char cmd[512];

        snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
        if (system(cmd) != 0)
                fprintf(stderr, "could not remove %s\n", tmpdir);
        free(tmpdir);
        return 0;
}

static uint64_t now_us(void) {
        struct timespec ts;

        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static bool utf8_ok(const char *s) {
        json_t *j = json_string(s);
        bool ok = j != NULL;

        json_decref(j);
        return ok;
}

/* --- parsing -------------------------------------------------------------- */

struct parse_case {
        const char *name;
        const char *in;
        size_t len;             /* 0: strlen(in) */
        int r;
        const char *code;       /* on failure */
        const char *verb;       /* on success */
        const char *args;       /* on success: compact dump of args */
        const char *msg_has;    /* NULL: not checked */
};

static const struct parse_case parse_cases[] = {
        /* bad_json */
        { "empty", "", 0, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, "invalid JSON" },
        { "truncated", "{\"verb\":", 0, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, NULL },
        { "open brace", "{", 0, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, NULL },
        { "trailing garbage", "{\"verb\":\"status\"} x", 0, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, NULL },
        { "two documents", "{\"verb\":\"status\"}{\"verb\":\"status\"}", 0, -EBADMSG, CTL_ERR_BAD_JSON,
          NULL, NULL, NULL },
        { "duplicate key", "{\"verb\":\"status\",\"verb\":\"events\"}", 0, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL,
          "duplicate" },
        { "nested duplicate", "{\"verb\":\"status\",\"args\":{\"a\":1,\"a\":2}}", 0, -EBADMSG, CTL_ERR_BAD_JSON,
          NULL, NULL, NULL },
        { "raw NUL", "{\"verb\":\"status\"}\0", 18, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, "NUL byte at position 17" },
        { "NUL in middle", "{\"verb\":\0\"status\"}", 18, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, "position 8" },
        { "escaped NUL", "{\"verb\":\"sta\\u0000tus\"}", 0, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, NULL },
        { "invalid UTF-8", "{\"verb\":\"\xff\"}", 0, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, NULL },
        { "overlong UTF-8", "{\"verb\":\"\xc0\xaf\"}", 0, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, NULL },
        { "integer overflow", "{\"verb\":\"status\",\"args\":{\"n\":99999999999999999999999}}", 0, -EBADMSG,
          CTL_ERR_BAD_JSON, NULL, NULL, NULL },
        { "single quotes", "{'verb':'status'}", 0, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, NULL },
        { "comment", "{\"verb\":\"status\"} // hi", 0, -EBADMSG, CTL_ERR_BAD_JSON, NULL, NULL, NULL },
        /* bad_request */
        { "array", "[]", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, "JSON object" },
        { "number", "42", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, NULL },
        { "string", "\"status\"", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, NULL },
        { "null", "null", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, NULL },
        { "no verb", "{}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, "missing \"verb\"" },
        { "args only", "{\"args\":{}}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, "missing \"verb\"" },
        { "verb number", "{\"verb\":5}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, "must be a string" },
        { "verb null", "{\"verb\":null}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, "must be a string" },
        { "verb object", "{\"verb\":{}}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, "must be a string" },
        { "verb empty", "{\"verb\":\"\"}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, "1..32 characters" },
        { "verb upper", "{\"verb\":\"Status\"}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, NULL },
        { "verb digit", "{\"verb\":\"st4tus\"}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, NULL },
        { "verb space", "{\"verb\":\"status \"}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, NULL },
        { "verb unicode", "{\"verb\":\"st\xc3\xa4tus\"}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, NULL },
        { "verb 33 chars", "{\"verb\":\"abcdefghijklmnopqrstuvwxyzabcdefg\"}", 0, -EINVAL, CTL_ERR_BAD_REQUEST,
          NULL, NULL, NULL },
        { "args array", "{\"verb\":\"status\",\"args\":[]}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL,
          "\"args\" must be an object" },
        { "args null", "{\"verb\":\"status\",\"args\":null}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, NULL },
        { "args string", "{\"verb\":\"status\",\"args\":\"x\"}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL, NULL },
        { "extra key", "{\"verb\":\"status\",\"id\":1}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL,
          "unknown request key \"id\"" },
        { "unknown verb, bad args", "{\"verb\":\"nope\",\"args\":5}", 0, -EINVAL, CTL_ERR_BAD_REQUEST, NULL, NULL,
          NULL },
        /* unknown_verb */
        { "unknown verb", "{\"verb\":\"nope\"}", 0, -ENOENT, CTL_ERR_UNKNOWN_VERB, NULL, NULL,
          "unknown verb \"nope\"" },
        { "unknown verb dash", "{\"verb\":\"no-such-verb\",\"args\":{\"node\":\"n2\"}}", 0, -ENOENT,
          CTL_ERR_UNKNOWN_VERB, NULL, NULL, "no-such-verb" },
        { "unknown verb 32 chars", "{\"verb\":\"abcdefghijklmnopqrstuvwxyzabcdef\"}", 0, -ENOENT,
          CTL_ERR_UNKNOWN_VERB, NULL, NULL, NULL },
        { "prefix of a verb", "{\"verb\":\"stat\"}", 0, -ENOENT, CTL_ERR_UNKNOWN_VERB, NULL, NULL, NULL },
        /* good */
        { "status", "{\"verb\":\"status\"}", 0, 0, NULL, "status", "{}", NULL },
        { "status empty args", "{\"verb\":\"status\",\"args\":{}}", 0, 0, NULL, "status", "{}", NULL },
        { "events args first", "{\"args\":{\"limit\":5,\"kind\":\"agent_started\"},\"verb\":\"events\"}", 0, 0,
          NULL, "events", "{\"limit\":5,\"kind\":\"agent_started\"}", NULL },
        { "reload", "{\"verb\":\"reload\",\"args\":{}}", 0, 0, NULL, "reload", "{}", NULL },
        { "version whitespace", " \t{ \"verb\" : \"version\" }\r ", 0, 0, NULL, "version", "{}", NULL },
        { "nested args", "{\"verb\":\"events\",\"args\":{\"a\":{\"b\":[1,2,{\"c\":null}]},\"s\":\"\xc3\xa9\"}}", 0,
          0, NULL, "events", "{\"a\":{\"b\":[1,2,{\"c\":null}]},\"s\":\"\xc3\xa9\"}", NULL },
        { "prefix of buffer", "{\"verb\":\"status\"}garbage", 17, 0, NULL, "status", "{}", NULL },
};

static void test_parse_table(void) {
        for (size_t i = 0; i < ELEMENTSOF(parse_cases); i++) {
                const struct parse_case *t = &parse_cases[i];
                size_t len = t->len ? t->len : strlen(t->in);
                struct ctl_request req, sentinel;
                const char *code = NULL;
                char msg[256] = "";
                int r;

                memset(&req, 0xa5, sizeof req);
                sentinel = req;
                r = ctlproto_parse_request(t->in, len, &req, &code, msg, sizeof msg);
                if (r != t->r)
                        fprintf(stderr, "\ncase \"%s\": r=%d want %d (%s)\n", t->name, r, t->r, msg);
                CU_ASSERT_EQUAL(r, t->r);
                if (t->r < 0) {
                        CU_ASSERT_PTR_NOT_NULL_FATAL(code);
                        if (strcmp(code, t->code) != 0)
                                fprintf(stderr, "\ncase \"%s\": code %s want %s\n", t->name, code, t->code);
                        CU_ASSERT_STRING_EQUAL(code, t->code);
                        CU_ASSERT(msg[0] != '\0');
                        CU_ASSERT(utf8_ok(msg));
                        if (t->msg_has && !strstr(msg, t->msg_has)) {
                                fprintf(stderr, "\ncase \"%s\": message \"%s\" lacks \"%s\"\n", t->name, msg,
                                        t->msg_has);
                                CU_FAIL("message text");
                        }
                        /* ret untouched on failure */
                        CU_ASSERT(memcmp(&req, &sentinel, sizeof req) == 0);
                } else if (r == 0) {
                        char *args;

                        CU_ASSERT_PTR_NOT_NULL_FATAL(req.verb);
                        CU_ASSERT_STRING_EQUAL(req.verb->name, t->verb);
                        CU_ASSERT_STRING_EQUAL(req.verb_name, t->verb);
                        CU_ASSERT_PTR_EQUAL(req.verb, ctlproto_verb_lookup(t->verb));
                        CU_ASSERT_FATAL(json_is_object(req.args));
                        args = json_dumps(req.args, JSON_COMPACT);
                        CU_ASSERT_STRING_EQUAL(args, t->args);
                        free(args);
                        ctlproto_request_done(&req);
                        CU_ASSERT_PTR_NULL(req.args);
                        CU_ASSERT_PTR_NULL(req.verb);
                }
        }
}

/* Requests at and just over the size limit, padded with JSON whitespace. */
static void test_parse_size_limit(void) {
        char *buf = malloc(CTL_MAX_REQUEST + 2);
        const char *req = "{\"verb\":\"version\"}";
        struct ctl_request r;
        const char *code = NULL;
        char msg[256];

        CU_ASSERT_PTR_NOT_NULL_FATAL(buf);
        memset(buf, ' ', CTL_MAX_REQUEST + 1);
        memcpy(buf, req, strlen(req));
        CU_ASSERT_EQUAL(ctlproto_parse_request(buf, CTL_MAX_REQUEST, &r, &code, msg, sizeof msg), 0);
        CU_ASSERT_STRING_EQUAL(r.verb_name, "version");
        ctlproto_request_done(&r);

        CU_ASSERT_EQUAL(ctlproto_parse_request(buf, CTL_MAX_REQUEST + 1, &r, &code, msg, sizeof msg), -EMSGSIZE);
        CU_ASSERT_STRING_EQUAL(code, CTL_ERR_TOO_LARGE);
        CU_ASSERT_STRING_EQUAL(msg, "request of 65537 bytes exceeds the limit of 65536 bytes");
        free(buf);
}

/* Messages stay valid UTF-8 however they are cut, and the outputs are optional. */
static void test_parse_messages(void) {
        const char *euro = "\xe2\x82\xac";
        char in[1024], msg[256], tiny[24];
        const char *code = NULL;
        struct ctl_request r;
        size_t off;

        off = (size_t) snprintf(in, sizeof in, "{\"verb\":\"status\",\"");
        for (int i = 0; i < 100; i++)
                off += (size_t) snprintf(in + off, sizeof in - off, "%s", euro);
        snprintf(in + off, sizeof in - off, "\":1}");

        CU_ASSERT_EQUAL(ctlproto_parse_request(in, strlen(in), &r, &code, msg, sizeof msg), -EINVAL);
        CU_ASSERT_STRING_EQUAL(code, CTL_ERR_BAD_REQUEST);
        CU_ASSERT(utf8_ok(msg));
        /* "%.64s" cut the 3-byte character after 21 whole ones. */
        CU_ASSERT_PTR_NOT_NULL(strstr(msg, "\xe2\x82\xac?\"") );

        /* A buffer too small for the message truncates it, still valid. */
        CU_ASSERT_EQUAL(ctlproto_parse_request(in, strlen(in), &r, &code, tiny, sizeof tiny), -EINVAL);
        CU_ASSERT_EQUAL(strlen(tiny), sizeof tiny - 1);
        CU_ASSERT(utf8_ok(tiny));

        /* No message buffer, no code pointer: still the right return value. */
        CU_ASSERT_EQUAL(ctlproto_parse_request("{}", 2, &r, NULL, NULL, 0), -EINVAL);
        CU_ASSERT_EQUAL(ctlproto_parse_request("{", 1, &r, &code, msg, 0), -EBADMSG);
        CU_ASSERT_STRING_EQUAL(code, CTL_ERR_BAD_JSON);
        CU_ASSERT_EQUAL(ctlproto_parse_request(NULL, 0, &r, &code, msg, sizeof msg), -EBADMSG);
        CU_ASSERT_EQUAL(ctlproto_parse_request("{}", 2, NULL, &code, msg, sizeof msg), -EINVAL);

        /* request_done is NULL-safe and idempotent. */
        ctlproto_request_done(NULL);
        CU_ASSERT_EQUAL(ctlproto_parse_request("{\"verb\":\"status\"}", 17, &r, NULL, NULL, 0), 0);
        ctlproto_request_done(&r);
        ctlproto_request_done(&r);
}

/* --- verbs ---------------------------------------------------------------- */

static void test_verbs(void) {
        static const struct {
                const char *name;
                bool mutating;
        } want[] = {
                { "status", false }, { "events", false }, { "services", false }, { "breakers", false },
                { "restart", true }, { "members", false }, { "leader", false }, { "table", false },
                { "pick", false }, { "drain", true }, { "undrain", true }, { "force-leave", true },
                { "reload", true }, { "version", false },
        };
        const struct ctl_verb *v;
        size_t n = 0;

        v = ctlproto_verbs(&n);
        CU_ASSERT_EQUAL_FATAL(n, ELEMENTSOF(want));
        for (size_t i = 0; i < n; i++) {
                CU_ASSERT_STRING_EQUAL(v[i].name, want[i].name);
                CU_ASSERT_EQUAL(v[i].mutating, want[i].mutating);
                CU_ASSERT(v[i].summary && strlen(v[i].summary) > 10);
                CU_ASSERT_PTR_EQUAL(ctlproto_verb_lookup(want[i].name), &v[i]);
                CU_ASSERT(strlen(v[i].name) <= CTL_MAX_VERB);
        }
        CU_ASSERT_PTR_NULL(ctlproto_verb_lookup("nope"));
        CU_ASSERT_PTR_NULL(ctlproto_verb_lookup("STATUS"));
        CU_ASSERT_PTR_NULL(ctlproto_verb_lookup("statu"));
        CU_ASSERT_PTR_NULL(ctlproto_verb_lookup("statuss"));
        CU_ASSERT_PTR_NULL(ctlproto_verb_lookup(""));
        CU_ASSERT_PTR_NULL(ctlproto_verb_lookup(NULL));
        CU_ASSERT_PTR_NOT_NULL(ctlproto_verbs(NULL));
}

/* --- replies -------------------------------------------------------------- */

static void check_dump(json_t *doc, const char *want) {
        size_t len = 0;
        char *s;

        CU_ASSERT_PTR_NOT_NULL_FATAL(doc);
        s = ctlproto_dump(doc, &len);
        CU_ASSERT_PTR_NOT_NULL_FATAL(s);
        if (strcmp(s, want) != 0)
                fprintf(stderr, "\ngot  %swant %s", s, want);
        CU_ASSERT_STRING_EQUAL(s, want);
        CU_ASSERT_EQUAL(len, strlen(want));
        free(s);
        json_decref(doc);
}

static void test_replies(void) {
        char big[5000];
        json_t *e;
        char *s;

        check_dump(ctlproto_ok(NULL), "{\"ok\":true,\"data\":{}}\n");
        check_dump(ctlproto_ok(json_pack("{s:i, s:s, s:n}", "a", 1, "b", "x y", "c")),
                   "{\"ok\":true,\"data\":{\"a\":1,\"b\":\"x y\",\"c\":null}}\n");
        check_dump(ctlproto_ok(json_pack("[i,i]", 1, 2)), "{\"ok\":true,\"data\":[1,2]}\n");
        check_dump(ctlproto_error(CTL_ERR_UNKNOWN_VERB, "unknown verb \"%s\"", "x"),
                   "{\"ok\":false,\"error\":{\"code\":\"unknown_verb\",\"message\":\"unknown verb \\\"x\\\"\"}}\n");
        check_dump(ctlproto_error(CTL_ERR_FAILED, "%s:%d: %s", "/etc/a.conf", 7, "bad"),
                   "{\"ok\":false,\"error\":{\"code\":\"failed\",\"message\":\"/etc/a.conf:7: bad\"}}\n");
        /* Control characters are escaped, UTF-8 kept, invalid bytes scrubbed. */
        check_dump(ctlproto_error(CTL_ERR_INTERNAL, "a\nb\t\xc3\xa9\xff\xc3"),
                   "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"a\\nb\\t\xc3\xa9??\"}}\n");
        check_dump(ctlproto_error(NULL, "x"), "{\"ok\":false,\"error\":{\"code\":\"internal\",\"message\":\"x\"}}\n");

        /* Long messages are capped, not refused. */
        memset(big, 'm', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        e = ctlproto_error(CTL_ERR_FAILED, "%s", big);
        CU_ASSERT_PTR_NOT_NULL_FATAL(e);
        CU_ASSERT_EQUAL(strlen(json_string_value(json_object_get(json_object_get(e, "error"), "message"))), 4095);
        json_decref(e);

        CU_ASSERT_PTR_NULL(ctlproto_dump(NULL, NULL));
        e = json_pack("{s:s}", "verb", "status");
        s = ctlproto_dump(e, NULL);
        CU_ASSERT_STRING_EQUAL(s, "{\"verb\":\"status\"}\n");
        free(s);
        json_decref(e);
}

/* --- client --------------------------------------------------------------- */

static void set_sun_path(struct sockaddr_un *sa, const char *path) {
        size_t len = strlen(path);

        CU_ASSERT_FATAL(len < sizeof sa->sun_path);
        memcpy(sa->sun_path, path, len + 1);
}

static int listen_at(const char *path) {
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        int fd;

        unlink(path);
        set_sun_path(&sa, path);
        fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0);
        CU_ASSERT_FATAL(listen(fd, 4) == 0);
        return fd;
}

static void write_all(int fd, const char *p, size_t len) {
        while (len > 0) {
                ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
                if (n <= 0)
                        return;
                p += n;
                len -= (size_t) n;
        }
}

/*
 * What a forked fake server does with its one connection. The child exits
 * 0 when the request it read equals `expect` (or expect is NULL), 2 when not.
 */
struct script {
        const char *name;
        bool read_request;      /* read one line before replying */
        const char *reply;
        size_t reply_len;       /* 0: strlen(reply) */
        size_t chunk;           /* 0: one write */
        bool hold;              /* keep the connection open until killed */
        const char *expect;
        int r;                  /* ctlproto_call's result */
        bool ok;                /* reply's "ok" when r == 0 */
};

static pid_t fake_server(int lfd, const struct script *s) {
        pid_t pid = fork();

        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
                char req[4096];
                size_t len = 0, rlen = s->reply_len ? s->reply_len : (s->reply ? strlen(s->reply) : 0);
                int fd = accept(lfd, NULL, NULL), status = 0;

                if (fd < 0)
                        _exit(3);
                if (s->read_request) {
                        while (len < sizeof req - 1) {
                                ssize_t n = read(fd, req + len, sizeof req - 1 - len);
                                if (n <= 0)
                                        break;
                                len += (size_t) n;
                                if (memchr(req, '\n', len))
                                        break;
                        }
                        req[len] = '\0';
                        if (s->expect && strcmp(req, s->expect) != 0)
                                status = 2;
                }
                for (size_t off = 0; off < rlen;) {
                        size_t n = s->chunk && s->chunk < rlen - off ? s->chunk : rlen - off;
                        write_all(fd, s->reply + off, n);
                        off += n;
                        if (s->chunk)
                                usleep(1000);
                }
                if (s->hold)
                        for (;;)
                                pause();
                close(fd);
                _exit(status);
        }
        return pid;
}

static int reap(pid_t pid, bool kill_it) {
        int status;

        if (kill_it)
                kill(pid, SIGKILL);
        if (waitpid(pid, &status, 0) != pid)
                return -1;
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return kill_it && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL ? 0 : 100;
}

static const struct script scripts[] = {
        { "ok reply, request checked", true, "{\"ok\":true,\"data\":{\"x\":1}}\n", 0, 0, false,
          "{\"verb\":\"status\",\"args\":{}}\n", 0, true },
        { "error reply", true, "{\"ok\":false,\"error\":{\"code\":\"unknown_verb\",\"message\":\"m\"}}\n", 0, 0,
          false, NULL, 0, false },
        { "reply in 1-byte chunks", true, "{\"ok\":true,\"data\":null}\n", 0, 1, false, NULL, 0, true },
        { "reply then hold", true, "{\"ok\":true,\"data\":{}}\n", 0, 0, true, NULL, 0, true },
        { "refusal before reading", false,
          "{\"ok\":false,\"error\":{\"code\":\"too_many_clients\",\"message\":\"busy\"}}\n", 0, 0, false, NULL, 0,
          false },
        { "garbage", true, "hello world\n", 0, 0, false, NULL, -EBADMSG, false },
#define NUL_REPLY "{\"ok\":true,\0\"data\":{}}\n"
        { "NUL in reply", true, NUL_REPLY, sizeof NUL_REPLY - 1, 0, false, NULL, -EBADMSG, false },
#undef NUL_REPLY
        { "array", true, "[1]\n", 0, 0, false, NULL, -EBADMSG, false },
        { "ok not bool", true, "{\"ok\":\"yes\",\"data\":{}}\n", 0, 0, false, NULL, -EBADMSG, false },
        { "ok without data", true, "{\"ok\":true}\n", 0, 0, false, NULL, -EBADMSG, false },
        { "error without code", true, "{\"ok\":false,\"error\":{\"message\":\"m\"}}\n", 0, 0, false, NULL,
          -EBADMSG, false },
        { "error code not string", true, "{\"ok\":false,\"error\":{\"code\":1,\"message\":\"m\"}}\n", 0, 0, false,
          NULL, -EBADMSG, false },
        { "duplicate key", true, "{\"ok\":true,\"ok\":true,\"data\":{}}\n", 0, 0, false, NULL, -EBADMSG, false },
        { "torn reply", true, "{\"ok\":true,\"da", 0, 0, false, NULL, -EBADMSG, false },
        { "closed without reply", true, NULL, 0, 0, false, NULL, -ECONNRESET, false },
        { "never answers", true, NULL, 0, 0, true, NULL, -ETIMEDOUT, false },
        { "half a reply, then silence", true, "{\"ok\":tr", 0, 0, true, NULL, -ETIMEDOUT, false },
};

static void test_call_scripted(void) {
        char path[256];

        snprintf(path, sizeof path, "%s/fake.sock", tmpdir);
        for (size_t i = 0; i < ELEMENTSOF(scripts); i++) {
                const struct script *s = &scripts[i];
                int lfd = listen_at(path);
                pid_t pid = fake_server(lfd, s);
                json_t *reply = NULL;
                uint64_t t0 = now_us(), dt;
                int r, st;

                close(lfd);
                /* Short only where the timeout is the point; a loaded machine is slow. */
                r = ctlproto_call(path, "status", NULL, s->r == -ETIMEDOUT ? 300 * 1000 : 30 * 1000 * 1000, &reply);
                dt = now_us() - t0;
                if (r != s->r)
                        fprintf(stderr, "\nscript \"%s\": r=%d want %d\n", s->name, r, s->r);
                CU_ASSERT_EQUAL(r, s->r);
                if (r == 0) {
                        CU_ASSERT_PTR_NOT_NULL(reply);
                        CU_ASSERT_EQUAL(json_is_true(json_object_get(reply, "ok")), s->ok);
                        json_decref(reply);
                } else {
                        CU_ASSERT_PTR_NULL(reply);
                }
                if (s->r == -ETIMEDOUT) {
                        CU_ASSERT(dt >= 290 * 1000 && dt < 10 * 1000 * 1000);
                } else {
                        CU_ASSERT(dt < 30 * 1000 * 1000);
                }
                st = reap(pid, s->hold);
                if (st != 0)
                        fprintf(stderr, "\nscript \"%s\": server exit %d\n", s->name, st);
                CU_ASSERT_EQUAL(st, 0);
        }
        unlink(path);
}

/* A reply longer than CTL_MAX_REPLY is cut off, not buffered without end. */
static void test_call_reply_too_large(void) {
        size_t len = (size_t) CTL_MAX_REPLY + 100;
        char *big = malloc(len), path[256];
        struct script s = { "huge", true, big, len, 0, false, NULL, -EMSGSIZE, false };
        json_t *reply = NULL;
        int lfd;
        pid_t pid;

        CU_ASSERT_PTR_NOT_NULL_FATAL(big);
        memset(big, ' ', len);
        big[0] = '{';
        snprintf(path, sizeof path, "%s/huge.sock", tmpdir);
        lfd = listen_at(path);
        pid = fake_server(lfd, &s);
        close(lfd);
        CU_ASSERT_EQUAL(ctlproto_call(path, "status", NULL, 30 * 1000 * 1000, &reply), -EMSGSIZE);
        CU_ASSERT_PTR_NULL(reply);
        CU_ASSERT_EQUAL(reap(pid, false), 0);
        free(big);
        unlink(path);
}

/* The request on the wire is exactly {"verb":V,"args":ARGS} and ARGS stays the caller's. */
static void test_call_args_borrowed(void) {
        struct script s = { "args", true, "{\"ok\":true,\"data\":{}}\n", 0, 0, false,
                            "{\"verb\":\"events\",\"args\":{\"limit\":5,\"kind\":\"agent_started\"}}\n", 0, true };
        json_t *args = json_pack("{s:i, s:s}", "limit", 5, "kind", "agent_started"), *reply = NULL;
        char path[256];
        int lfd;
        pid_t pid;

        snprintf(path, sizeof path, "%s/args.sock", tmpdir);
        lfd = listen_at(path);
        pid = fake_server(lfd, &s);
        close(lfd);
        CU_ASSERT_EQUAL(ctlproto_call(path, "events", args, 30 * 1000 * 1000, &reply), 0);
        CU_ASSERT_EQUAL(reap(pid, false), 0);
        CU_ASSERT_EQUAL(args->refcount, 1);
        json_decref(args);
        json_decref(reply);
        unlink(path);
}

static void test_call_errors(void) {
        char path[256], longpath[200];
        struct sockaddr_un sa = { .sun_family = AF_UNIX };
        json_t *reply = NULL, *arr = json_array(), *big;
        char *pad;
        int fd;

        snprintf(path, sizeof path, "%s/missing.sock", tmpdir);
        CU_ASSERT_EQUAL(ctlproto_call(path, "status", NULL, 1000000, &reply), -ENOENT);
        snprintf(path, sizeof path, "%s/no/such/dir.sock", tmpdir);
        CU_ASSERT_EQUAL(ctlproto_call(path, "status", NULL, 1000000, &reply), -ENOENT);

        memset(longpath, 'x', sizeof longpath - 1);
        longpath[0] = '/';
        longpath[sizeof longpath - 1] = '\0';
        CU_ASSERT_EQUAL(ctlproto_call(longpath, "status", NULL, 1000000, &reply), -ENAMETOOLONG);
        CU_ASSERT_EQUAL(ctlproto_call("", "status", NULL, 1000000, &reply), -EINVAL);
        CU_ASSERT_EQUAL(ctlproto_call(NULL, "status", NULL, 1000000, &reply), -EINVAL);
        CU_ASSERT_EQUAL(ctlproto_call(path, NULL, NULL, 1000000, &reply), -EINVAL);
        CU_ASSERT_EQUAL(ctlproto_call(path, "status", NULL, 1000000, NULL), -EINVAL);
        CU_ASSERT_EQUAL(ctlproto_call(path, "status", arr, 1000000, &reply), -EINVAL);
        CU_ASSERT_EQUAL(ctlproto_call(path, "st\xff", NULL, 1000000, &reply), -EINVAL);
        json_decref(arr);

        /* Too large a request is refused before any connection is tried. */
        pad = malloc(CTL_MAX_REQUEST + 1);
        CU_ASSERT_PTR_NOT_NULL_FATAL(pad);
        memset(pad, 'a', CTL_MAX_REQUEST);
        pad[CTL_MAX_REQUEST] = '\0';
        big = json_pack("{s:s}", "pad", pad);
        CU_ASSERT_EQUAL(ctlproto_call(path, "status", big, 1000000, &reply), -EMSGSIZE);
        json_decref(big);
        free(pad);

        /* A socket file nobody listens on: what a crashed daemon leaves. */
        snprintf(path, sizeof path, "%s/stale.sock", tmpdir);
        set_sun_path(&sa, path);
        fd = socket(AF_UNIX, SOCK_STREAM, 0);
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT_FATAL(bind(fd, (struct sockaddr *) &sa, sizeof sa) == 0);
        close(fd);
        CU_ASSERT_EQUAL(ctlproto_call(path, "status", NULL, 1000000, &reply), -ECONNREFUSED);
        CU_ASSERT_PTR_NULL(reply);
        unlink(path);
}

/* A socket we may not write to is -EACCES; root bypasses modes, so drop to nobody. */
static void test_call_eacces(void) {
        char path[256];
        int lfd, status;
        pid_t pid;

        snprintf(path, sizeof path, "%s/private.sock", tmpdir);
        lfd = listen_at(path);
        CU_ASSERT_FATAL(chmod(path, 0600) == 0);
        CU_ASSERT_FATAL(chmod(tmpdir, 0711) == 0);
        pid = fork();
        CU_ASSERT_FATAL(pid >= 0);
        if (pid == 0) {
                json_t *reply = NULL;
                if (setgroups(0, NULL) < 0 || setgid(65534) < 0 || setuid(65534) < 0)
                        _exit(3);
                _exit(ctlproto_call(path, "status", NULL, 1000000, &reply) == -EACCES ? 0 : 1);
        }
        CU_ASSERT_EQUAL(waitpid(pid, &status, 0), pid);
        CU_ASSERT(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        chmod(tmpdir, 0700);
        close(lfd);
        unlink(path);
}

int main(void) {
        CU_TestInfo parse_tests[] = {
                { "error classes and good requests", test_parse_table },
                { "size limit", test_parse_size_limit },
                { "messages", test_parse_messages },
                CU_TEST_INFO_NULL,
        };
        CU_TestInfo misc_tests[] = {
                { "verb table", test_verbs },
                { "reply dumps", test_replies },
                CU_TEST_INFO_NULL,
        };
        CU_TestInfo call_tests[] = {
                { "scripted servers", test_call_scripted },
                { "reply over CTL_MAX_REPLY", test_call_reply_too_large },
                { "args on the wire, borrowed", test_call_args_borrowed },
                { "argument and connect errors", test_call_errors },
                CU_TEST_INFO_NULL,
                CU_TEST_INFO_NULL,
        };
        CU_SuiteInfo suites[] = {
                { "ctlproto parse", NULL, NULL, NULL, NULL, parse_tests },
                { "ctlproto verbs and replies", NULL, NULL, NULL, NULL, misc_tests },
                { "ctlproto call", suite_init, suite_clean, NULL, NULL, call_tests },
                CU_SUITE_INFO_NULL,
        };

        if (geteuid() == 0)
                call_tests[4] = (CU_TestInfo) { "socket refuses us: -EACCES", test_call_eacces };
        else
                printf("skipping -EACCES test: needs root to drop to another uid\n");
        return unit_run(suites);
}
