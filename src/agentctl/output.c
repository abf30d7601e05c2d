#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "agentctl/agentctl.h"

#define COLUMN_GAP 2

struct output_table {
        size_t n_cols;
        char **headers;         /* NULL: no header line */
        bool header_printed;
        bool *right;            /* per column: right-aligned */
        size_t *widths;         /* per column: widest cell seen so far */
        char **cells;           /* n_rows * n_cols, pending until the next flush */
        size_t n_rows;
        size_t cap_rows;
};

/*
 * Returns a copy of S that is safe to put on a terminal: the daemon relays
 * text that outsiders influence (event details, unit names), so control
 * characters are shown escaped instead of moving the cursor or breaking the
 * table's lines.
 */
static char *sanitize(const char *s) {
        size_t n = 0;
        char *out, *p;

        /* An empty cell would read as a column shifted left. */
        if (!s || !*s)
                s = "-";
        for (const unsigned char *q = (const unsigned char *) s; *q; q++)
                n += (*q < 0x20 || *q == 0x7f) ? 4 : 1;
        out = malloc(n + 1);
        if (!out)
                return NULL;
        p = out;
        for (const unsigned char *q = (const unsigned char *) s; *q; q++) {
                if (*q == '\n') {
                        *p++ = '\\';
                        *p++ = 'n';
                } else if (*q == '\t') {
                        *p++ = '\\';
                        *p++ = 't';
                } else if (*q == '\r') {
                        *p++ = '\\';
                        *p++ = 'r';
                } else if (*q < 0x20 || *q == 0x7f) {
                        p += sprintf(p, "\\x%02x", *q);
                } else {
                        *p++ = (char) *q;
                }
        }
        *p = '\0';
        return out;
}

/*
 * Display width in UTF-8 code points: good enough to align names and
 * details, which are ASCII in practice, without depending on the locale.
 */
static size_t text_width(const char *s) {
        size_t w = 0;

        for (const unsigned char *q = (const unsigned char *) s; *q; q++)
                if ((*q & 0xc0) != 0x80)
                        w++;
        return w;
}

int output_table_new(size_t n_cols, const char *const *headers, struct output_table **ret) {
        struct output_table *t;

        if (n_cols == 0)
                return -EINVAL;
        t = calloc(1, sizeof(*t));
        if (!t)
                return -ENOMEM;
        t->n_cols = n_cols;
        t->right = calloc(n_cols, sizeof(*t->right));
        t->widths = calloc(n_cols, sizeof(*t->widths));
        if (!t->right || !t->widths)
                goto nomem;
        if (headers) {
                t->headers = calloc(n_cols, sizeof(*t->headers));
                if (!t->headers)
                        goto nomem;
                for (size_t i = 0; i < n_cols; i++) {
                        t->headers[i] = sanitize(headers[i]);
                        if (!t->headers[i])
                                goto nomem;
                        t->widths[i] = text_width(t->headers[i]);
                }
        }
        *ret = t;
        return 0;
nomem:
        output_table_free(t);
        return -ENOMEM;
}

static void drop_rows(struct output_table *t) {
        for (size_t i = 0; i < t->n_rows * t->n_cols; i++)
                free(t->cells[i]);
        t->n_rows = 0;
}

void output_table_free(struct output_table *t) {
        if (!t)
                return;
        drop_rows(t);
        free(t->cells);
        if (t->headers)
                for (size_t i = 0; i < t->n_cols; i++)
                        free(t->headers[i]);
        free(t->headers);
        free(t->right);
        free(t->widths);
        free(t);
}

void output_table_align_right(struct output_table *t, size_t col) {
        if (t && col < t->n_cols)
                t->right[col] = true;
}

int output_table_add(struct output_table *t, const char *const *cells) {
        char **row;

        if (t->n_rows == t->cap_rows) {
                size_t cap = t->cap_rows ? t->cap_rows * 2 : 16;
                char **c;

                if (cap > SIZE_MAX / t->n_cols / sizeof(*c))
                        return -ENOMEM;
                c = realloc(t->cells, cap * t->n_cols * sizeof(*c));
                if (!c)
                        return -ENOMEM;
                t->cells = c;
                t->cap_rows = cap;
        }
        row = t->cells + t->n_rows * t->n_cols;
        for (size_t i = 0; i < t->n_cols; i++) {
                row[i] = sanitize(cells[i]);
                if (!row[i]) {
                        while (i-- > 0)
                                free(row[i]);
                        return -ENOMEM;
                }
        }
        /* Widths are only updated once the whole row is in, so a failed add changes nothing. */
        for (size_t i = 0; i < t->n_cols; i++) {
                size_t w = text_width(row[i]);

                if (w > t->widths[i])
                        t->widths[i] = w;
        }
        t->n_rows++;
        return 0;
}

int output_kv(struct output_table *t, const char *key, const char *fmt, ...) {
        _cleanup_free_ char *k = NULL, *v = NULL;
        va_list ap;
        int r;

        if (t->n_cols != 2)
                return -EINVAL;
        if (asprintf(&k, "%s:", key) < 0) {
                k = NULL;
                return -ENOMEM;
        }
        va_start(ap, fmt);
        r = vasprintf(&v, fmt, ap);
        va_end(ap);
        if (r < 0) {
                v = NULL;
                return -ENOMEM;
        }
        return output_table_add(t, (const char *const[]) { k, v });
}

/* Prints one row; the last column is not padded, so no line ends in blanks. */
static void print_row(const struct output_table *t, char *const *row, FILE *f) {
        for (size_t i = 0; i < t->n_cols; i++) {
                size_t pad = t->widths[i] - text_width(row[i]);
                bool last = i + 1 == t->n_cols;

                if (i > 0)
                        fprintf(f, "%*s", COLUMN_GAP, "");
                if (t->right[i])
                        fprintf(f, "%*s%s", (int) pad, "", row[i]);
                else if (last)
                        fputs(row[i], f);
                else
                        fprintf(f, "%s%*s", row[i], (int) pad, "");
        }
        fputc('\n', f);
}

int output_table_flush(struct output_table *t, FILE *f) {
        if (t->headers && !t->header_printed) {
                print_row(t, t->headers, f);
                t->header_printed = true;
        }
        for (size_t r = 0; r < t->n_rows; r++)
                print_row(t, t->cells + r * t->n_cols, f);
        drop_rows(t);
        if (fflush(f) != 0 || ferror(f))
                return -EIO;
        return 0;
}

int output_json(const json_t *doc, bool compact) {
        size_t flags = compact ? JSON_COMPACT : JSON_INDENT(2);

        if (json_dumpf(doc, stdout, flags | JSON_ENCODE_ANY) < 0)
                return -EIO;
        if (fputc('\n', stdout) == EOF || fflush(stdout) != 0)
                return -EIO;
        return 0;
}

const char *output_field_str(const json_t *o, const char *key) {
        return json_string_value(json_object_get(o, key));
}

bool output_field_int(const json_t *o, const char *key, json_int_t *ret) {
        const json_t *v = json_object_get(o, key);

        if (!json_is_integer(v))
                return false;
        *ret = json_integer_value(v);
        return true;
}

const char *output_format_seconds(uint64_t seconds, char *buf, size_t len) {
        static const struct {
                char unit;
                uint64_t seconds;
        } units[] = {
                { 'd', 86400 }, { 'h', 3600 }, { 'm', 60 }, { 's', 1 },
        };
        size_t off = 0;

        if (len == 0)
                return buf;
        buf[0] = '\0';
        if (seconds == 0) {
                snprintf(buf, len, "0s");
                return buf;
        }
        for (size_t i = 0; i < ELEMENTSOF(units); i++) {
                uint64_t n = seconds / units[i].seconds;
                int w;

                if (n == 0)
                        continue;
                seconds %= units[i].seconds;
                w = snprintf(buf + off, len - off, "%llu%c", (unsigned long long) n, units[i].unit);
                if (w < 0 || (size_t) w >= len - off)
                        break;
                off += (size_t) w;
        }
        return buf;
}
