/* slimmer's optional compiled module (slimmer.compiled says whether it runs): the fast path of
 * slimmer.tar.scan.TarScanner (the pure-Python scanner is the fallback and the reference), the
 * loop that stacks a layer (slimmer.layers.MergedFS.stack) and madvise without the GIL.
 *
 * Fast.scan(buffer, pos, base) parses as many members as it can from pos on, appending each
 * entry to columns held here (no Python object per entry but its path), and passes over file
 * data without touching it. It handles only the canonical forms: ustar/GNU/v7 headers whose
 * checksum is exact and whose numbers are plain octal, GNU long names and links, and PAX
 * headers without sparse records, all within the buffer. Anything else (an end-of-archive
 * block, base-256 numbers, a checksum TarScanner checks another way, sparse members, names
 * that need normalising, a sequence that runs past the buffer) is left to the Python code at
 * the exact block where it starts, so both give the same entries and the same errors by
 * construction. Python is called per member only for members whose data a sink wants, and
 * per distinct directory (and base name within a rule group) to learn the category rule.
 * With ``spans`` it records where each member lies as TarScanner does: where its first header
 * block starts (extended headers included, a global PAX header not) and where its data and
 * padding end.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define BLOCK 512
#define MAX_META (1 << 20)

enum { K_FILE, K_DIR, K_SYMLINK, K_HARDLINK, K_CHAR, K_BLOCK, K_FIFO };
enum { CODE_STOP = 0, CODE_SKIP = 1, CODE_VISIT = 2 };
enum { MODE_NONE = 0, MODE_ALL = 1, MODE_SELECT = 2 };

typedef struct {
    char *p;
    Py_ssize_t len, cap;
} Buf;

static int buf_put(Buf *b, const void *src, Py_ssize_t n) {
    if (b->len + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap * 2 : 4096;
        while (cap < b->len + n) cap *= 2;
        char *p = PyMem_Realloc(b->p, cap);
        if (!p) {
            PyErr_NoMemory();
            return -1;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, src, n);
    b->len += n;
    return 0;
}

typedef struct {
    PyObject_HEAD
    PyObject *paths, *links;
    Buf kinds, sizes, modes, uids, gids, mtimes, offsets, rules, spans;
    Py_ssize_t count;
    long long headers;
    int detail, mode, unmatched, want_spans;
    long long min_size;
    PyObject *suffixes, *prefixes; /* tuples of bytes */
    PyObject *group_fn, *rule_fn;  /* classifier.group, classifier.rule, or NULL */
    PyObject *visited;             /* set of paths visited */
    char *last_dir;
    Py_ssize_t last_dir_len, last_dir_cap;
    int have_last;
    PyObject *last_dir_str, *last_group;
    PyObject *empty;
} Fast;

static void Fast_dealloc(Fast *self) {
    Py_XDECREF(self->paths);
    Py_XDECREF(self->links);
    Buf *bufs[] = {&self->kinds, &self->sizes, &self->modes, &self->uids, &self->gids,
                   &self->mtimes, &self->offsets, &self->rules, &self->spans};
    for (size_t i = 0; i < sizeof(bufs) / sizeof(bufs[0]); i++) PyMem_Free(bufs[i]->p);
    Py_XDECREF(self->suffixes);
    Py_XDECREF(self->prefixes);
    Py_XDECREF(self->group_fn);
    Py_XDECREF(self->rule_fn);
    Py_XDECREF(self->visited);
    PyMem_Free(self->last_dir);
    Py_XDECREF(self->last_dir_str);
    Py_XDECREF(self->last_group);
    Py_XDECREF(self->empty);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Fast(detail, mode, min_size, suffixes, prefixes, unmatched, classifier, visited, spans) */
static int Fast_init(Fast *self, PyObject *args, PyObject *kw) {
    int detail, mode, unmatched, want_spans;
    long long min_size;
    PyObject *suffixes, *prefixes, *classifier, *visited;
    if (!PyArg_ParseTuple(args, "iiLO!O!pOO!p", &detail, &mode, &min_size, &PyTuple_Type, &suffixes,
                          &PyTuple_Type, &prefixes, &unmatched, &classifier, &PySet_Type, &visited, &want_spans))
        return -1;
    self->want_spans = want_spans;
    self->detail = detail;
    self->mode = mode;
    self->min_size = min_size;
    self->unmatched = unmatched;
    Py_INCREF(suffixes);
    self->suffixes = suffixes;
    Py_INCREF(prefixes);
    self->prefixes = prefixes;
    if (classifier != Py_None) {
        self->group_fn = PyObject_GetAttrString(classifier, "group");
        self->rule_fn = PyObject_GetAttrString(classifier, "rule");
        if (!self->group_fn || !self->rule_fn) return -1;
    }
    Py_INCREF(visited);
    self->visited = visited;
    self->paths = PyList_New(0);
    self->links = PyList_New(0);
    self->empty = PyUnicode_FromString("");
    if (!self->paths || !self->links || !self->empty) return -1;
    return 0;
}

/* ---- fields --------------------------------------------------------------------------- */

/* Parse a numeric header field the way TarScanner._num does, canonical forms only: leading
 * spaces, octal digits, then only NULs and spaces. Return 0 and set *out, or -1 (not canonical:
 * leave the header to Python). */
static int octal(const unsigned char *f, int n, long long *out) {
    int i = 0;
    long long v = 0;
    while (i < n && f[i] == ' ') i++;
    int digits = 0;
    while (i < n && f[i] >= '0' && f[i] <= '7') {
        v = v * 8 + (f[i] - '0');
        i++;
        digits++;
    }
    if (digits > 21) return -1;
    for (; i < n; i++)
        if (f[i] != 0 && f[i] != ' ') return -1;
    if (!digits) {
        /* all spaces or NULs: Python's int(b"" or b"0") is 0, but int(b" ", 8) fails; only
         * an empty rstrip is 0, which is all NULs/spaces after leading spaces: the same */
        v = 0;
    }
    *out = v;
    return 0;
}

static Py_ssize_t field_len(const unsigned char *f, Py_ssize_t n) {
    const unsigned char *z = memchr(f, 0, n);
    return z ? z - f : n;
}

static PyObject *decode(const char *s, Py_ssize_t n) {
    return PyUnicode_DecodeUTF8(s, n, "surrogateescape");
}

/* A name whose model path is itself without trailing slashes, as TarScanner._add makes it:
 * not absolute, no NUL, no empty, "." or ".." component. Python normalises names that start
 * with "." or hold "//" or "/." (which for these gives the same path), checking their depth
 * with backslashes read as slashes first: those holding a backslash are left to it. */
static int plain_name(const char *s, Py_ssize_t n) {
    if (n == 0 || s[0] == '/' || memchr(s, 0, n)) return 0;
    Py_ssize_t end = n;
    while (end > 0 && s[end - 1] == '/') end--;
    if (end == 0) return 0;
    int normalised = s[0] == '.' || end < n - 1;
    Py_ssize_t start = 0;
    for (Py_ssize_t i = 0; i <= end; i++) {
        if (i == end || s[i] == '/') {
            Py_ssize_t len = i - start;
            if (len == 0) return 0;
            if (s[start] == '.') {
                if (len == 1 || (len == 2 && s[start + 1] == '.')) return 0;
                normalised = 1;
            }
            start = i + 1;
        }
    }
    if (normalised && memchr(s, '\\', n)) return 0;
    return 1;
}

/* Whether s[0:n] holds '/' followed by c. */
static int has_pair(const char *s, Py_ssize_t n, char c) {
    for (Py_ssize_t i = 0; i + 1 < n; i++)
        if (s[i] == '/' && s[i + 1] == c) return 1;
    return 0;
}

/* ---- PAX ------------------------------------------------------------------------------ */

typedef struct {
    const char *path, *linkpath, *size, *uid, *gid, *mtime;
    Py_ssize_t path_n, linkpath_n, size_n, uid_n, gid_n, mtime_n;
    int any;
} Pax;

/* Parse PAX records as slimmer.tar.scan.pax_records does; return 0, or -1 for anything
 * Python should see (malformed records, sparse records). Later records override. */
static int pax_parse(const char *raw, Py_ssize_t n, Pax *pax) {
    Py_ssize_t pos = 0;
    while (pos < n) {
        if (raw[pos] == 0) break;
        const char *sp = memchr(raw + pos, ' ', n - pos);
        if (!sp) return -1;
        Py_ssize_t length = 0;
        const char *q = raw + pos;
        if (q == sp) return -1;
        for (; q < sp; q++) {
            if (*q < '0' || *q > '9') return -1;
            length = length * 10 + (*q - '0');
            if (length > n) return -1;
        }
        if (length <= 0 || pos + length > n) return -1;
        const char *rec = sp + 1, *end = raw + pos + length - 1;
        if (rec > end) return -1;
        const char *eq = memchr(rec, '=', end - rec);
        if (!eq) return -1;
        Py_ssize_t kn = eq - rec;
        const char *val = eq + 1;
        Py_ssize_t vn = end - val;
        if (kn >= 10 && memcmp(rec, "GNU.sparse", 10) == 0) return -1;
#define KEY(name, field)                                              \
    if (kn == (Py_ssize_t)strlen(name) && memcmp(rec, name, kn) == 0) { \
        pax->field = val;                                             \
        pax->field##_n = vn;                                          \
    }
        KEY("path", path) else KEY("linkpath", linkpath) else KEY("size", size) else KEY("uid", uid) else KEY(
            "gid", gid) else KEY("mtime", mtime)
#undef KEY
        pax->any = 1;
        pos += length;
    }
    return 0;
}

static int decimal(const char *s, Py_ssize_t n, long long *out) {
    if (n <= 0 || n > 18) return -1;
    long long v = 0;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* int(float(text)) for plain "digits[.digits]" */
static int pax_time(const char *s, Py_ssize_t n, long long *out) {
    Py_ssize_t i = 0;
    while (i < n && s[i] >= '0' && s[i] <= '9') i++;
    if (i == 0 || i > 15) return -1;
    if (i < n) {
        if (s[i] != '.') return -1;
        for (Py_ssize_t j = i + 1; j < n; j++)
            if (s[j] < '0' || s[j] > '9') return -1;
    }
    char tmp[64];
    if (n >= (Py_ssize_t)sizeof(tmp)) return -1;
    memcpy(tmp, s, n);
    tmp[n] = 0;
    double d = PyOS_string_to_double(tmp, NULL, NULL);
    if (d == -1.0 && PyErr_Occurred()) {
        PyErr_Clear();
        return -1;
    }
    *out = (long long)d;
    return 0;
}

/* ---- rules ---------------------------------------------------------------------------- */

/* Return the rule index of file ``path`` (UTF-8 bytes s[0:n]) from the classifier, asking it
 * once per distinct directory and, within a rule group, once per base name. -2 when there is
 * no classifier; -3 with an exception set. */
static long rule_of(Fast *self, PyObject *path, const char *s, Py_ssize_t n) {
    if (!self->group_fn) return -2;
    const char *slash = NULL;
    for (Py_ssize_t i = n - 1; i >= 0; i--)
        if (s[i] == '/') {
            slash = s + i;
            break;
        }
    Py_ssize_t dn = slash ? slash - s : 0;
    if (!self->have_last || dn != self->last_dir_len || memcmp(self->last_dir, s, dn) != 0) {
        PyObject *dir = decode(s, dn);
        if (!dir) return -3;
        PyObject *group = PyObject_CallOneArg(self->group_fn, dir);
        if (!group) {
            Py_DECREF(dir);
            return -3;
        }
        if (dn > self->last_dir_cap) {
            char *p = PyMem_Realloc(self->last_dir, dn * 2 + 16);
            if (!p) {
                Py_DECREF(dir);
                Py_DECREF(group);
                PyErr_NoMemory();
                return -3;
            }
            self->last_dir = p;
            self->last_dir_cap = dn * 2 + 16;
        }
        memcpy(self->last_dir, s, dn);
        self->last_dir_len = dn;
        self->have_last = 1;
        Py_XSETREF(self->last_dir_str, dir);
        Py_XSETREF(self->last_group, group);
    }
    const char *b = slash ? slash + 1 : s;
    PyObject *base = decode(b, n - (b - s));
    if (!base) return -3;
    PyObject *found = NULL;
    if (self->last_group != Py_None) {
        found = PyDict_GetItemWithError(self->last_group, base);
        if (!found && PyErr_Occurred()) {
            Py_DECREF(base);
            return -3;
        }
        Py_XINCREF(found);
    }
    if (!found) {
        found = PyObject_CallFunctionObjArgs(self->rule_fn, self->last_dir_str, base, NULL);
        if (!found) {
            Py_DECREF(base);
            return -3;
        }
        if (self->last_group != Py_None && PyDict_SetItem(self->last_group, base, found) < 0) {
            Py_DECREF(base);
            Py_DECREF(found);
            return -3;
        }
    }
    Py_DECREF(base);
    long r = PyLong_AsLong(found);
    Py_DECREF(found);
    if (r == -1 && PyErr_Occurred()) return -3;
    return r;
}

static int ends_with(PyObject *tuple, const char *s, Py_ssize_t n, int prefix) {
    Py_ssize_t k = PyTuple_GET_SIZE(tuple);
    for (Py_ssize_t i = 0; i < k; i++) {
        PyObject *b = PyTuple_GET_ITEM(tuple, i);
        Py_ssize_t m = PyBytes_GET_SIZE(b);
        if (m <= n && memcmp(prefix ? s : s + n - m, PyBytes_AS_STRING(b), m) == 0) return 1;
    }
    return 0;
}

/* ---- columns -------------------------------------------------------------------------- */

static int append(Fast *self, PyObject *path, int kind, long long size, long long mode, long long uid,
                  long long gid, PyObject *link, long long mtime, long long offset, long rule, long long start,
                  long long end) {
    char k = (char)kind;
    short r = (short)rule;
    if (PyList_Append(self->paths, path) < 0 || PyList_Append(self->links, link) < 0) return -1;
    if (buf_put(&self->kinds, &k, 1) < 0 || buf_put(&self->sizes, &size, 8) < 0 || buf_put(&self->modes, &mode, 8) < 0 ||
        buf_put(&self->uids, &uid, 8) < 0 || buf_put(&self->gids, &gid, 8) < 0 ||
        buf_put(&self->mtimes, &mtime, 8) < 0 || buf_put(&self->offsets, &offset, 8) < 0 ||
        buf_put(&self->rules, &r, 2) < 0)
        return -1;
    if (self->want_spans && (buf_put(&self->spans, &start, 8) < 0 || buf_put(&self->spans, &end, 8) < 0)) return -1;
    self->count++;
    return 0;
}

static const char *KIND_NAMES[] = {"file", "dir", "symlink", "hardlink", "char", "block", "fifo"};

static PyObject *entry_tuple(Fast *self, Py_ssize_t i) {
    long long *sz = (long long *)self->sizes.p, *md = (long long *)self->modes.p, *u = (long long *)self->uids.p,
              *g = (long long *)self->gids.p, *mt = (long long *)self->mtimes.p, *of = (long long *)self->offsets.p;
    return Py_BuildValue("(OsLLLLOLL)", PyList_GET_ITEM(self->paths, i), KIND_NAMES[(int)self->kinds.p[i]], sz[i],
                         md[i], u[i], g[i], PyList_GET_ITEM(self->links, i), mt[i], of[i]);
}

/* ---- the scan ------------------------------------------------------------------------- */

static PyObject *result(Py_ssize_t pos, int code, PyObject *extra) {
    if (!extra) return NULL;
    PyObject *out = Py_BuildValue("(niO)", pos, code, extra);
    Py_DECREF(extra);
    return out;
}

static PyObject *Fast_scan(Fast *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t pos;
    long long base;
    if (!PyArg_ParseTuple(args, "y*nL", &view, &pos, &base)) return NULL;
    const unsigned char *buf = view.buf;
    Py_ssize_t n = view.len;
    PyObject *out = NULL;
    while (n - pos >= BLOCK) {
        Py_ssize_t start = pos, at = pos, member_start = pos;
        long long headers = 0;
        const char *longname = NULL, *longlink = NULL;
        Py_ssize_t longname_n = 0, longlink_n = 0;
        Pax pax;
        memset(&pax, 0, sizeof(pax));
        int bail = 0;
        const unsigned char *h;
        long long size;
        unsigned char type;
        for (;;) {
            if (n - at < BLOCK) {
                bail = 1;
                break;
            }
            h = buf + at;
            if (!(pax.any || longname || longlink)) member_start = at; /* as TarScanner.feed sets it */
            long long chk;
            if (octal(h + 148, 8, &chk) < 0) {
                bail = 1;
                break;
            }
            unsigned long sum = 256;
            for (int i = 0; i < 148; i++) sum += h[i];
            for (int i = 156; i < BLOCK; i++) sum += h[i];
            if ((long long)sum != chk) {
                bail = 1;
                break;
            }
            if (octal(h + 124, 12, &size) < 0 || size > ((long long)1 << 40)) {
                bail = 1;
                break;
            }
            headers++;
            type = h[156];
            if (type == 'L' || type == 'K' || type == 'x' || type == 'g') {
                Py_ssize_t pad = (BLOCK - size % BLOCK) % BLOCK;
                if (size > MAX_META || self->detail || n - at - BLOCK < size + pad) {
                    bail = 1;
                    break;
                }
                const char *data = (const char *)h + BLOCK;
                if (type == 'L') {
                    longname = data;
                    longname_n = field_len((const unsigned char *)data, size);
                } else if (type == 'K') {
                    longlink = data;
                    longlink_n = field_len((const unsigned char *)data, size);
                } else if (type == 'x') {
                    if (pax_parse(data, size, &pax) < 0) {
                        bail = 1;
                        break;
                    }
                }
                at += BLOCK + size + pad;
                continue;
            }
            break;
        }
        if (bail || type == 'S') {
            pos = start;
            break;
        }
        /* the member header h at offset at */
        int extended = pax.any || longname || longlink;
        const char *name;
        Py_ssize_t name_n;
        char joined[BLOCK];
        if (pax.path) {
            name = pax.path;
            name_n = pax.path_n;
        } else if (longname) {
            name = longname;
            name_n = longname_n;
        } else {
            Py_ssize_t nn = field_len(h, 100);
            if (memcmp(h + 257, "ustar\0", 6) == 0 && h[345]) {
                Py_ssize_t pn = field_len(h + 345, 155);
                memcpy(joined, h + 345, pn);
                joined[pn] = '/';
                memcpy(joined + pn + 1, h, nn);
                name = joined;
                name_n = pn + 1 + nn;
            } else {
                name = (const char *)h;
                name_n = nn;
            }
        }
        const char *link;
        Py_ssize_t link_n;
        if (pax.linkpath) {
            link = pax.linkpath;
            link_n = pax.linkpath_n;
        } else if (longlink) {
            link = longlink;
            link_n = longlink_n;
        } else {
            link = (const char *)h + 157;
            link_n = field_len(h + 157, 100);
        }
        if (pax.size && decimal(pax.size, pax.size_n, &size) < 0) {
            pos = start;
            break;
        }
        int kind;
        switch (type) {
            case '1': kind = K_HARDLINK; break;
            case '2': kind = K_SYMLINK; break;
            case '3': kind = K_CHAR; break;
            case '4': kind = K_BLOCK; break;
            case '5': kind = K_DIR; break;
            case '6': kind = K_FIFO; break;
            default: kind = K_FILE;
        }
        if (kind == K_FILE && name_n && name[name_n - 1] == '/' && (type == '0' || type == 0)) kind = K_DIR;
        long long data = (type >= '1' && type <= '6') ? 0 : size;
        Py_ssize_t stripped = name_n;
        while (stripped && name[stripped - 1] == '/') stripped--;
        /* a name that normalises to the root, or needs normalising: Python's */
        if (!plain_name(name, name_n) || stripped == 0) {
            pos = start;
            break;
        }
        if (kind == K_HARDLINK && (!plain_name(link, link_n) || link[link_n - 1] == '/' || memchr(link, '\\', link_n))) {
            pos = start;
            break;
        }
        long long mode, uid, gid, mtime;
        if (octal(h + 100, 8, &mode) < 0 || (pax.uid ? decimal(pax.uid, pax.uid_n, &uid) : octal(h + 108, 8, &uid)) < 0 ||
            (pax.gid ? decimal(pax.gid, pax.gid_n, &gid) : octal(h + 116, 8, &gid)) < 0 ||
            (pax.mtime ? pax_time(pax.mtime, pax.mtime_n, &mtime) : octal(h + 136, 12, &mtime)) < 0) {
            pos = start;
            break;
        }
        if (self->detail && extended) {
            pos = start;
            break;
        }
        /* committed: from here the member is ours */
        self->headers += headers;
        long long pad = (BLOCK - data % BLOCK) % BLOCK;
        Py_ssize_t data_at = at + BLOCK;
        PyObject *path = decode(name, stripped);
        if (!path) goto fail;
        PyObject *linkobj;
        if (link_n == 0) {
            linkobj = self->empty;
            Py_INCREF(linkobj);
        } else {
            linkobj = decode(link, link_n);
            if (!linkobj) {
                Py_DECREF(path);
                goto fail;
            }
        }
        long long fsize = kind == K_FILE ? data : 0;
        long rule = -2;
        if (kind == K_FILE) {
            rule = rule_of(self, path, name, stripped);
            if (rule == -3) {
                Py_DECREF(path);
                Py_DECREF(linkobj);
                goto fail;
            }
        }
        long long offset = base + data_at;
        if (append(self, path, kind, fsize, mode & 07777, uid, gid, linkobj, mtime, offset, rule, base + member_start,
                   base + data_at + data + pad) < 0) {
            Py_DECREF(path);
            Py_DECREF(linkobj);
            goto fail;
        }
        int visit = 0;
        if (self->mode == MODE_ALL) {
            visit = 1;
        } else if (self->mode == MODE_SELECT) {
            if (kind == K_FILE && fsize > 0 &&
                (fsize >= self->min_size || ends_with(self->suffixes, name, stripped, 0) ||
                 ends_with(self->prefixes, name, stripped, 1) || (self->unmatched && rule == -1))) {
                visit = 1;
            } else if (PySet_GET_SIZE(self->visited)) {
                int has = PySet_Contains(self->visited, path);
                if (has < 0) {
                    Py_DECREF(path);
                    Py_DECREF(linkobj);
                    goto fail;
                }
                visit = has;
            }
        }
        Py_DECREF(path);
        Py_DECREF(linkobj);
        if (visit) {
            PyObject *entry = entry_tuple(self, self->count - 1);
            if (!entry) goto fail;
            PyObject *block = self->detail ? PyBytes_FromStringAndSize((const char *)h, BLOCK) : (Py_INCREF(Py_None), Py_None);
            if (!block) {
                Py_DECREF(entry);
                goto fail;
            }
            /* the header blocks a writer may copy as they are: TarScanner's test of a name that
             * is already a model path (here a name of one header block) */
            int raw_ok = name[0] != '.' && !has_pair(name, name_n, '/') && !has_pair(name, name_n, '.');
            out = result(data_at, CODE_VISIT,
                         Py_BuildValue("(nNLLNi)", self->count - 1, entry, data, pad, block, raw_ok));
            goto done;
        }
        if (data + pad > n - data_at) {
            out = result(n, CODE_SKIP, Py_BuildValue("(LL)", data + pad - (n - data_at), pad));
            goto done;
        }
        pos = data_at + data + pad;
    }
    out = result(pos, CODE_STOP, (Py_INCREF(Py_None), Py_None));
done:
    PyBuffer_Release(&view);
    return out;
fail:
    PyBuffer_Release(&view);
    return NULL;
}

static PyObject *Fast_append(Fast *self, PyObject *args) {
    PyObject *path, *link;
    int kind;
    long long size, mode, uid, gid, mtime, offset;
    long rule;
    long long start, end;
    if (!PyArg_ParseTuple(args, "UiLLLLULLlLL", &path, &kind, &size, &mode, &uid, &gid, &link, &mtime, &offset, &rule,
                          &start, &end))
        return NULL;
    if (append(self, path, kind, size, mode, uid, gid, link, mtime, offset, rule, start, end) < 0) return NULL;
    Py_RETURN_NONE;
}

#define BYTES(b) ((b).p ? (b).p : ""), (b).len

static PyObject *Fast_columns(Fast *self, PyObject *unused) {
    return Py_BuildValue("(OOy#y#y#y#y#y#y#y#)", self->paths, self->links, BYTES(self->kinds), BYTES(self->sizes),
                         BYTES(self->modes), BYTES(self->uids), BYTES(self->gids), BYTES(self->mtimes),
                         BYTES(self->offsets), BYTES(self->rules));
}

static PyObject *Fast_spans(Fast *self, PyObject *unused) {
    if (!self->want_spans) Py_RETURN_NONE;
    return PyBytes_FromStringAndSize(BYTES(self->spans));
}

static PyObject *Fast_entry(Fast *self, PyObject *arg) {
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred()) return NULL;
    if (i < 0 || i >= self->count) {
        PyErr_SetString(PyExc_IndexError, "entry index out of range");
        return NULL;
    }
    return entry_tuple(self, i);
}

static PyObject *Fast_get_count(Fast *self, void *unused) { return PyLong_FromSsize_t(self->count); }
static PyObject *Fast_get_headers(Fast *self, void *unused) { return PyLong_FromLongLong(self->headers); }

static PyMethodDef Fast_methods[] = {
    {"scan", (PyCFunction)Fast_scan, METH_VARARGS, "scan(buffer, pos, base) -> (pos, code, extra)"},
    {"append", (PyCFunction)Fast_append, METH_VARARGS, "append one entry parsed by the Python code"},
    {"columns", (PyCFunction)Fast_columns, METH_NOARGS, "the columns parsed so far"},
    {"spans", (PyCFunction)Fast_spans, METH_NOARGS, "the spans recorded so far (bytes of int64 pairs), or None"},
    {"entry", (PyCFunction)Fast_entry, METH_O, "entry(i) -> the fields of entry i as a tuple"},
    {NULL}};

static PyGetSetDef Fast_getset[] = {{"count", (getter)Fast_get_count, NULL, "entries so far", NULL},
                                    {"headers", (getter)Fast_get_headers, NULL, "headers parsed here", NULL},
                                    {NULL}};

static PyTypeObject FastType = {
    PyVarObject_HEAD_INIT(NULL, 0).tp_name = "slimmer._ctar.Fast",
    .tp_basicsize = sizeof(Fast),
    .tp_dealloc = (destructor)Fast_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The compiled fast path of TarScanner: canonical members parsed into columns.",
    .tp_methods = Fast_methods,
    .tp_getset = Fast_getset,
    .tp_init = (initproc)Fast_init,
    .tp_new = PyType_GenericNew,
};

/* advise(view, advice): madvise() over the whole pages of a buffer (a view of an mmap), with
 * the GIL let go (the mmap module holds it, which stops every other thread for as long as
 * the kernel maps or drops the pages). Returns False where the kernel refuses the advice. */
static PyObject *advise(PyObject *unused, PyObject *args) {
    Py_buffer view;
    int advice;
    if (!PyArg_ParseTuple(args, "y*i", &view, &advice)) return NULL;
    long page = sysconf(_SC_PAGESIZE);
    uintptr_t lo = (uintptr_t)view.buf / page * page;
    uintptr_t hi = ((uintptr_t)view.buf + view.len + page - 1) / page * page;
    int rc = 0;
    Py_BEGIN_ALLOW_THREADS
    if (hi > lo) rc = madvise((void *)lo, hi - lo, advice);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyBool_FromLong(rc == 0);
}

/* stack(fs, paths, kinds, dir_code, base, layer, order): slimmer.layers.MergedFS.stack's loop
 * (see there), the common steps done here and the rare ones handed back to the MergedFS:
 * fs._ensure_dir(parent, layer) for a parent not there yet, fs._shadow(path, old, layer,
 * "overwritten") for a path given before, fs._replace_dir(path, layer) for a non-directory
 * over a directory. ``order`` is None (every entry) or a list of entry indexes. */
static PyObject *stack(PyObject *unused, PyObject *args) {
    PyObject *fs, *paths, *order;
    Py_buffer kinds;
    int dir_code;
    long long base;
    long layer;
    if (!PyArg_ParseTuple(args, "OO!y*iLlO", &fs, &PyList_Type, &paths, &kinds, &dir_code, &base, &layer, &order))
        return NULL;
    PyObject *final = NULL, *dirs = NULL, *layer_obj = NULL, *how = NULL, *result = NULL;
    final = PyObject_GetAttrString(fs, "_final");
    dirs = PyObject_GetAttrString(fs, "_dirs");
    layer_obj = PyLong_FromLong(layer);
    how = PyUnicode_FromString("overwritten");
    if (!final || !dirs || !layer_obj || !how) goto done;
    if (!PyDict_Check(final) || !PyDict_Check(dirs)) {
        PyErr_SetString(PyExc_TypeError, "stack: fs._final and fs._dirs must be dicts");
        goto done;
    }
    Py_ssize_t count = order == Py_None ? PyList_GET_SIZE(paths) : PyList_Size(order);
    if (count < 0) goto done;
    for (Py_ssize_t j = 0; j < count; j++) {
        Py_ssize_t k = j;
        if (order != Py_None) {
            k = PyLong_AsSsize_t(PyList_GET_ITEM(order, j));
            if (k == -1 && PyErr_Occurred()) goto done;
        }
        if (k < 0 || k >= PyList_GET_SIZE(paths) || k >= kinds.len) {
            PyErr_SetString(PyExc_IndexError, "stack: entry index out of range");
            goto done;
        }
        PyObject *path = PyList_GET_ITEM(paths, k);
        Py_ssize_t n = PyUnicode_GET_LENGTH(path);
        Py_ssize_t slash = PyUnicode_FindChar(path, '/', 0, n, -1);
        if (slash == -2) goto done;
        PyObject *parent = slash < 0 ? PyUnicode_FromString("") : PyUnicode_Substring(path, 0, slash);
        PyObject *name = slash < 0 ? (Py_INCREF(path), path) : PyUnicode_Substring(path, slash + 1, n);
        if (!parent || !name) {
            Py_XDECREF(parent);
            Py_XDECREF(name);
            goto done;
        }
        PyObject *kids = PyDict_GetItemWithError(dirs, parent);  /* borrowed */
        if (kids) {
            Py_INCREF(kids);
        } else if (!PyErr_Occurred()) {
            kids = PyObject_CallMethod(fs, "_ensure_dir", "OO", parent, layer_obj);
        }
        Py_DECREF(parent);
        if (!kids) {
            Py_DECREF(name);
            goto done;
        }
        int failed = 0;
        PyObject *old = PyDict_GetItemWithError(final, path);
        if (old) {
            Py_INCREF(old);
            PyObject *r = PyObject_CallMethod(fs, "_shadow", "OOOO", path, old, layer_obj, how);
            Py_DECREF(old);
            if (!r) failed = 1;
            Py_XDECREF(r);
        } else if (PyErr_Occurred()) {
            failed = 1;
        }
        if (!failed) {
            int is_dir = PyDict_Contains(dirs, path);
            if (is_dir < 0) {
                failed = 1;
            } else if (((unsigned char *)kinds.buf)[k] == dir_code) {
                if (!is_dir) {
                    PyObject *set = PySet_New(NULL);
                    if (!set || PyDict_SetItem(dirs, path, set) < 0) failed = 1;
                    Py_XDECREF(set);
                }
            } else if (is_dir) {
                PyObject *r = PyObject_CallMethod(fs, "_replace_dir", "OO", path, layer_obj);
                if (!r) failed = 1;
                Py_XDECREF(r);
            }
        }
        if (!failed && PySet_Add(kids, name) < 0) failed = 1;
        Py_DECREF(kids);
        Py_DECREF(name);
        if (failed) goto done;
        PyObject *ref = PyLong_FromLongLong(base | (long long)k);
        if (!ref) goto done;
        int rc = PyDict_SetItem(final, path, ref);
        Py_DECREF(ref);
        if (rc < 0) goto done;
    }
    result = Py_None;
    Py_INCREF(result);
done:
    Py_XDECREF(final);
    Py_XDECREF(dirs);
    Py_XDECREF(layer_obj);
    Py_XDECREF(how);
    PyBuffer_Release(&kinds);
    return result;
}

static PyMethodDef module_methods[] = {
    {"advise", advise, METH_VARARGS, "advise(view, advice) -> whether madvise() took it"},
    {"stack", stack, METH_VARARGS, "stack(fs, paths, kinds, dir_code, base, layer, order): MergedFS.stack's loop"},
    {NULL}};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_ctar", "Compiled tar header scanning.", -1,
                                    module_methods};

PyMODINIT_FUNC PyInit__ctar(void) {
    if (PyType_Ready(&FastType) < 0) return NULL;
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    Py_INCREF(&FastType);
    if (PyModule_AddObject(m, "Fast", (PyObject *)&FastType) < 0) {
        Py_DECREF(&FastType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
