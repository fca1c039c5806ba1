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
 *
 * viterbi_spans(log_probs, labels)
 *   the forced alignment of ctc.viterbi, step for step (ties keep the state, then take the
 *   step from the previous state), for the classes in `labels` (bytes, each 1 … C - 1);
 *   returns [(start, end, best_log_prob)] per label: the steps [start, end) the most
 *   probable path spends on it and its highest log-posterior there; None when no path fits.
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

/* The Viterbi path's spans; 0, or -1 when no path has a probability above 0. */
static int viterbi(const double *lp, int T, int C, const unsigned char *labels, int L,
                   unsigned char *back, double *previous, double *current, int *spans,
                   double *best) {
    const int S = 2 * L + 1;
    for (int s = 0; s < S; s++) previous[s] = -INFINITY;
    previous[0] = lp[0];
    if (S > 1) previous[1] = lp[labels[0]];
    for (int t = 1; t < T; t++) {
        const double *row = lp + (size_t)t * (size_t)C;
        for (int s = 0; s < S; s++) {
            double score = previous[s];
            unsigned char choice = 0;
            if (s >= 1 && previous[s - 1] > score) {
                score = previous[s - 1];
                choice = 1;
            }
            if (s >= 2 && (s & 1) && labels[s / 2] != labels[s / 2 - 1] &&
                previous[s - 2] > score) {
                score = previous[s - 2];
                choice = 2;
            }
            current[s] = score + row[(s & 1) ? labels[s / 2] : 0];
            back[(size_t)t * (size_t)S + (size_t)s] = choice;
        }
        double *swap = previous;
        previous = current;
        current = swap;
    }
    int state = (S == 1 || previous[S - 1] >= previous[S - 2]) ? S - 1 : S - 2;
    if (!(previous[state] > -INFINITY)) return -1;
    for (int i = 0; i < L; i++) {
        spans[2 * i] = -1;
        best[i] = -INFINITY;
    }
    for (int t = T - 1; t >= 0; t--) {
        if (state & 1) {
            int i = state / 2;
            double value = lp[(size_t)t * (size_t)C + labels[i]];
            if (spans[2 * i] < 0) spans[2 * i + 1] = t + 1;
            spans[2 * i] = t;
            if (value > best[i]) best[i] = value;
        }
        if (t > 0) state -= back[(size_t)t * (size_t)S + (size_t)state];
    }
    return 0;
}

static PyObject *viterbi_spans(PyObject *self, PyObject *args) {
    (void)self;
    PyObject *array;
    const char *labels;
    Py_ssize_t L;
    if (!PyArg_ParseTuple(args, "Oy#", &array, &labels, &L)) return NULL;
    Py_buffer view;
    if (PyObject_GetBuffer(array, &view, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) return NULL;
    PyObject *result = NULL;
    unsigned char *back = NULL;
    double *rows = NULL, *best = NULL;
    int *spans = NULL;
    if (view.ndim != 2 || strcmp(view.format, "d") != 0 || view.shape[0] < 1) {
        PyErr_SetString(PyExc_ValueError, "log_probs must be a non-empty 2-D float64 array");
        goto done;
    }
    int T = (int)view.shape[0], C = (int)view.shape[1];
    if (L < 1 || L > T) {
        PyErr_SetString(PyExc_ValueError, "labels must be 1 to T classes");
        goto done;
    }
    for (Py_ssize_t i = 0; i < L; i++) {
        unsigned char c = (unsigned char)labels[i];
        if (c < 1 || c >= C) {
            PyErr_SetString(PyExc_ValueError, "labels must be classes 1 … C - 1");
            goto done;
        }
    }
    int S = 2 * (int)L + 1;
    back = malloc((size_t)T * (size_t)S);
    rows = malloc(sizeof(double) * 2 * (size_t)S);
    spans = malloc(sizeof(int) * 2 * (size_t)L);
    best = malloc(sizeof(double) * (size_t)L);
    if (!back || !rows || !spans || !best) {
        PyErr_NoMemory();
        goto done;
    }
    int status;
    Py_BEGIN_ALLOW_THREADS;
    status = viterbi((const double *)view.buf, T, C, (const unsigned char *)labels, (int)L, back,
                     rows, rows + S, spans, best);
    Py_END_ALLOW_THREADS;
    if (status < 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    result = PyList_New(L);
    if (!result) goto done;
    for (Py_ssize_t i = 0; i < L; i++) {
        PyObject *item = Py_BuildValue("(iid)", spans[2 * i], spans[2 * i + 1], best[i]);
        if (!item) {
            Py_CLEAR(result);
            break;
        }
        PyList_SET_ITEM(result, i, item);
    }
done:
    free(back);
    free(rows);
    free(spans);
    free(best);
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef methods[] = {
    {"beam_search", beam_search, METH_VARARGS,
     "beam_search(log_probs, alphabet, beam_width, nbest, min_log_prob, prune) -> "
     "[(text, log_prob)], best first: the CTC prefix beam search without a grammar."},
    {"viterbi_spans", viterbi_spans, METH_VARARGS,
     "viterbi_spans(log_probs, labels) -> [(start, end, best_log_prob)] or None: each "
     "label's steps on the forced alignment and its highest log-posterior there."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_beam", "CTC prefix beam search, compiled.", -1, methods,
    NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__beam(void) { return PyModule_Create(&module); }
