/* The compiled core of the linearizability checker (see _linearizability.py, whose pure
 * Python search is the same algorithm and the oracle this one is tested against).
 *
 * One Search object checks one partition of a history. Python gives it the events in time
 * order, the operations (which ones have an unknown outcome), the model's step function
 * step(state, operation) -> (possible, state after) and a list holding the initial state.
 * Model states are interned to ids, their indexes in that list: hashable ones in a dict,
 * the others by a Python function the caller gives. Operations with
 * the same input and output share a class; the core calls step once per distinct (class,
 * state id) pair and keeps the answers in a table. The set of
 * linearized operations is a bitset with a Zobrist hash kept up to date as operations are
 * lifted, so that a memo lookup of (set, state) costs O(1) but for the final comparison.
 *
 * run(steps) searches for at most that many steps and returns, so partitions can take turns
 * and a deadline holds. It keeps the GIL: most steps need the model (a Python call), and a
 * slice is short.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#define RUNNING 0
#define LINEARIZABLE 1
#define ILLEGAL 2
#define OUT_OF_MEMORY 3

typedef struct {
    int32_t event;   /* the lifted call event */
    int32_t before;  /* the state before it */
} Frame;

typedef struct {
    uint64_t hash;
    int32_t state;   /* -1: empty slot */
    uint32_t offset; /* index of the set's first word in the arena, in sets */
} MemoSlot;

typedef struct {
    uint64_t key;    /* state << 32 | op; UINT64_MAX: empty */
    int32_t after;   /* -1: not possible */
} TransitionSlot;

typedef struct {
    PyObject_HEAD
    /* The history. */
    int32_t nops;
    int32_t nevents;  /* 2 * nops */
    int32_t nwords;   /* words of a linearized set */
    int32_t *op_of;   /* event -> operation (index 0 is the head sentinel) */
    uint8_t *is_call;
    int32_t *match;   /* call event -> its return event */
    int32_t *next;
    int32_t *prev;
    uint8_t *unknown; /* op -> outcome unknown */
    int32_t *op_class;/* op -> its class: operations the model cannot tell apart */
    uint64_t *zobrist;/* op -> random word */
    PyObject *step;
    PyObject *operations; /* a list */
    PyObject *states;     /* id -> state: a list */
    PyObject *ids;        /* hashable state -> id: a dict */
    PyObject *unhashable; /* unhashable state -> id (appended to states if new) */
    /* The search. */
    int32_t entry;
    int32_t state;
    int32_t known_left;
    uint64_t *linearized;
    uint64_t set_hash;
    Frame *stack;
    int32_t depth;
    Frame *best;
    int32_t best_len;
    int32_t best_state;
    int32_t agree;    /* stack[:agree] == best[:agree] */
    int status;
    unsigned long long steps;
    /* The memo: (linearized set, state) pairs seen. */
    MemoSlot *memo;
    size_t memo_cap;  /* a power of two */
    size_t memo_len;
    uint64_t *arena;  /* the sets, nwords each */
    size_t arena_sets;
    size_t arena_cap;
    size_t memory_limit;
    /* Transitions asked so far. */
    TransitionSlot *table;
    size_t table_cap;
    size_t table_len;
    uint8_t *asked;   /* state -> the table holds a transition from it */
    size_t asked_cap;
    unsigned long long transitions;
} Search;

static uint64_t mix64(uint64_t z) {
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t memo_hash(uint64_t set_hash, int32_t state) {
    return mix64(set_hash ^ ((uint64_t)(uint32_t)state * 0x9e3779b97f4a7c15ULL));
}

static size_t memory_used(Search *s) {
    return s->memo_cap * sizeof(MemoSlot) + s->arena_cap * (size_t)s->nwords * 8 +
           s->table_cap * sizeof(TransitionSlot) + s->asked_cap;
}

static int memo_grow(Search *s) {
    size_t cap = s->memo_cap * 2;
    MemoSlot *slots = PyMem_RawMalloc(cap * sizeof(MemoSlot));
    if (slots == NULL) return -1;
    for (size_t i = 0; i < cap; i++) slots[i].state = -1;
    for (size_t i = 0; i < s->memo_cap; i++) {
        MemoSlot *old = &s->memo[i];
        if (old->state < 0) continue;
        size_t j = old->hash & (cap - 1);
        while (slots[j].state >= 0) j = (j + 1) & (cap - 1);
        slots[j] = *old;
    }
    PyMem_RawFree(s->memo);
    s->memo = slots;
    s->memo_cap = cap;
    return 0;
}

/* Adds (current set, state) to the memo: 1 if it is new, 0 if seen, -1 out of memory. */
static int memo_add(Search *s, uint64_t set_hash, int32_t state) {
    uint64_t h = memo_hash(set_hash, state);
    size_t mask = s->memo_cap - 1;
    size_t j = h & mask;
    size_t bytes = (size_t)s->nwords * 8;
    while (s->memo[j].state >= 0) {
        MemoSlot *slot = &s->memo[j];
        if (slot->hash == h && slot->state == state &&
            memcmp(s->arena + (size_t)slot->offset * s->nwords, s->linearized, bytes) == 0)
            return 0;
        j = (j + 1) & mask;
    }
    if (s->arena_sets == s->arena_cap) {
        size_t cap = s->arena_cap * 2;
        if (cap > UINT32_MAX) return -1;
        uint64_t *arena = PyMem_RawRealloc(s->arena, cap * bytes);
        if (arena == NULL) return -1;
        s->arena = arena;
        s->arena_cap = cap;
    }
    memcpy(s->arena + s->arena_sets * s->nwords, s->linearized, bytes);
    s->memo[j].hash = h;
    s->memo[j].state = state;
    s->memo[j].offset = (uint32_t)s->arena_sets;
    s->arena_sets++;
    s->memo_len++;
    if (s->memo_len * 2 > s->memo_cap && memo_grow(s) < 0) return -1;
    if (memory_used(s) > s->memory_limit) return -1;
    return 1;
}

/* Where a transition's slot search starts: operations with neighbouring indexes (the ones a
 * scan of the list asks about in one state) share a group of 16 slots, so one scan touches
 * a few cache lines instead of one per operation. */
static size_t table_slot(uint64_t key) {
    uint64_t group = key >> 4 << 4;
    return (size_t)((mix64(group) & ~(uint64_t)15) | (key & 15));
}

static int table_grow(Search *s) {
    size_t cap = s->table_cap * 2;
    TransitionSlot *slots = PyMem_RawMalloc(cap * sizeof(TransitionSlot));
    if (slots == NULL) return -1;
    for (size_t i = 0; i < cap; i++) slots[i].key = UINT64_MAX;
    for (size_t i = 0; i < s->table_cap; i++) {
        TransitionSlot *old = &s->table[i];
        if (old->key == UINT64_MAX) continue;
        size_t j = table_slot(old->key) & (cap - 1);
        while (slots[j].key != UINT64_MAX) j = (j + 1) & (cap - 1);
        slots[j] = *old;
    }
    PyMem_RawFree(s->table);
    s->table = slots;
    s->table_cap = cap;
    return 0;
}

/* The id of a model state, a new one if no state seen is equal to it; -1 with an
 * exception set. */
static Py_ssize_t intern(Search *s, PyObject *state) {
    Py_ssize_t id = PyList_GET_SIZE(s->states);
    if (id >= INT32_MAX) {
        PyErr_SetString(PyExc_OverflowError, "more than 2**31 model states");
        return -1;
    }
    PyObject *number = PyLong_FromSsize_t(id);
    if (number == NULL) return -1;
    /* One lookup: most states a search meets are new. */
    PyObject *known = PyDict_SetDefault(s->ids, state, number);
    Py_DECREF(number);
    if (known != NULL && known != number) return PyLong_AsSsize_t(known);
    if (known == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) return -1;
        PyErr_Clear(); /* unhashable: the caller's function finds it among equal ones */
        PyObject *answer = PyObject_CallOneArg(s->unhashable, state);
        if (answer == NULL) return -1;
        Py_ssize_t found = PyLong_AsSsize_t(answer);
        Py_DECREF(answer);
        if (found == -1 && PyErr_Occurred()) return -1;
        if (found < 0 || found >= PyList_GET_SIZE(s->states)) {
            PyErr_Format(PyExc_ValueError, "unhashable() returned %zd, not a state's index", found);
            return -1;
        }
        return found;
    }
    return PyList_Append(s->states, state) < 0 ? -1 : id;
}

/* Asks the model for the state after op from state (the GIL held): its id, -1 if the
 * operation is not possible there, -2 with an exception set. */
static long ask(Search *s, int32_t op, int32_t state) {
    PyObject *before = PyList_GET_ITEM(s->states, state);
    PyObject *args[2] = {before, PyList_GET_ITEM(s->operations, op)};
    PyObject *answer = PyObject_Vectorcall(s->step, args, 2, NULL);
    if (answer == NULL) return -2;
    long after = -2;
    if (!PyTuple_Check(answer) || PyTuple_GET_SIZE(answer) != 2) {
        PyErr_Format(PyExc_TypeError,
                     "the model's step returned %.100R, not a (possible, state after) pair",
                     answer);
    } else {
        int ok = PyObject_IsTrue(PyTuple_GET_ITEM(answer, 0));
        if (ok == 0) after = -1;
        else if (ok > 0 && PyTuple_GET_ITEM(answer, 1) == before) {
            after = state; /* unchanged (a read): no need to look it up */
        } else if (ok > 0) {
            Py_ssize_t id = intern(s, PyTuple_GET_ITEM(answer, 1));
            after = id < 0 ? -2 : (long)id;
        }
    }
    Py_DECREF(answer);
    return after;
}

/* The state after op from state (-1: not possible); -2 with an exception set, -3 out of
 * memory. */
static int32_t transition(Search *s, int32_t op, int32_t state) {
    uint64_t key = ((uint64_t)(uint32_t)state << 32) | (uint32_t)s->op_class[op];
    size_t mask = s->table_cap - 1;
    size_t j = table_slot(key) & mask;
    int asked = (size_t)state < s->asked_cap && s->asked[state];
    if (asked) {
        while (s->table[j].key != UINT64_MAX) {
            if (s->table[j].key == key) return s->table[j].after;
            j = (j + 1) & mask;
        }
    } else {
        /* A state met for the first time (most are, in a history of appends): nothing to
         * look up, and the slot is fetched while the model runs. */
        __builtin_prefetch(&s->table[j], 1);
    }
    long after = ask(s, op, state);
    if (after == -2) return -2;
    if (!asked) {
        if ((size_t)state >= s->asked_cap) {
            size_t cap = s->asked_cap ? s->asked_cap : 1024;
            while (cap <= (size_t)state) cap *= 2;
            uint8_t *grown = PyMem_RawRealloc(s->asked, cap);
            if (grown == NULL) return -3;
            memset(grown + s->asked_cap, 0, cap - s->asked_cap);
            s->asked = grown;
            s->asked_cap = cap;
        }
        s->asked[state] = 1;
        while (s->table[j].key != UINT64_MAX) j = (j + 1) & mask;
    }
    s->transitions++;
    s->table[j].key = key;
    s->table[j].after = (int32_t)after;
    s->table_len++;
    if (s->table_len * 2 > s->table_cap && table_grow(s) < 0) return -3;
    return (int32_t)after;
}

static void lift(Search *s, int32_t e) {
    int32_t *next = s->next, *prev = s->prev;
    next[prev[e]] = next[e];
    if (next[e] >= 0) prev[next[e]] = prev[e];
    int32_t m = s->match[e];
    next[prev[m]] = next[m];
    if (next[m] >= 0) prev[next[m]] = prev[m];
}

static void unlift(Search *s, int32_t e) {
    int32_t *next = s->next, *prev = s->prev;
    int32_t m = s->match[e];
    next[prev[m]] = m;
    if (next[m] >= 0) prev[next[m]] = m;
    next[prev[e]] = e;
    if (next[e] >= 0) prev[next[e]] = e;
}

static void Search_dealloc(Search *s) {
    PyMem_RawFree(s->op_of);
    PyMem_RawFree(s->is_call);
    PyMem_RawFree(s->match);
    PyMem_RawFree(s->next);
    PyMem_RawFree(s->prev);
    PyMem_RawFree(s->unknown);
    PyMem_RawFree(s->op_class);
    PyMem_RawFree(s->zobrist);
    PyMem_RawFree(s->linearized);
    PyMem_RawFree(s->stack);
    PyMem_RawFree(s->best);
    PyMem_RawFree(s->memo);
    PyMem_RawFree(s->arena);
    PyMem_RawFree(s->table);
    PyMem_RawFree(s->asked);
    Py_XDECREF(s->step);
    Py_XDECREF(s->operations);
    Py_XDECREF(s->states);
    Py_XDECREF(s->ids);
    Py_XDECREF(s->unhashable);
    Py_TYPE(s)->tp_free((PyObject *)s);
}

/* Search(events, operations, unknown, classes, step, states, unhashable, memory_limit):
 * events is a sequence of ints, one per event in time order, op * 2 + 1 for a call and
 * op * 2 for a return; operations a list; unknown a sequence of bools and classes one of ints
 * (below the number of operations), one per operation; states a list holding the initial
 * state (state 0); unhashable(state) the id of a state without a hash (appending it to
 * states if it is new). */
static int Search_init(Search *s, PyObject *args, PyObject *kwargs) {
    static char *names[] = {"events", "operations", "unknown",    "classes",      "step",
                            "states", "unhashable", "memory_limit", NULL};
    PyObject *events, *operations, *unknown, *classes, *fn, *states, *unhashable;
    Py_ssize_t limit;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!OOOO!On", names, &events, &PyList_Type,
                                     &operations, &unknown, &classes, &fn, &PyList_Type, &states,
                                     &unhashable, &limit))
        return -1;
    if (s->op_of != NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Search is initialised once");
        return -1;
    }
    if (!PyCallable_Check(fn) || !PyCallable_Check(unhashable)) {
        PyErr_SetString(PyExc_TypeError, "step and unhashable must be callable");
        return -1;
    }
    if (PyList_GET_SIZE(states) != 1) {
        PyErr_SetString(PyExc_ValueError, "states must hold the initial state alone");
        return -1;
    }
    PyObject *ev = PySequence_Fast(events, "events must be a sequence");
    if (ev == NULL) return -1;
    PyObject *un = PySequence_Fast(unknown, "unknown must be a sequence");
    if (un == NULL) {
        Py_DECREF(ev);
        return -1;
    }
    PyObject *cl = PySequence_Fast(classes, "classes must be a sequence");
    if (cl == NULL) {
        Py_DECREF(ev);
        Py_DECREF(un);
        return -1;
    }
    Py_ssize_t nops = PySequence_Fast_GET_SIZE(un);
    Py_ssize_t nevents = PySequence_Fast_GET_SIZE(ev);
    int rc = -1;
    if (nevents != 2 * nops || PyList_GET_SIZE(operations) != nops ||
        PySequence_Fast_GET_SIZE(cl) != nops || nops >= INT32_MAX / 4) {
        PyErr_SetString(PyExc_ValueError, "events must hold two events per operation");
        goto done;
    }
    s->nops = (int32_t)nops;
    s->nevents = (int32_t)nevents;
    s->nwords = (int32_t)((nops + 63) / 64);
    if (s->nwords == 0) s->nwords = 1;
    size_t n = (size_t)nevents + 1;
    s->op_of = PyMem_RawCalloc(n, sizeof(int32_t));
    s->is_call = PyMem_RawCalloc(n, 1);
    s->match = PyMem_RawCalloc(n, sizeof(int32_t));
    s->next = PyMem_RawCalloc(n, sizeof(int32_t));
    s->prev = PyMem_RawCalloc(n, sizeof(int32_t));
    s->unknown = PyMem_RawCalloc((size_t)nops + 1, 1);
    s->op_class = PyMem_RawCalloc((size_t)nops + 1, sizeof(int32_t));
    s->zobrist = PyMem_RawCalloc((size_t)nops + 1, sizeof(uint64_t));
    s->linearized = PyMem_RawCalloc((size_t)s->nwords, sizeof(uint64_t));
    s->stack = PyMem_RawCalloc((size_t)nops + 1, sizeof(Frame));
    s->best = PyMem_RawCalloc((size_t)nops + 1, sizeof(Frame));
    s->memo_cap = 1024;
    s->memo = PyMem_RawMalloc(s->memo_cap * sizeof(MemoSlot));
    s->arena_cap = 512;
    s->arena = PyMem_RawMalloc(s->arena_cap * (size_t)s->nwords * 8);
    s->table_cap = 256;
    s->table = PyMem_RawMalloc(s->table_cap * sizeof(TransitionSlot));
    int32_t *call_of = PyMem_RawMalloc(((size_t)nops + 1) * sizeof(int32_t));
    int32_t *return_of = PyMem_RawMalloc(((size_t)nops + 1) * sizeof(int32_t));
    if (!s->op_of || !s->is_call || !s->match || !s->next || !s->prev || !s->unknown || !s->op_class ||
        !s->zobrist || !s->linearized || !s->stack || !s->best || !s->memo || !s->arena ||
        !s->table || !call_of || !return_of) {
        PyErr_NoMemory();
        goto free_maps;
    }
    for (size_t i = 0; i < s->memo_cap; i++) s->memo[i].state = -1;
    for (size_t i = 0; i < s->table_cap; i++) s->table[i].key = UINT64_MAX;
    for (Py_ssize_t op = 0; op < nops; op++) {
        int flag = PyObject_IsTrue(PySequence_Fast_GET_ITEM(un, op));
        if (flag < 0) goto free_maps;
        s->unknown[op] = (uint8_t)flag;
        long group = PyLong_AsLong(PySequence_Fast_GET_ITEM(cl, op));
        if (group == -1 && PyErr_Occurred()) goto free_maps;
        if (group < 0 || group >= nops) {
            PyErr_SetString(PyExc_ValueError, "a class must be below the number of operations");
            goto free_maps;
        }
        s->op_class[op] = (int32_t)group;
        s->known_left += !flag;
        s->zobrist[op] = mix64((uint64_t)op * 0x9e3779b97f4a7c15ULL + 0x632be59bd9b4e019ULL);
        call_of[op] = return_of[op] = -1;
    }
    /* Event k of the sequence is node k + 1; node 0 is the head. */
    s->next[0] = nevents > 0 ? 1 : -1;
    s->prev[0] = -1;
    for (Py_ssize_t k = 0; k < nevents; k++) {
        long code = PyLong_AsLong(PySequence_Fast_GET_ITEM(ev, k));
        if (code == -1 && PyErr_Occurred()) goto free_maps;
        long op = code >> 1;
        int call = (int)(code & 1);
        int32_t *seen = call ? call_of : return_of;
        if (code < 0 || op >= nops || seen[op] >= 0) {
            PyErr_SetString(PyExc_ValueError, "every operation needs one call and one return");
            goto free_maps;
        }
        int32_t node = (int32_t)k + 1;
        seen[op] = node;
        s->op_of[node] = (int32_t)op;
        s->is_call[node] = (uint8_t)call;
        s->prev[node] = node - 1;
        s->next[node] = k + 1 < nevents ? node + 1 : -1;
    }
    for (Py_ssize_t op = 0; op < nops; op++) {
        if (call_of[op] > return_of[op]) {
            PyErr_SetString(PyExc_ValueError, "an operation returns before its call");
            goto free_maps;
        }
        s->match[call_of[op]] = return_of[op];
    }
    Py_INCREF(fn);
    s->step = fn;
    Py_INCREF(operations);
    s->operations = operations;
    Py_INCREF(states);
    s->states = states;
    Py_INCREF(unhashable);
    s->unhashable = unhashable;
    s->ids = PyDict_New();
    if (s->ids == NULL) goto free_maps;
    PyObject *zero = PyLong_FromLong(0);
    if (zero == NULL) goto free_maps;
    int unset = PyDict_SetItem(s->ids, PyList_GET_ITEM(states, 0), zero);
    Py_DECREF(zero);
    if (unset < 0) {
        if (!PyErr_ExceptionMatches(PyExc_TypeError)) goto free_maps;
        PyErr_Clear(); /* the caller's unhashable() knows it */
    }
    s->memory_limit = limit > 0 ? (size_t)limit : SIZE_MAX;
    s->entry = s->next[0];
    s->state = 0;
    s->best_state = 0;
    s->status = s->known_left ? RUNNING : LINEARIZABLE;
    if (memo_add(s, 0, 0) < 0) { /* the empty set in the initial state */
        PyErr_NoMemory();
        goto free_maps;
    }
    rc = 0;
free_maps:
    PyMem_RawFree(call_of);
    PyMem_RawFree(return_of);
done:
    Py_DECREF(ev);
    Py_DECREF(un);
    Py_DECREF(cl);
    return rc;
}

static PyObject *Search_run(Search *s, PyObject *arg) {
    long long budget = PyLong_AsLongLong(arg);
    if (budget == -1 && PyErr_Occurred()) return NULL;
    if (s->op_of == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Search is not initialised");
        return NULL;
    }
    int failed = 0; /* -2: a Python exception, -3: out of memory */
    int32_t *next = s->next;
    int32_t entry = s->entry, state = s->state;
    while (s->status == RUNNING && budget-- > 0) {
        s->steps++;
        if (s->is_call[entry]) {
            int32_t op = s->op_of[entry];
            int32_t ahead = next[entry];
            if (ahead >= 0 && s->is_call[ahead]) {
                /* The scan asks about the next call in this state too, most likely: fetch
                 * its transition's slot while this one is worked out. */
                uint64_t key = ((uint64_t)(uint32_t)state << 32) |
                               (uint32_t)s->op_class[s->op_of[ahead]];
                __builtin_prefetch(&s->table[table_slot(key) & (s->table_cap - 1)]);
            }
            int32_t after = transition(s, op, state);
            if (after < -1) {
                failed = after;
                break;
            }
            if (after >= 0) {
                uint64_t bit = 1ULL << (op & 63);
                s->linearized[op >> 6] |= bit;
                uint64_t hash = s->set_hash ^ s->zobrist[op];
                int added = memo_add(s, hash, after);
                if (added < 0) {
                    s->linearized[op >> 6] &= ~bit;
                    failed = -3;
                    break;
                }
                if (added) {
                    s->set_hash = hash;
                    s->stack[s->depth].event = entry;
                    s->stack[s->depth].before = state;
                    s->depth++;
                    state = after;
                    s->known_left -= !s->unknown[op];
                    lift(s, entry);
                    if (s->depth > s->best_len) {
                        memcpy(s->best + s->agree, s->stack + s->agree,
                               (size_t)(s->depth - s->agree) * sizeof(Frame));
                        s->best_len = s->agree = s->depth;
                        s->best_state = state;
                    }
                    if (s->known_left == 0) s->status = LINEARIZABLE;
                    entry = next[0];
                    continue;
                }
                s->linearized[op >> 6] &= ~bit;
            }
            entry = next[entry];
            continue;
        }
        /* A return event: its operation had to be linearized before this point. */
        if (s->depth == 0) {
            s->status = ILLEGAL;
            break;
        }
        s->depth--;
        if (s->depth < s->agree) s->agree = s->depth;
        entry = s->stack[s->depth].event;
        state = s->stack[s->depth].before;
        int32_t op = s->op_of[entry];
        s->linearized[op >> 6] &= ~(1ULL << (op & 63));
        s->set_hash ^= s->zobrist[op];
        s->known_left += !s->unknown[op];
        unlift(s, entry);
        entry = next[entry];
    }
    s->entry = entry;
    s->state = state;
    if (failed == -2) return NULL;
    if (failed == -3) s->status = OUT_OF_MEMORY;
    return PyLong_FromLong(s->status);
}

/* The linearization (when linearizable) or the longest linearizable prefix found: a list of
 * (operation, state after it). */
static PyObject *Search_path(Search *s, PyObject *Py_UNUSED(ignored)) {
    int ok = s->status == LINEARIZABLE;
    Frame *frames = ok ? s->stack : s->best;
    int32_t len = ok ? s->depth : s->best_len;
    int32_t last = ok ? s->state : s->best_state;
    PyObject *path = PyList_New(len);
    if (path == NULL) return NULL;
    for (int32_t i = 0; i < len; i++) {
        int32_t after = i + 1 < len ? frames[i + 1].before : last;
        PyObject *item = Py_BuildValue("ii", (int)s->op_of[frames[i].event], (int)after);
        if (item == NULL) {
            Py_DECREF(path);
            return NULL;
        }
        PyList_SET_ITEM(path, i, item);
    }
    return path;
}

static PyObject *Search_counts(Search *s, PyObject *Py_UNUSED(ignored)) {
    return Py_BuildValue("{s:K,s:n,s:K,s:n}", "steps", s->steps, "memo", (Py_ssize_t)s->memo_len,
                         "transitions", s->transitions, "bytes", (Py_ssize_t)memory_used(s));
}

static PyMethodDef Search_methods[] = {
    {"run", (PyCFunction)Search_run, METH_O,
     "run(steps) -> status: search for at most that many steps; 0 running, 1 linearizable, "
     "2 illegal, 3 out of memory."},
    {"path", (PyCFunction)Search_path, METH_NOARGS,
     "path() -> [(operation, state after it)]: the linearization, or the longest prefix."},
    {"counts", (PyCFunction)Search_counts, METH_NOARGS,
     "counts() -> {steps, memo, transitions, bytes}."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject SearchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "propworkload._lincheck.Search",
    .tp_doc = PyDoc_STR("The search over one partition of a history (see _linearizability)."),
    .tp_basicsize = sizeof(Search),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = PyType_GenericNew,
    .tp_init = (initproc)Search_init,
    .tp_dealloc = (destructor)Search_dealloc,
    .tp_methods = Search_methods,
};

static struct PyModuleDef lincheck_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "propworkload._lincheck",
    .m_doc = PyDoc_STR("The compiled core of propworkload's linearizability checker."),
    .m_size = -1,
};

PyMODINIT_FUNC PyInit__lincheck(void) {
    if (PyType_Ready(&SearchType) < 0) return NULL;
    PyObject *module = PyModule_Create(&lincheck_module);
    if (module == NULL) return NULL;
    Py_INCREF(&SearchType);
    if (PyModule_AddObject(module, "Search", (PyObject *)&SearchType) < 0) {
        Py_DECREF(&SearchType);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
