/* CTC prefix beam search, compiled: the unconstrained search of decoding.beam_search.
 *
 * The same algorithm, step for step, as the Python loop in decoding.py, which stays the
 * reference (and the search wherever this module is not built, and the only one that takes
 * a grammar): each prefix keeps the log-probability of its paths ending in a blank and of
 * those ending in its last symbol; classes below `min_log_prob` at a step are skipped; at a
 * step where none passes, every prefix is updated in place; otherwise the following beam is
 * the `beam_width` best prefixes, less those more than `prune` nats below the best and those
 * no path can produce. Sums are log(exp(a) + exp(b)) written as in the Python (the larger
 * plus log1p(exp(difference))), so both give the same numbers.
 *
 * beam_search(log_probs, alphabet, beam_width, nbest, min_log_prob, prune)
 *   log_probs: a C-contiguous float64 buffer (T, C), blank at class 0;
 *   alphabet: the C - 1 symbols of classes 1 … C - 1;
 *   min_log_prob, prune: -inf and inf switch them off.
 * Returns [(text, log_prob)], best first, at most `nbest`. The search runs without the GIL.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static double lse(double a, double b) {
    if (a == -INFINITY) return b;
    if (b == -INFINITY) return a;
    if (a < b) {
        double t = a;
        a = b;
        b = t;
    }
    return a + log1p(exp(b - a));
}

typedef struct {
    int parent; /* the beam entry it grows from */
    int symbol; /* the class it adds, or -1: the same prefix */
    double b, nb;
    uint64_t hash;
} Entry;

typedef struct {
    double score;
    int index;
} Ranked;

static int by_score(const void *x, const void *y) {
    const Ranked *a = x, *b = y;
    if (a->score > b->score) return -1;
    if (a->score < b->score) return 1;
    return a->index - b->index; /* ties keep the order the entries were made in */
}

static uint64_t grow_hash(uint64_t hash, int symbol) {
    return (hash ^ (uint64_t)(symbol + 1)) * 0x100000001b3ULL;
}

typedef struct {
    int count;              /* prefixes in the beam */
    unsigned char *prefix;  /* width × (T + 1) class indices */
    int *length;
    double *b, *nb;
    uint64_t *hash;
} Beam;

/* The search proper, on plain C data; 0 on success, -1 when memory ran out. */
static int search(const double *lp, int T, int C, int width, double min_log_prob, double prune,
                  Beam *beam) {
    int most = width * C; /* entries one step can make */
    int table_size = 16;
    while (table_size < 4 * width) table_size <<= 1;
    Entry *entries = malloc(sizeof(Entry) * (size_t)most);
    Ranked *ranked = malloc(sizeof(Ranked) * (size_t)width);
    int *table = malloc(sizeof(int) * (size_t)table_size);
    int *candidates = malloc(sizeof(int) * (size_t)C);
    unsigned char *next_prefix = malloc((size_t)width * (size_t)(T + 1));
    int *next_length = malloc(sizeof(int) * (size_t)width);
    int status = -1;
    if (!entries || !ranked || !table || !candidates || !next_prefix || !next_length) goto done;

    size_t stride = (size_t)(T + 1);
    beam->count = 1;
    beam->length[0] = 0;
    beam->b[0] = 0.0;
    beam->nb[0] = -INFINITY;
    beam->hash[0] = 0xcbf29ce484222325ULL;
    int table_stale = 1;

    for (int t = 0; t < T; t++) {
        const double *row = lp + (size_t)t * (size_t)C;
        double blank = row[0];
        int n_candidates = 0;
        for (int c = 1; c < C; c++)
            if (row[c] >= min_log_prob) candidates[n_candidates++] = c;

        if (n_candidates == 0) { /* nothing new starts here: every prefix stays */
            for (int i = 0; i < beam->count; i++) {
                double b = beam->b[i], nb = beam->nb[i];
                int len = beam->length[i];
                beam->b[i] = lse(b, nb) + blank;
                beam->nb[i] = len ? nb + row[beam->prefix[i * stride + len - 1]] : -INFINITY;
            }
            continue;
        }
        if (table_stale) { /* prefix hash → beam entry, to find where an extension lands */
            for (int k = 0; k < table_size; k++) table[k] = -1;
            for (int i = 0; i < beam->count; i++) {
                int k = (int)(beam->hash[i] & (uint64_t)(table_size - 1));
                while (table[k] >= 0) k = (k + 1) & (table_size - 1);
                table[k] = i;
            }
            table_stale = 0;
        }

        /* entries 0 … count-1: each prefix staying (a blank, or its last symbol again) */
        int n = beam->count;
        for (int i = 0; i < n; i++) {
            int len = beam->length[i];
            Entry *e = &entries[i];
            e->parent = i;
            e->symbol = -1;
            e->b = lse(beam->b[i], beam->nb[i]) + blank;
            e->nb = len ? beam->nb[i] + row[beam->prefix[i * stride + len - 1]] : -INFINITY;
            e->hash = beam->hash[i];
        }
        for (int i = 0; i < beam->count; i++) {
            int len = beam->length[i];
            const unsigned char *p = beam->prefix + i * stride;
            int last = len ? p[len - 1] : -1;
            double total = lse(beam->b[i], beam->nb[i]);
            for (int k = 0; k < n_candidates; k++) {
                int c = candidates[k];
                /* a repeat needs a blank in between: only the blank-ending paths extend */
                double value = (c == last ? beam->b[i] : total) + row[c];
                uint64_t hash = grow_hash(beam->hash[i], c);
                int j = -1;
                int slot = (int)(hash & (uint64_t)(table_size - 1));
                for (; table[slot] >= 0; slot = (slot + 1) & (table_size - 1)) {
                    int m = table[slot];
                    if (beam->hash[m] == hash && beam->length[m] == len + 1 &&
                        beam->prefix[m * stride + len] == c &&
                        memcmp(beam->prefix + m * stride, p, (size_t)len) == 0) {
                        j = m;
                        break;
                    }
                }
                if (j >= 0) { /* the prefix is already in the beam: add to its entry */
                    entries[j].nb = lse(entries[j].nb, value);
                    continue;
                }
                Entry *e = &entries[n++];
                e->parent = i;
                e->symbol = c;
                e->b = -INFINITY;
                e->nb = value;
                e->hash = hash;
            }
        }

        /* the `width` best, best first (ties in the order made): insertion into a short
         * sorted list, where most entries cost one comparison */
        int keep = 0;
        for (int k = 0; k < n; k++) {
            double score = lse(entries[k].b, entries[k].nb);
            if (!(score > -INFINITY)) continue; /* no path produces it */
            if (keep == width && !(score > ranked[keep - 1].score)) continue;
            int r = keep < width ? keep++ : keep - 1;
            while (r > 0 && ranked[r - 1].score < score) {
                ranked[r] = ranked[r - 1];
                r--;
            }
            ranked[r].score = score;
            ranked[r].index = k;
        }
        if (keep == 0) { /* no prefix can be produced any more: nothing to read */
            beam->count = 0;
            break;
        }
        double floor = ranked[0].score - prune;
        while (keep > 1 && !(ranked[keep - 1].score >= floor)) keep--;

        for (int r = 0; r < keep; r++) {
            const Entry *e = &entries[ranked[r].index];
            int len = beam->length[e->parent];
            unsigned char *q = next_prefix + r * stride;
            memcpy(q, beam->prefix + e->parent * stride, (size_t)len);
            if (e->symbol >= 0) q[len++] = (unsigned char)e->symbol;
            next_length[r] = len;
        }
        for (int r = 0; r < keep; r++) {
            const Entry *e = &entries[ranked[r].index];
            beam->b[r] = e->b;
            beam->nb[r] = e->nb;
            beam->hash[r] = e->hash;
        }
        unsigned char *swap_prefix = beam->prefix;
        beam->prefix = next_prefix;
        next_prefix = swap_prefix;
        int *swap_length = beam->length;
        beam->length = next_length;
        next_length = swap_length;
        beam->count = keep;
        table_stale = 1;
    }
    status = 0;
done:
    free(entries);
    free(ranked);
    free(table);
    free(candidates);
    free(next_prefix);
    free(next_length);
    return status;
}

static PyObject *beam_search(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *array;
    const char *alphabet;
    Py_ssize_t alphabet_length;
    int width, nbest;
    double min_log_prob, prune;
    if (!PyArg_ParseTuple(args, "Os#iidd", &array, &alphabet, &alphabet_length, &width, &nbest,
                          &min_log_prob, &prune))
        return NULL;
    if (width < 1 || nbest < 1) {
        PyErr_SetString(PyExc_ValueError, "beam width and nbest must be at least 1");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(array, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    PyObject *result = NULL;
    Beam beam = {0};
    if (view.ndim != 2 || strcmp(view.format, "d") != 0) {
        PyErr_SetString(PyExc_ValueError, "log_probs must be a 2-D float64 array");
        goto done;
    }
    int T = (int)view.shape[0], C = (int)view.shape[1];
    if (C < 2 || C > 256 || alphabet_length != C - 1) {
        PyErr_SetString(PyExc_ValueError, "the alphabet must name classes 1 … C - 1 (C ≤ 256)");
        goto done;
    }
    beam.prefix = malloc((size_t)width * (size_t)(T + 1));
    beam.length = malloc(sizeof(int) * (size_t)width);
    beam.b = malloc(sizeof(double) * (size_t)width);
    beam.nb = malloc(sizeof(double) * (size_t)width);
    beam.hash = malloc(sizeof(uint64_t) * (size_t)width);
    if (!beam.prefix || !beam.length || !beam.b || !beam.nb || !beam.hash) {
        PyErr_NoMemory();
        goto done;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS;
    status = search((const double *)view.buf, T, C, width, min_log_prob, prune, &beam);
    Py_END_ALLOW_THREADS;
    if (status < 0) {
        PyErr_NoMemory();
        goto done;
    }

    Ranked *order = malloc(sizeof(Ranked) * (size_t)beam.count);
    if (!order) {
        PyErr_NoMemory();
        goto done;
    }
    int possible = 0;
    for (int i = 0; i < beam.count; i++) {
        double score = lse(beam.b[i], beam.nb[i]);
        if (!(score > -INFINITY)) continue; /* probability 0: not a reading */
        order[possible].score = score;
        order[possible++].index = i;
    }
    qsort(order, (size_t)possible, sizeof(Ranked), by_score);
    int count = possible < nbest ? possible : nbest;
    result = PyList_New(count);
    char *text = malloc((size_t)T + 1);
    if (!result || !text) {
        Py_CLEAR(result);
        free(order);
        free(text);
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    for (int r = 0; r < count; r++) {
        int i = order[r].index;
        int len = beam.length[i];
        for (int k = 0; k < len; k++) text[k] = alphabet[beam.prefix[i * (T + 1) + k] - 1];
        PyObject *item = Py_BuildValue("(s#d)", text, (Py_ssize_t)len, order[r].score);
        if (!item) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, r, item);
    }
    free(order);
    free(text);
done:
    free(beam.prefix);
    free(beam.length);
    free(beam.b);
    free(beam.nb);
    free(beam.hash);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"beam_search", beam_search, METH_VARARGS,
     "beam_search(log_probs, alphabet, beam_width, nbest, min_log_prob, prune) -> "
     "[(text, log_prob)], best first: the CTC prefix beam search without a grammar."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_beam", "CTC prefix beam search, compiled.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__beam(void) { return PyModule_Create(&module); }
