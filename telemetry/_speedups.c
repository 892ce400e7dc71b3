/* Telemetry ingest's per-call loop and its COPY rows, in C.
 *
 * The same work as the Python in telemetry/services/ingest.py (`_rows_of`) and psycopg's
 * binary COPY row formatter, for the hot path: 1,000 calls a request, where CPython's
 * per-call statements were most of the web's CPU (bench/README.md, "bench_ingest.py").
 * telemetry/speedups.py loads this module when it was built and falls back to the Python
 * otherwise; tests/telemetry/test_speedups.py checks both give the same rows and bytes.
 *
 * parse_records(records, raw_type, decode, decode_errors, fallback, now, latest,
 *               known_stop_reasons, fromisoformat, call_type) -> (calls, rejected, flag_states)
 * rows_of(calls, now, attributed_as, unattributed, plan_of, user_hash, store_raw_user,
 *         json_columns, keep_sample, row_type) -> (rows, duplicates)
 * sort_rows(rows) -> None
 * group_rows(rows) -> {rollup key: [row, ...]}
 * layout(...) once, then tally(group, rows) -> None
 * copy_binary(rows, kinds) -> bytes
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <datetime.h>
#include <structmember.h>
#include <stdint.h>
#include <math.h>
#include <string.h>

/* CallInput's fields (telemetry/records.py), in order; telemetry/speedups.py checks the
 * names against CallInput._fields at import. */
static const char *CALL_FIELDS[] = {
    "record_index", "request_id", "timestamp", "model", "stop_reason", "stop_reason_known",
    "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
    "cache_read_tokens", "web_search_requests", "web_fetch_requests", "server_tool_use",
    "iterations", "service_tier", "inference_geo", "latency_ms", "ttft_ms", "flag_state",
    "user_id", "session_id", "surface", "error_type", "error_status", "sample", NULL};
enum {
    C_INDEX, C_REQUEST_ID, C_TIMESTAMP, C_MODEL, C_STOP_REASON, C_STOP_KNOWN, C_INPUT,
    C_OUTPUT, C_CACHE_5M, C_CACHE_1H, C_CACHE_READ, C_WEB_SEARCH, C_WEB_FETCH,
    C_SERVER_TOOL_USE, C_ITERATIONS, C_SERVICE_TIER, C_INFERENCE_GEO, C_LATENCY, C_TTFT,
    C_FLAG_STATE, C_USER_ID, C_SESSION_ID, C_SURFACE, C_ERROR_TYPE, C_ERROR_STATUS, C_SAMPLE,
    C_COUNT
};

/* CallRow's fields (telemetry/services/call_store.py), in order; checked the same way. */
static const char *ROW_FIELDS[] = {
    "request_id", "timestamp", "received_at", "model", "stop_reason", "stop_reason_known",
    "input_tokens", "output_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens",
    "cache_read_tokens", "web_search_requests", "web_fetch_requests", "server_tool_use",
    "iterations", "service_tier", "inference_geo", "latency_ms", "ttft_ms", "flag_state",
    "environment_id", "flag_id", "version", "arm", "split_id", "revision", "attributed",
    "user_hash", "user_id", "session_id", "surface", "error_type", "error_status",
    "cost_micro_usd", NULL};
#define ROW_COUNT 34
#define ATTRIBUTION_COUNT 7 /* environment_id, flag_id, version, arm, split_id, revision, attributed */
#define TOKEN_TYPES 5
#define PICO_PER_MICRO 1000000

/* "" and 0, the values of an absent text and count: made once, at import. */
static PyObject *empty_text, *zero;

static PyObject *
names_tuple(const char **names)
{
    Py_ssize_t count = 0;
    while (names[count] != NULL)
        count++;
    PyObject *tuple = PyTuple_New(count);
    if (tuple == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *name = PyUnicode_FromString(names[i]);
        if (name == NULL) {
            Py_DECREF(tuple);
            return NULL;
        }
        PyTuple_SET_ITEM(tuple, i, name);
    }
    return tuple;
}

/* ------------------------------------------------------------------------------------------
 * Pricing: the arithmetic of telemetry.pricing.priced() over a PriceTable.plan().
 * A plan is (long_prompt, rates, premium): long_prompt a tuple of (threshold, rates) from the
 * highest threshold down, rates a 5-tuple of int | None (pico-USD per token, in
 * TOKEN_TYPES' order), premium None or (numerator, denominator). */

typedef struct {
    int known[TOKEN_TYPES];
    __int128 rate[TOKEN_TYPES];
} Rates;

static int
read_rates(PyObject *tuple, Rates *rates)
{
    if (!PyTuple_Check(tuple) || PyTuple_GET_SIZE(tuple) != TOKEN_TYPES) {
        PyErr_SetString(PyExc_TypeError, "a price plan's rates must be a 5-tuple");
        return -1;
    }
    for (int i = 0; i < TOKEN_TYPES; i++) {
        PyObject *rate = PyTuple_GET_ITEM(tuple, i);
        rates->known[i] = rate != Py_None;
        rates->rate[i] = 0;
        if (rates->known[i]) {
            long long value = PyLong_AsLongLong(rate);
            if (value == -1 && PyErr_Occurred())
                return -1;
            if (value < 0) {
                PyErr_SetString(PyExc_ValueError, "a price plan's rate must not be negative");
                return -1;
            }
            rates->rate[i] = value;
        }
    }
    return 0;
}

/* The cost in micro-USD as a new int, or a new reference to None when unknown. */
static PyObject *
priced(PyObject *plan, const long long tokens[TOKEN_TYPES])
{
    if (plan == Py_None)
        Py_RETURN_NONE;
    if (!PyTuple_Check(plan) || PyTuple_GET_SIZE(plan) != 3) {
        PyErr_SetString(PyExc_TypeError, "a price plan must be a 3-tuple");
        return NULL;
    }
    PyObject *long_prompt = PyTuple_GET_ITEM(plan, 0);
    PyObject *selected = PyTuple_GET_ITEM(plan, 1);
    PyObject *premium = PyTuple_GET_ITEM(plan, 2);
    if (!PyTuple_Check(long_prompt)) {
        PyErr_SetString(PyExc_TypeError, "a price plan's long_prompt must be a tuple");
        return NULL;
    }
    long long prompt = tokens[0] + tokens[2] + tokens[3] + tokens[4];
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(long_prompt); i++) {
        PyObject *entry = PyTuple_GET_ITEM(long_prompt, i);
        if (!PyTuple_Check(entry) || PyTuple_GET_SIZE(entry) != 2) {
            PyErr_SetString(PyExc_TypeError, "a long-prompt entry must be (threshold, rates)");
            return NULL;
        }
        long long threshold = PyLong_AsLongLong(PyTuple_GET_ITEM(entry, 0));
        if (threshold == -1 && PyErr_Occurred())
            return NULL;
        if (prompt > threshold) {
            selected = PyTuple_GET_ITEM(entry, 1);
            break;
        }
    }
    Rates rates;
    if (read_rates(selected, &rates) < 0)
        return NULL;
    __int128 total = 0;
    for (int i = 0; i < TOKEN_TYPES; i++) {
        if (tokens[i] == 0)
            continue;
        if (!rates.known[i])
            Py_RETURN_NONE;
        total += (__int128)tokens[i] * rates.rate[i];
    }
    __int128 micro;
    if (premium == Py_None) {
        micro = (total + PICO_PER_MICRO / 2) / PICO_PER_MICRO;
    }
    else {
        if (!PyTuple_Check(premium) || PyTuple_GET_SIZE(premium) != 2) {
            PyErr_SetString(PyExc_TypeError, "a price plan's premium must be (numerator, denominator)");
            return NULL;
        }
        long long numerator = PyLong_AsLongLong(PyTuple_GET_ITEM(premium, 0));
        long long denominator = PyLong_AsLongLong(PyTuple_GET_ITEM(premium, 1));
        if (PyErr_Occurred())
            return NULL;
        if (numerator < 0 || denominator <= 0) {
            PyErr_SetString(PyExc_ValueError, "a price plan's premium must be a positive fraction");
            return NULL;
        }
        __int128 divisor = (__int128)PICO_PER_MICRO * denominator;
        micro = (total * numerator + divisor / 2) / divisor;
    }
    if (micro > INT64_MAX) {
        PyErr_SetString(PyExc_OverflowError, "a call's cost does not fit in 64 bits");
        return NULL;
    }
    return PyLong_FromLongLong((long long)micro);
}

/* The plan for a call, looked up in `cache` (one per batch) or asked of plan_of. Borrowed. */
static PyObject *
plan_for(PyObject *cache, PyObject *plan_of, PyObject *call, PyObject *timestamp)
{
    int day = PyDateTime_GET_YEAR(timestamp) * 10000 + PyDateTime_GET_MONTH(timestamp) * 100 +
              PyDateTime_GET_DAY(timestamp);
    PyObject *day_key = PyLong_FromLong(day);
    if (day_key == NULL)
        return NULL;
    PyObject *key = PyTuple_Pack(4, PyTuple_GET_ITEM(call, C_MODEL), day_key,
                                 PyTuple_GET_ITEM(call, C_SERVICE_TIER),
                                 PyTuple_GET_ITEM(call, C_INFERENCE_GEO));
    Py_DECREF(day_key);
    if (key == NULL)
        return NULL;
    PyObject *plan = PyDict_GetItemWithError(cache, key);
    if (plan == NULL && !PyErr_Occurred()) {
        PyObject *on = PyDate_FromDate(PyDateTime_GET_YEAR(timestamp), PyDateTime_GET_MONTH(timestamp),
                                       PyDateTime_GET_DAY(timestamp));
        if (on != NULL) {
            plan = PyObject_CallFunctionObjArgs(plan_of, PyTuple_GET_ITEM(call, C_MODEL), on,
                                                PyTuple_GET_ITEM(call, C_SERVICE_TIER),
                                                PyTuple_GET_ITEM(call, C_INFERENCE_GEO), NULL);
            Py_DECREF(on);
        }
        if (plan != NULL) {
            int failed = PyDict_SetItem(cache, key, plan);
            Py_DECREF(plan); /* the cache holds it */
            if (failed < 0)
                plan = NULL;
        }
    }
    Py_DECREF(key);
    return plan;
}

/* ------------------------------------------------------------------------------------------
 * rows_of: the ingest loop. */

static int
token_count(PyObject *call, int field, long long *out)
{
    long long value = PyLong_AsLongLong(PyTuple_GET_ITEM(call, field));
    if (value == -1 && PyErr_Occurred())
        return -1;
    *out = value;
    return 0;
}

static int
is_truthy_text(PyObject *text)
{
    return PyUnicode_Check(text) && PyUnicode_GET_LENGTH(text) > 0;
}

static PyObject *
new_row(PyTypeObject *row_type, PyObject *const values[ROW_COUNT])
{
    PyObject *row = row_type->tp_alloc(row_type, ROW_COUNT);
    if (row == NULL)
        return NULL;
    for (int i = 0; i < ROW_COUNT; i++) {
        Py_INCREF(values[i]);
        PyTuple_SET_ITEM(row, i, values[i]);
    }
    return row;
}

static PyObject *
rows_of(PyObject *module, PyObject *args)
{
    PyObject *calls, *now, *attributed_as, *unattributed, *plan_of, *user_hash, *json_columns,
        *keep_sample;
    PyTypeObject *row_type;
    int store_raw_user;
    if (!PyArg_ParseTuple(args, "O!O!O!O!OOpOOO!:rows_of", &PyList_Type, &calls,
                          PyDateTimeAPI->DateTimeType, &now, &PyDict_Type, &attributed_as,
                          &PyTuple_Type, &unattributed, &plan_of, &user_hash, &store_raw_user,
                          &json_columns, &keep_sample, &PyType_Type, &row_type))
        return NULL;
    if (!PyType_IsSubtype(row_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "row_type must be a tuple type");
        return NULL;
    }
    if (PyTuple_GET_SIZE(unattributed) != ATTRIBUTION_COUNT) {
        PyErr_SetString(PyExc_TypeError, "an attribution must be a 7-tuple");
        return NULL;
    }
    PyObject *rows = PyList_New(0);
    PyObject *seen = PySet_New(NULL);
    PyObject *plans = PyDict_New();
    long duplicates = 0;
    if (rows == NULL || seen == NULL || plans == NULL)
        goto error;

    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(calls); i++) {
        PyObject *call = PyList_GET_ITEM(calls, i);
        if (!PyTuple_Check(call) || PyTuple_GET_SIZE(call) != C_COUNT) {
            PyErr_SetString(PyExc_TypeError, "each call must be a CallInput");
            goto error;
        }
        PyObject *flag_state = PyTuple_GET_ITEM(call, C_FLAG_STATE);
        PyObject *attribution = unattributed;
        if (is_truthy_text(flag_state)) {
            PyObject *found = PyDict_GetItemWithError(attributed_as, flag_state);
            if (found != NULL)
                attribution = found;
            else if (PyErr_Occurred())
                goto error;
        }
        if (!PyTuple_Check(attribution) || PyTuple_GET_SIZE(attribution) != ATTRIBUTION_COUNT) {
            PyErr_SetString(PyExc_TypeError, "an attribution must be a 7-tuple");
            goto error;
        }
        PyObject *request_id = PyTuple_GET_ITEM(call, C_REQUEST_ID);
        PyObject *key = PyTuple_Pack(2, request_id, PyTuple_GET_ITEM(attribution, 0));
        if (key == NULL)
            goto error;
        int already = PySet_Contains(seen, key);
        if (already != 0) {
            Py_DECREF(key);
            if (already < 0)
                goto error;
            duplicates++; /* the same call twice in one batch: stored once */
            continue;
        }
        if (PySet_Add(seen, key) < 0) {
            Py_DECREF(key);
            goto error;
        }
        PyObject *server_tool_use = Py_None, *iterations = Py_None, *encoded = NULL;
        if (PyTuple_GET_ITEM(call, C_SERVER_TOOL_USE) != Py_None ||
            PyTuple_GET_ITEM(call, C_ITERATIONS) != Py_None) {
            encoded = PyObject_CallOneArg(json_columns, call);
            if (encoded == NULL) {
                Py_DECREF(key);
                goto error;
            }
            if (encoded == Py_None) { /* unstorable: json_columns rejected the record */
                Py_DECREF(encoded);
                Py_DECREF(key);
                continue;
            }
            if (!PyTuple_Check(encoded) || PyTuple_GET_SIZE(encoded) != 2) {
                PyErr_SetString(PyExc_TypeError, "json_columns must return a pair or None");
                Py_DECREF(encoded);
                Py_DECREF(key);
                goto error;
            }
            server_tool_use = PyTuple_GET_ITEM(encoded, 0);
            iterations = PyTuple_GET_ITEM(encoded, 1);
        }
        PyObject *timestamp = PyTuple_GET_ITEM(call, C_TIMESTAMP);
        long long tokens[TOKEN_TYPES];
        PyObject *cost = NULL, *hashed = NULL, *row = NULL;
        if (!PyDateTime_Check(timestamp)) {
            PyErr_SetString(PyExc_TypeError, "a call's timestamp must be a datetime");
            goto call_error;
        }
        if (token_count(call, C_INPUT, &tokens[0]) < 0 || token_count(call, C_OUTPUT, &tokens[1]) < 0 ||
            token_count(call, C_CACHE_5M, &tokens[2]) < 0 || token_count(call, C_CACHE_1H, &tokens[3]) < 0 ||
            token_count(call, C_CACHE_READ, &tokens[4]) < 0)
            goto call_error;
        PyObject *plan = plan_for(plans, plan_of, call, timestamp);
        if (plan == NULL)
            goto call_error;
        cost = priced(plan, tokens);
        if (cost == NULL)
            goto call_error;
        PyObject *sample = PyTuple_GET_ITEM(call, C_SAMPLE);
        if (sample != Py_None) {
            PyObject *kept = PyObject_CallFunctionObjArgs(keep_sample, key, sample, NULL);
            if (kept == NULL)
                goto call_error;
            Py_DECREF(kept);
        }
        PyObject *user_id = PyTuple_GET_ITEM(call, C_USER_ID);
        if (is_truthy_text(user_id)) {
            hashed = PyObject_CallOneArg(user_hash, user_id);
            if (hashed == NULL)
                goto call_error;
        }
        else {
            hashed = Py_NewRef(empty_text);
        }
        PyObject *const values[ROW_COUNT] = {
            request_id,
            timestamp,
            now, /* received_at */
            PyTuple_GET_ITEM(call, C_MODEL),
            PyTuple_GET_ITEM(call, C_STOP_REASON),
            PyTuple_GET_ITEM(call, C_STOP_KNOWN),
            PyTuple_GET_ITEM(call, C_INPUT),
            PyTuple_GET_ITEM(call, C_OUTPUT),
            PyTuple_GET_ITEM(call, C_CACHE_5M),
            PyTuple_GET_ITEM(call, C_CACHE_1H),
            PyTuple_GET_ITEM(call, C_CACHE_READ),
            PyTuple_GET_ITEM(call, C_WEB_SEARCH),
            PyTuple_GET_ITEM(call, C_WEB_FETCH),
            server_tool_use,
            iterations,
            PyTuple_GET_ITEM(call, C_SERVICE_TIER),
            PyTuple_GET_ITEM(call, C_INFERENCE_GEO),
            PyTuple_GET_ITEM(call, C_LATENCY),
            PyTuple_GET_ITEM(call, C_TTFT),
            flag_state,
            PyTuple_GET_ITEM(attribution, 0), /* environment_id */
            PyTuple_GET_ITEM(attribution, 1), /* flag_id */
            PyTuple_GET_ITEM(attribution, 2), /* version */
            PyTuple_GET_ITEM(attribution, 3), /* arm */
            PyTuple_GET_ITEM(attribution, 4), /* split_id */
            PyTuple_GET_ITEM(attribution, 5), /* revision */
            PyTuple_GET_ITEM(attribution, 6), /* attributed */
            hashed,
            store_raw_user ? user_id : empty_text,
            PyTuple_GET_ITEM(call, C_SESSION_ID),
            PyTuple_GET_ITEM(call, C_SURFACE),
            PyTuple_GET_ITEM(call, C_ERROR_TYPE),
            PyTuple_GET_ITEM(call, C_ERROR_STATUS),
            cost,
        };
        row = new_row(row_type, values);
        if (row == NULL || PyList_Append(rows, row) < 0)
            goto call_error;
        Py_DECREF(row);
        Py_DECREF(hashed);
        Py_DECREF(cost);
        Py_XDECREF(encoded);
        Py_DECREF(key);
        continue;
    call_error:
        Py_XDECREF(row);
        Py_XDECREF(hashed);
        Py_XDECREF(cost);
        Py_XDECREF(encoded);
        Py_DECREF(key);
        goto error;
    }
    Py_DECREF(seen);
    Py_DECREF(plans);
    PyObject *result = Py_BuildValue("(Nl)", rows, duplicates);
    return result;

error:
    Py_XDECREF(rows);
    Py_XDECREF(seen);
    Py_XDECREF(plans);
    return NULL;
}

/* ------------------------------------------------------------------------------------------
 * parse_records: telemetry.records.parse_json_record over a batch, for the common record.
 *
 * Each record's JSON text is decoded by msgspec (`decode`, into records.py's structs, which
 * check every bound); a record that is not Raw, does not decode, or has anything but the
 * common case (a timestamp other than UTC and not ahead, server_tool_use, iterations, a
 * sample) goes whole to `fallback(record, index)`, the Python, which returns its CallInput or
 * its errors. */

enum {
    A_REQUEST_ID, A_MODEL, A_TIMESTAMP, A_STOP_REASON, A_USAGE, A_LATENCY, A_TTFT, A_FLAG_STATE,
    A_USER_ID, A_SESSION_ID, A_SURFACE, A_ERROR, A_SAMPLE, A_INPUT, A_OUTPUT, A_CACHE_CREATION_INPUT,
    A_CACHE_READ, A_CACHE_CREATION, A_SERVER_TOOL_USE, A_ITERATIONS, A_SERVICE_TIER,
    A_INFERENCE_GEO, A_5M, A_1H, A_TYPE, A_STATUS, A_COUNT
};
static const char *ATTRIBUTE_NAMES[A_COUNT] = {
    "request_id", "model", "timestamp", "stop_reason", "usage", "latency_ms", "ttft_ms",
    "flag_state", "user_id", "session_id", "surface", "error", "sample", "input_tokens",
    "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "cache_creation",
    "server_tool_use", "iterations", "service_tier", "inference_geo",
    "ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens", "type", "status"};
static PyObject *attribute_names[A_COUNT];

/* What parse_json_record makes of one decoded record: a new CallInput, NULL with an
 * exception, or NULL without one when the record is not the common case. */
typedef struct {
    PyObject *now, *latest, *known_stop_reasons, *fromisoformat, *call_type;
} ParseContext;

/* Where each attribute sits in the decoded structs: msgspec's Struct fields are slots (member
 * descriptors of objects), so a field is read at its offset, as the descriptor itself reads it,
 * instead of a PyObject_GetAttr per field (most of this step's time). Learnt per type at first
 * sight, from the type's own descriptors; any other attribute goes through PyObject_GetAttr. */
#define STRUCT_TYPES 8
static struct {
    PyTypeObject *type; /* a strong reference: the address is never reused by another type */
    Py_ssize_t offset[A_COUNT]; /* -1: not a plain object slot of this type */
} struct_layouts[STRUCT_TYPES];

static const Py_ssize_t *
offsets_of(PyTypeObject *type)
{
    int free = -1;
    for (int i = 0; i < STRUCT_TYPES; i++) {
        if (struct_layouts[i].type == type)
            return struct_layouts[i].offset;
        if (struct_layouts[i].type == NULL && free < 0)
            free = i;
    }
    if (free < 0)
        return NULL;
    for (int name = 0; name < A_COUNT; name++) {
        struct_layouts[free].offset[name] = -1;
        PyObject *descriptor = PyObject_GetAttr((PyObject *)type, attribute_names[name]);
        if (descriptor == NULL) {
            PyErr_Clear();
            continue;
        }
        if (Py_IS_TYPE(descriptor, &PyMemberDescr_Type)) {
            PyMemberDef *member = ((PyMemberDescrObject *)descriptor)->d_member;
            if (member->type == T_OBJECT_EX && ((PyMemberDescrObject *)descriptor)->d_common.d_type == type)
                struct_layouts[free].offset[name] = member->offset;
        }
        Py_DECREF(descriptor);
    }
    struct_layouts[free].type = (PyTypeObject *)Py_NewRef(type);
    return struct_layouts[free].offset;
}

static PyObject *
attribute(PyObject *object, int name)
{
    const Py_ssize_t *offsets = offsets_of(Py_TYPE(object));
    if (offsets != NULL && offsets[name] >= 0) {
        PyObject *value = *(PyObject **)((char *)object + offsets[name]);
        if (value != NULL)
            return Py_NewRef(value);
    }
    return PyObject_GetAttr(object, attribute_names[name]);
}

/* An attribute, `absent` when it is None (0 for a count, "" for a text). New reference. */
static PyObject *
or_default(PyObject *object, int name, PyObject *absent)
{
    PyObject *value = attribute(object, name);
    if (value == Py_None) {
        Py_DECREF(value);
        return Py_NewRef(absent);
    }
    return value;
}

/* round(duration), None kept. New reference. */
static PyObject *
duration_of(PyObject *object, int name)
{
    PyObject *value = attribute(object, name);
    if (value == NULL || value == Py_None || PyLong_CheckExact(value))
        return value;
    if (!PyFloat_CheckExact(value)) {
        PyErr_SetString(PyExc_TypeError, "a duration must be a number");
        Py_DECREF(value);
        return NULL;
    }
    /* round() of a float: to the nearest, ties to even, as nearbyint in the default mode;
     * exact, since parse checks 0 <= value <= 2**31 - 1. */
    PyObject *rounded = PyLong_FromDouble(nearbyint(PyFloat_AS_DOUBLE(value)));
    Py_DECREF(value);
    return rounded;
}

static PyObject *
common_call(ParseContext *context, PyObject *record, Py_ssize_t index)
{
    PyObject *values[C_COUNT] = {NULL};
    PyObject *call = NULL, *usage = NULL, *error = NULL, *cache_creation = NULL, *other = NULL;
    int uncommon = 0;

    /* The rare fields first: any of them sends the record to the Python. */
    other = attribute(record, A_SAMPLE);
    if (other == NULL)
        goto done;
    uncommon = other != Py_None;
    Py_CLEAR(other);
    if (uncommon)
        goto done;
    usage = attribute(record, A_USAGE);
    if (usage == NULL)
        goto done;
    if (usage != Py_None) {
        for (int name = A_SERVER_TOOL_USE; name <= A_ITERATIONS && !uncommon; name++) {
            other = attribute(usage, name);
            if (other == NULL)
                goto done;
            uncommon = other != Py_None;
            Py_CLEAR(other);
        }
        if (uncommon)
            goto done;
    }

    PyObject *timestamp_text = attribute(record, A_TIMESTAMP);
    if (timestamp_text == NULL)
        goto done;
    if (timestamp_text == Py_None) {
        Py_DECREF(timestamp_text);
        values[C_TIMESTAMP] = Py_NewRef(context->now);
    }
    else {
        PyObject *moment = PyObject_CallOneArg(context->fromisoformat, timestamp_text);
        Py_DECREF(timestamp_text);
        if (moment == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_ValueError))
                goto done;
            PyErr_Clear(); /* the Python says what is wrong with it */
            uncommon = 1;
            goto done;
        }
        /* The common case (UTC, not ahead); the Python judges every other. */
        int ahead = 1;
        if (PyDateTime_Check(moment) && PyDateTime_DATE_GET_TZINFO(moment) == PyDateTime_TimeZone_UTC) {
            ahead = PyObject_RichCompareBool(moment, context->latest, Py_GT);
            if (ahead < 0) {
                Py_DECREF(moment);
                goto done;
            }
        }
        if (ahead) {
            Py_DECREF(moment);
            uncommon = 1;
            goto done;
        }
        values[C_TIMESTAMP] = moment;
    }

    if (usage == Py_None) {
        for (int field = C_INPUT; field <= C_CACHE_READ; field++)
            values[field] = Py_NewRef(zero);
        values[C_SERVICE_TIER] = Py_NewRef(empty_text);
        values[C_INFERENCE_GEO] = Py_NewRef(empty_text);
    }
    else {
        if (!(values[C_INPUT] = or_default(usage, A_INPUT, zero)) ||
            !(values[C_OUTPUT] = or_default(usage, A_OUTPUT, zero)) ||
            !(values[C_CACHE_READ] = or_default(usage, A_CACHE_READ, zero)) ||
            !(cache_creation = attribute(usage, A_CACHE_CREATION)))
            goto done;
        if (cache_creation == Py_None) { /* without the split, the 5-minute TTL */
            if (!(values[C_CACHE_5M] = or_default(usage, A_CACHE_CREATION_INPUT, zero)))
                goto done;
            values[C_CACHE_1H] = Py_NewRef(zero);
        }
        else if (!(values[C_CACHE_5M] = or_default(cache_creation, A_5M, zero)) ||
                 !(values[C_CACHE_1H] = or_default(cache_creation, A_1H, zero)))
            goto done;
        if (!(values[C_SERVICE_TIER] = or_default(usage, A_SERVICE_TIER, empty_text)) ||
            !(values[C_INFERENCE_GEO] = or_default(usage, A_INFERENCE_GEO, empty_text)))
            goto done;
    }
    values[C_WEB_SEARCH] = Py_NewRef(zero);
    values[C_WEB_FETCH] = Py_NewRef(zero);
    values[C_SERVER_TOOL_USE] = Py_NewRef(Py_None);
    values[C_ITERATIONS] = Py_NewRef(Py_None);
    values[C_SAMPLE] = Py_NewRef(Py_None);

    if (!(values[C_INDEX] = PyLong_FromSsize_t(index)) ||
        !(values[C_REQUEST_ID] = attribute(record, A_REQUEST_ID)) ||
        !(values[C_MODEL] = attribute(record, A_MODEL)) ||
        !(values[C_STOP_REASON] = or_default(record, A_STOP_REASON, empty_text)) ||
        !(values[C_LATENCY] = duration_of(record, A_LATENCY)) ||
        !(values[C_TTFT] = duration_of(record, A_TTFT)) ||
        !(values[C_FLAG_STATE] = or_default(record, A_FLAG_STATE, empty_text)) ||
        !(values[C_SESSION_ID] = or_default(record, A_SESSION_ID, empty_text)) ||
        !(values[C_SURFACE] = or_default(record, A_SURFACE, empty_text)) ||
        !(values[C_USER_ID] = or_default(record, A_USER_ID, empty_text)))
        goto done;
    if (!PyUnicode_Check(values[C_USER_ID])) { /* an integer id, stored as its text */
        PyObject *text = PyObject_Str(values[C_USER_ID]);
        if (text == NULL)
            goto done;
        Py_SETREF(values[C_USER_ID], text);
    }
    int known = PyUnicode_GET_LENGTH(values[C_STOP_REASON]) == 0;
    if (!known) {
        known = PySet_Contains(context->known_stop_reasons, values[C_STOP_REASON]);
        if (known < 0)
            goto done;
    }
    values[C_STOP_KNOWN] = PyBool_FromLong(known);
    error = attribute(record, A_ERROR);
    if (error == NULL)
        goto done;
    if (error == Py_None) {
        values[C_ERROR_TYPE] = Py_NewRef(empty_text);
        values[C_ERROR_STATUS] = Py_NewRef(Py_None);
    }
    else if (!(values[C_ERROR_TYPE] = attribute(error, A_TYPE)) ||
             !(values[C_ERROR_STATUS] = attribute(error, A_STATUS)))
        goto done;

    PyTypeObject *call_type = (PyTypeObject *)context->call_type;
    call = call_type->tp_alloc(call_type, C_COUNT);
    if (call != NULL) {
        for (int field = 0; field < C_COUNT; field++) {
            PyTuple_SET_ITEM(call, field, values[field]);
            values[field] = NULL;
        }
    }
done:
    for (int field = 0; field < C_COUNT; field++)
        Py_XDECREF(values[field]);
    Py_XDECREF(usage);
    Py_XDECREF(error);
    Py_XDECREF(cache_creation);
    return call;
}

static PyObject *
parse_records(PyObject *module, PyObject *args)
{
    PyObject *records, *raw_type, *decode, *fallback, *decode_errors;
    ParseContext context;
    if (!PyArg_ParseTuple(args, "O!OOOOO!O!O!OO!:parse_records", &PyList_Type, &records, &raw_type,
                          &decode, &decode_errors, &fallback, PyDateTimeAPI->DateTimeType, &context.now,
                          PyDateTimeAPI->DateTimeType, &context.latest, &PyFrozenSet_Type,
                          &context.known_stop_reasons, &context.fromisoformat, &PyType_Type,
                          &context.call_type))
        return NULL;
    if (!PyType_IsSubtype((PyTypeObject *)context.call_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "call_type must be a tuple type");
        return NULL;
    }
    PyObject *calls = PyList_New(0);
    PyObject *rejected = PyDict_New();
    PyObject *flag_states = PySet_New(NULL);
    if (calls == NULL || rejected == NULL || flag_states == NULL)
        goto error;
    for (Py_ssize_t index = 0; index < PyList_GET_SIZE(records); index++) {
        PyObject *record = PyList_GET_ITEM(records, index);
        PyObject *parsed = NULL;
        if (Py_TYPE(record) == (PyTypeObject *)raw_type) {
            PyObject *decoded = PyObject_CallOneArg(decode, record);
            if (decoded != NULL) {
                parsed = common_call(&context, decoded, index);
                Py_DECREF(decoded);
            }
            else if (PyErr_ExceptionMatches(decode_errors)) {
                PyErr_Clear();
            }
            if (parsed == NULL && PyErr_Occurred())
                goto error;
        }
        if (parsed == NULL) {
            PyObject *position = PyLong_FromSsize_t(index);
            if (position == NULL)
                goto error;
            parsed = PyObject_CallFunctionObjArgs(fallback, record, position, NULL);
            Py_DECREF(position);
            if (parsed == NULL)
                goto error;
        }
        int failed;
        if (PyList_CheckExact(parsed)) { /* its errors */
            PyObject *position = PyLong_FromSsize_t(index);
            failed = position == NULL || PyDict_SetItem(rejected, position, parsed) < 0;
            Py_XDECREF(position);
        }
        else {
            PyObject *flag_state = PyTuple_Check(parsed) && PyTuple_GET_SIZE(parsed) == C_COUNT
                                       ? PyTuple_GET_ITEM(parsed, C_FLAG_STATE)
                                       : NULL;
            if (flag_state == NULL) {
                PyErr_SetString(PyExc_TypeError, "a parsed record must be a CallInput or a list of errors");
                failed = 1;
            }
            else {
                failed = PyList_Append(calls, parsed) < 0 ||
                         (is_truthy_text(flag_state) && PySet_Add(flag_states, flag_state) < 0);
            }
        }
        Py_DECREF(parsed);
        if (failed)
            goto error;
    }
    return Py_BuildValue("(NNN)", calls, rejected, flag_states);

error:
    Py_XDECREF(calls);
    Py_XDECREF(rejected);
    Py_XDECREF(flag_states);
    return NULL;
}

/* ------------------------------------------------------------------------------------------
 * group_rows: RollupBatch.add_calls' sorting of stored rows into their rollup keys,
 * (minute, environment_id, flag_id, version, arm, model), the minute being
 * int(timestamp.timestamp()) // 60; an unattributed row rolls up under no flag. */

enum { R_TIMESTAMP = 1, R_MODEL = 3, R_ENVIRONMENT = 20, R_FLAG = 21, R_VERSION = 22, R_ARM = 23,
       R_ATTRIBUTED = 26 };

static long long floor_div(long long a, long long b) { return a / b - ((a % b != 0) && ((a < 0) != (b < 0))); }

/* Defined with copy_binary, below: microseconds from 2000-01-01 00:00 UTC. */
static int pg_timestamptz(PyObject *value, long long *out);
#define PG_EPOCH_MICROS (10957LL * 86400 * 1000000)

static PyObject *
minute_of(PyObject *timestamp)
{
    long long micros;
    if (!PyDateTime_Check(timestamp)) {
        PyErr_SetString(PyExc_TypeError, "a row's timestamp must be a datetime");
        return NULL;
    }
    if (pg_timestamptz(timestamp, &micros) < 0)
        return NULL;
    micros += PG_EPOCH_MICROS;
    /* timestamp() is micros / 10**6 correctly rounded, as a double's division is when micros
     * is exact in a double; int() truncates it. Otherwise ask Python. */
    if (micros <= (1LL << 53) && micros >= -(1LL << 53))
        return PyLong_FromLongLong(floor_div((long long)((double)micros / 1e6), 60));
    PyObject *seconds = PyObject_CallMethod(timestamp, "timestamp", NULL);
    if (seconds == NULL)
        return NULL;
    PyObject *whole = PyNumber_Long(seconds);
    Py_DECREF(seconds);
    if (whole == NULL)
        return NULL;
    PyObject *sixty = PyLong_FromLong(60);
    PyObject *minute = sixty == NULL ? NULL : PyNumber_FloorDivide(whole, sixty);
    Py_XDECREF(sixty);
    Py_DECREF(whole);
    return minute;
}

static PyObject *
group_rows(PyObject *module, PyObject *args)
{
    PyObject *rows;
    if (!PyArg_ParseTuple(args, "O!:group_rows", &PyList_Type, &rows))
        return NULL;
    PyObject *groups = PyDict_New();
    if (groups == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(rows); i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != ROW_COUNT) {
            PyErr_SetString(PyExc_TypeError, "each row must be a CallRow");
            goto error;
        }
        PyObject *minute = minute_of(PyTuple_GET_ITEM(row, R_TIMESTAMP));
        if (minute == NULL)
            goto error;
        int attributed = PyObject_IsTrue(PyTuple_GET_ITEM(row, R_ATTRIBUTED));
        if (attributed < 0) {
            Py_DECREF(minute);
            goto error;
        }
        PyObject *key =
            attributed
                ? PyTuple_Pack(6, minute, PyTuple_GET_ITEM(row, R_ENVIRONMENT), PyTuple_GET_ITEM(row, R_FLAG),
                               PyTuple_GET_ITEM(row, R_VERSION), PyTuple_GET_ITEM(row, R_ARM),
                               PyTuple_GET_ITEM(row, R_MODEL))
                : PyTuple_Pack(6, minute, PyTuple_GET_ITEM(row, R_ENVIRONMENT), Py_None, Py_None, empty_text,
                               PyTuple_GET_ITEM(row, R_MODEL));
        Py_DECREF(minute);
        if (key == NULL)
            goto error;
        PyObject *calls = PyDict_GetItemWithError(groups, key);
        int failed;
        if (calls != NULL) {
            failed = PyList_Append(calls, row) < 0;
        }
        else if (PyErr_Occurred()) {
            failed = 1;
        }
        else {
            calls = PyList_New(1);
            failed = calls == NULL;
            if (!failed) {
                PyList_SET_ITEM(calls, 0, Py_NewRef(row));
                failed = PyDict_SetItem(groups, key, calls) < 0;
                Py_DECREF(calls);
            }
        }
        Py_DECREF(key);
        if (failed)
            goto error;
    }
    return groups;

error:
    Py_DECREF(groups);
    return NULL;
}

/* ------------------------------------------------------------------------------------------
 * sort_rows: insert_new_calls' lock order, rows.sort(key=(request_id, environment_id or 0)),
 * in place and stable, without a key tuple and a Python call per row. */

typedef struct {
    PyObject *row;
    PyObject *request_id;
    long long environment;
    Py_ssize_t position;
} SortItem;

static int sort_failed;

static int
compare_items(const void *left, const void *right)
{
    const SortItem *a = left, *b = right;
    int order = PyUnicode_Compare(a->request_id, b->request_id);
    if (order == -1 && PyErr_Occurred()) {
        sort_failed = 1;
        return 0;
    }
    if (order != 0)
        return order;
    if (a->environment != b->environment)
        return a->environment < b->environment ? -1 : 1;
    return a->position < b->position ? -1 : (a->position > b->position);
}

static PyObject *
sort_rows(PyObject *module, PyObject *args)
{
    PyObject *rows;
    if (!PyArg_ParseTuple(args, "O!:sort_rows", &PyList_Type, &rows))
        return NULL;
    Py_ssize_t count = PyList_GET_SIZE(rows);
    SortItem *items = PyMem_New(SortItem, count > 0 ? count : 1);
    if (items == NULL)
        return PyErr_NoMemory();
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != ROW_COUNT ||
            !PyUnicode_Check(PyTuple_GET_ITEM(row, 0))) {
            PyMem_Free(items);
            PyErr_SetString(PyExc_TypeError, "each row must be a CallRow");
            return NULL;
        }
        PyObject *environment = PyTuple_GET_ITEM(row, R_ENVIRONMENT);
        long long value = 0;
        if (environment != Py_None) {
            value = PyLong_AsLongLong(environment);
            if (value == -1 && PyErr_Occurred()) {
                PyMem_Free(items);
                return NULL;
            }
        }
        items[i] = (SortItem){row, PyTuple_GET_ITEM(row, 0), value, i};
    }
    sort_failed = 0; /* the GIL is held throughout: no other sort runs meanwhile */
    qsort(items, (size_t)count, sizeof(SortItem), compare_items);
    if (sort_failed) {
        PyMem_Free(items);
        return NULL;
    }
    /* The list holds the same rows, each once: only their places change. */
    for (Py_ssize_t i = 0; i < count; i++)
        PyList_SET_ITEM(rows, i, items[i].row);
    PyMem_Free(items);
    Py_RETURN_NONE;
}

/* ------------------------------------------------------------------------------------------
 * tally: rollups._Group.add for one group's rows: its counters, the sum of squared costs, the
 * latency and TTFT histograms and the error-type and stop-reason counts, added to the group's
 * own list, int and dicts. The layout comes once from telemetry/services/rollups.py (layout()). */

enum { R_STOP_REASON = 4, R_INPUT = 6, R_LATENCY = 17, R_TTFT = 18, R_ERROR_TYPE = 31, R_COST = 33 };
#define SMALL_BUCKETS 256

static struct {
    PyObject *stop_index;      /* dict: stop reason -> counter position */
    Py_ssize_t counters;       /* the counter list's length */
    Py_ssize_t calls, errors, stop_other, stop_none, tokens, cost, cost_unknown;
    PyObject *metrics[2];      /* the histogram metrics of latency_ms and ttft_ms */
    PyObject *error_kind, *stop_kind;
    PyObject *bucket_table;    /* list: bucket_of(n) of every whole n below its length */
    PyObject *bucket_of;       /* the function, for larger values */
    PyObject *counters_name, *cost_sq_name, *histogram_name, *counts_name;
} rollup;

static PyObject *
layout(PyObject *module, PyObject *args)
{
    PyObject *stop_index, *metrics, *table, *bucket_of, *error_kind, *stop_kind;
    Py_ssize_t counters, calls, errors, stop_other, stop_none, tokens, cost, cost_unknown;
    if (!PyArg_ParseTuple(args, "O!nnnnnnnnO!OOO!O:layout", &PyDict_Type, &stop_index, &counters, &calls,
                          &errors, &stop_other, &stop_none, &tokens, &cost, &cost_unknown, &PyTuple_Type,
                          &metrics, &error_kind, &stop_kind, &PyList_Type, &table, &bucket_of))
        return NULL;
    if (PyTuple_GET_SIZE(metrics) != 2) {
        PyErr_SetString(PyExc_TypeError, "metrics must be (latency, ttft)");
        return NULL;
    }
    Py_ssize_t positions[] = {calls, errors, stop_other, stop_none, tokens + TOKEN_TYPES - 1, cost, cost_unknown};
    for (size_t i = 0; i < sizeof positions / sizeof positions[0]; i++) {
        if (positions[i] < 0 || positions[i] >= counters) {
            PyErr_SetString(PyExc_ValueError, "a counter position outside the counters");
            return NULL;
        }
    }
    Py_XSETREF(rollup.stop_index, Py_NewRef(stop_index));
    Py_XSETREF(rollup.metrics[0], Py_NewRef(PyTuple_GET_ITEM(metrics, 0)));
    Py_XSETREF(rollup.metrics[1], Py_NewRef(PyTuple_GET_ITEM(metrics, 1)));
    Py_XSETREF(rollup.error_kind, Py_NewRef(error_kind));
    Py_XSETREF(rollup.stop_kind, Py_NewRef(stop_kind));
    Py_XSETREF(rollup.bucket_table, Py_NewRef(table));
    Py_XSETREF(rollup.bucket_of, Py_NewRef(bucket_of));
    rollup.counters = counters;
    rollup.calls = calls;
    rollup.errors = errors;
    rollup.stop_other = stop_other;
    rollup.stop_none = stop_none;
    rollup.tokens = tokens;
    rollup.cost = cost;
    rollup.cost_unknown = cost_unknown;
    Py_RETURN_NONE;
}

/* dict[key] = dict.get(key, 0) + n */
static int
add_count(PyObject *dict, PyObject *first, PyObject *second, long long n)
{
    PyObject *key = PyTuple_Pack(2, first, second);
    if (key == NULL)
        return -1;
    PyObject *old = PyDict_GetItemWithError(dict, key);
    PyObject *added = NULL;
    if (old != NULL || !PyErr_Occurred()) {
        PyObject *increment = PyLong_FromLongLong(n);
        if (increment != NULL) {
            added = old != NULL ? PyNumber_Add(old, increment) : Py_NewRef(increment);
            Py_DECREF(increment);
        }
    }
    int failed = added == NULL || PyDict_SetItem(dict, key, added) < 0;
    Py_XDECREF(added);
    Py_DECREF(key);
    return failed ? -1 : 0;
}

/* list[position] += n */
static int
add_counter(PyObject *list, Py_ssize_t position, PyObject *n)
{
    PyObject *sum = PyNumber_Add(PyList_GET_ITEM(list, position), n);
    if (sum == NULL)
        return -1;
    PyList_SetItem(list, position, sum); /* steals sum */
    return 0;
}

static int
add_counter_ll(PyObject *list, Py_ssize_t position, long long n)
{
    if (n == 0)
        return 0;
    PyObject *value = PyLong_FromLongLong(n);
    if (value == NULL)
        return -1;
    int failed = add_counter(list, position, value);
    Py_DECREF(value);
    return failed;
}

/* An unsigned 128-bit sum as a Python int. */
static PyObject *
from_u128(unsigned __int128 value)
{
    PyObject *high = PyLong_FromUnsignedLongLong((unsigned long long)(value >> 64));
    PyObject *low = PyLong_FromUnsignedLongLong((unsigned long long)value);
    PyObject *shift = PyLong_FromLong(64);
    PyObject *result = NULL;
    if (high != NULL && low != NULL && shift != NULL) {
        PyObject *shifted = PyNumber_Lshift(high, shift);
        if (shifted != NULL) {
            result = PyNumber_Or(shifted, low);
            Py_DECREF(shifted);
        }
    }
    Py_XDECREF(high);
    Py_XDECREF(low);
    Py_XDECREF(shift);
    return result;
}

/* The histogram bucket of a whole, non-negative duration. */
static long long
bucket_for(PyObject *duration)
{
    long long value = PyLong_AsLongLong(duration);
    if (value == -1 && PyErr_Occurred())
        return -1;
    if (value >= 0 && value < PyList_GET_SIZE(rollup.bucket_table))
        return PyLong_AsLongLong(PyList_GET_ITEM(rollup.bucket_table, value));
    PyObject *bucket = PyObject_CallOneArg(rollup.bucket_of, duration);
    if (bucket == NULL)
        return -1;
    long long result = PyLong_AsLongLong(bucket);
    Py_DECREF(bucket);
    return result;
}

static PyObject *
tally(PyObject *module, PyObject *args)
{
    PyObject *group, *rows;
    if (!PyArg_ParseTuple(args, "OO!:tally", &group, &PyList_Type, &rows))
        return NULL;
    if (rollup.stop_index == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "tally before layout");
        return NULL;
    }
    PyObject *counters = PyObject_GetAttr(group, rollup.counters_name);
    PyObject *histogram = PyObject_GetAttr(group, rollup.histogram_name);
    PyObject *counts = PyObject_GetAttr(group, rollup.counts_name);
    PyObject *cost_sq = NULL;
    long long *by_stop = NULL;
    if (counters == NULL || histogram == NULL || counts == NULL)
        goto error;
    if (!PyList_CheckExact(counters) || PyList_GET_SIZE(counters) != rollup.counters || !PyDict_Check(histogram) ||
        !PyDict_Check(counts)) {
        PyErr_SetString(PyExc_TypeError, "a group holds a counter list and two dicts");
        goto error;
    }
    by_stop = PyMem_Calloc((size_t)rollup.counters, sizeof(long long));
    if (by_stop == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    long long tokens[TOKEN_TYPES] = {0}, errors = 0, cost_unknown = 0;
    unsigned __int128 cost = 0, squares = 0;
    long long small[2][SMALL_BUCKETS] = {{0}};
    Py_ssize_t count = PyList_GET_SIZE(rows);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != ROW_COUNT) {
            PyErr_SetString(PyExc_TypeError, "each row must be a CallRow");
            goto error;
        }
        for (int t = 0; t < TOKEN_TYPES; t++) {
            long long value = PyLong_AsLongLong(PyTuple_GET_ITEM(row, R_INPUT + t));
            if ((value == -1 && PyErr_Occurred()) || __builtin_add_overflow(tokens[t], value, &tokens[t])) {
                if (!PyErr_Occurred())
                    PyErr_SetString(PyExc_OverflowError, "a group's tokens pass 64 bits");
                goto error;
            }
        }
        PyObject *error_type = PyTuple_GET_ITEM(row, R_ERROR_TYPE);
        if (PyObject_IsTrue(error_type)) {
            errors++;
            if (add_count(counts, rollup.error_kind, error_type, 1) < 0)
                goto error;
        }
        PyObject *stop_reason = PyTuple_GET_ITEM(row, R_STOP_REASON);
        if (!PyObject_IsTrue(stop_reason)) {
            by_stop[rollup.stop_none]++;
        }
        else {
            PyObject *position = PyDict_GetItemWithError(rollup.stop_index, stop_reason);
            if (position != NULL) {
                Py_ssize_t at = PyLong_AsSsize_t(position);
                if (at < 0 || at >= rollup.counters) {
                    if (!PyErr_Occurred())
                        PyErr_SetString(PyExc_ValueError, "a stop reason's counter outside the counters");
                    goto error;
                }
                by_stop[at]++;
            }
            else if (PyErr_Occurred()) {
                goto error;
            }
            else {
                by_stop[rollup.stop_other]++;
                if (add_count(counts, rollup.stop_kind, stop_reason, 1) < 0)
                    goto error;
            }
        }
        PyObject *call_cost = PyTuple_GET_ITEM(row, R_COST);
        if (call_cost == Py_None) {
            cost_unknown++;
        }
        else {
            long long value = PyLong_AsLongLong(call_cost);
            if (value == -1 && PyErr_Occurred())
                goto error;
            if (value < 0) { /* priced() never gives one */
                PyErr_SetString(PyExc_ValueError, "a negative cost");
                goto error;
            }
            /* Each cost is under 2**63, its square under 2**126: 1,000 of them cannot overflow
             * 128 bits, but a group may hold more. */
            unsigned __int128 square = (unsigned __int128)value * (unsigned __int128)value;
            cost += (unsigned __int128)value;
            if (__builtin_add_overflow(squares, square, &squares)) {
                PyErr_SetString(PyExc_OverflowError, "a group's squared costs pass 128 bits");
                goto error;
            }
        }
        for (int metric = 0; metric < 2; metric++) {
            PyObject *duration = PyTuple_GET_ITEM(row, metric == 0 ? R_LATENCY : R_TTFT);
            if (duration == Py_None)
                continue;
            long long bucket = bucket_for(duration);
            if (bucket == -1 && PyErr_Occurred())
                goto error;
            if (bucket >= 0 && bucket < SMALL_BUCKETS) {
                small[metric][bucket]++;
            }
            else {
                PyObject *key = PyLong_FromLongLong(bucket);
                int failed = key == NULL || add_count(histogram, rollup.metrics[metric], key, 1) < 0;
                Py_XDECREF(key);
                if (failed)
                    goto error;
            }
        }
    }
    for (int metric = 0; metric < 2; metric++) {
        for (int bucket = 0; bucket < SMALL_BUCKETS; bucket++) {
            if (small[metric][bucket] == 0)
                continue;
            PyObject *key = PyLong_FromLong(bucket);
            int failed = key == NULL || add_count(histogram, rollup.metrics[metric], key, small[metric][bucket]) < 0;
            Py_XDECREF(key);
            if (failed)
                goto error;
        }
    }
    by_stop[rollup.calls] += count;
    by_stop[rollup.errors] += errors;
    by_stop[rollup.cost_unknown] += cost_unknown;
    for (int t = 0; t < TOKEN_TYPES; t++)
        by_stop[rollup.tokens + t] += tokens[t];
    for (Py_ssize_t position = 0; position < rollup.counters; position++) {
        if (add_counter_ll(counters, position, by_stop[position]) < 0)
            goto error;
    }
    PyObject *cost_sum = from_u128(cost);
    int failed = cost_sum == NULL || add_counter(counters, rollup.cost, cost_sum) < 0;
    Py_XDECREF(cost_sum);
    if (failed)
        goto error;
    PyObject *old = PyObject_GetAttr(group, rollup.cost_sq_name);
    PyObject *squared = from_u128(squares);
    if (old != NULL && squared != NULL)
        cost_sq = PyNumber_Add(old, squared);
    Py_XDECREF(old);
    Py_XDECREF(squared);
    if (cost_sq == NULL || PyObject_SetAttr(group, rollup.cost_sq_name, cost_sq) < 0)
        goto error;
    Py_DECREF(cost_sq);
    PyMem_Free(by_stop);
    Py_DECREF(counters);
    Py_DECREF(histogram);
    Py_DECREF(counts);
    Py_RETURN_NONE;

error:
    Py_XDECREF(cost_sq);
    PyMem_Free(by_stop);
    Py_XDECREF(counters);
    Py_XDECREF(histogram);
    Py_XDECREF(counts);
    return NULL;
}

/* ------------------------------------------------------------------------------------------
 * copy_binary: PostgreSQL's binary COPY format (the signature, each row, the trailer) for
 * rows of the column kinds given, one byte a column:
 *   't' text, 'j' jsonb from JSON text, 'b' bool, '4' int4, '8' int8, 'T' timestamptz;
 * None is NULL in any column. The bytes are those psycopg's Copy.write_row would send with
 * set_types() of the same types. */

typedef struct {
    PyObject *bytes;
    char *data;
    Py_ssize_t length;
    Py_ssize_t capacity;
} Out;

static int
out_reserve(Out *out, Py_ssize_t more)
{
    if (out->length + more <= out->capacity)
        return 0;
    Py_ssize_t capacity = out->capacity * 2;
    if (capacity < out->length + more)
        capacity = out->length + more;
    if (_PyBytes_Resize(&out->bytes, capacity) < 0)
        return -1;
    out->data = PyBytes_AS_STRING(out->bytes);
    out->capacity = capacity;
    return 0;
}

static void
put_be(Out *out, uint64_t value, int size)
{
    for (int i = size - 1; i >= 0; i--)
        out->data[out->length++] = (char)((value >> (8 * i)) & 0xff);
}

/* Days from 1970-01-01 to the civil date (proleptic Gregorian): Howard Hinnant's
 * days_from_civil, https://howardhinnant.github.io/date_algorithms.html#days_from_civil */
static long long
days_from_civil(long long y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const long long era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (long long)doe - 719468;
}

#define PG_EPOCH_DAYS 10957 /* 2000-01-01, PostgreSQL's epoch, in days from 1970-01-01 */

/* Microseconds from PostgreSQL's epoch (2000-01-01 00:00 UTC) to an aware datetime. */
static int
pg_timestamptz(PyObject *value, long long *out)
{
    long long days = days_from_civil(PyDateTime_GET_YEAR(value), PyDateTime_GET_MONTH(value),
                                     PyDateTime_GET_DAY(value)) - PG_EPOCH_DAYS;
    long long micros = ((days * 24 + PyDateTime_DATE_GET_HOUR(value)) * 60 + PyDateTime_DATE_GET_MINUTE(value)) *
                           60000000LL +
                       PyDateTime_DATE_GET_SECOND(value) * 1000000LL + PyDateTime_DATE_GET_MICROSECOND(value);
    PyObject *tzinfo = PyDateTime_DATE_GET_TZINFO(value);
    if (tzinfo == PyDateTime_TimeZone_UTC) {
        *out = micros;
        return 0;
    }
    if (tzinfo == Py_None) {
        PyErr_SetString(PyExc_ValueError, "a timestamptz column needs an aware datetime");
        return -1;
    }
    PyObject *offset = PyObject_CallMethod(value, "utcoffset", NULL);
    if (offset == NULL)
        return -1;
    if (!PyDelta_Check(offset)) {
        Py_DECREF(offset);
        PyErr_SetString(PyExc_ValueError, "a timestamptz column needs an aware datetime");
        return -1;
    }
    micros -= (PyDateTime_DELTA_GET_DAYS(offset) * 86400LL + PyDateTime_DELTA_GET_SECONDS(offset)) * 1000000LL +
              PyDateTime_DELTA_GET_MICROSECONDS(offset);
    Py_DECREF(offset);
    *out = micros;
    return 0;
}

static int
put_field(Out *out, char kind, PyObject *value, Py_ssize_t column)
{
    if (value == Py_None) {
        if (out_reserve(out, 4) < 0)
            return -1;
        put_be(out, 0xffffffffu, 4);
        return 0;
    }
    switch (kind) {
    case 't':
    case 'j': {
        if (!PyUnicode_Check(value))
            break;
        Py_ssize_t size;
        const char *text = PyUnicode_AsUTF8AndSize(value, &size);
        if (text == NULL)
            return -1;
        Py_ssize_t total = size + (kind == 'j');
        if (total > INT32_MAX) {
            PyErr_Format(PyExc_ValueError, "column %zd: a value over 2 GiB", column);
            return -1;
        }
        if (out_reserve(out, 4 + total) < 0)
            return -1;
        put_be(out, (uint64_t)total, 4);
        if (kind == 'j')
            out->data[out->length++] = 1; /* jsonb's binary format: version 1, then the text */
        memcpy(out->data + out->length, text, size);
        out->length += size;
        return 0;
    }
    case 'b':
        if (!PyBool_Check(value))
            break;
        if (out_reserve(out, 5) < 0)
            return -1;
        put_be(out, 1, 4);
        out->data[out->length++] = value == Py_True;
        return 0;
    case '4':
    case '8': {
        if (!PyLong_Check(value) || PyBool_Check(value))
            break;
        long long number = PyLong_AsLongLong(value);
        if (number == -1 && PyErr_Occurred())
            return -1;
        int size = kind == '4' ? 4 : 8;
        if (size == 4 && (number < INT32_MIN || number > INT32_MAX)) {
            PyErr_Format(PyExc_OverflowError, "column %zd: %lld does not fit in int4", column, number);
            return -1;
        }
        if (out_reserve(out, 4 + size) < 0)
            return -1;
        put_be(out, (uint64_t)size, 4);
        put_be(out, (uint64_t)number, size);
        return 0;
    }
    case 'T': {
        if (!PyDateTime_Check(value))
            break;
        long long micros;
        if (pg_timestamptz(value, &micros) < 0)
            return -1;
        if (out_reserve(out, 12) < 0)
            return -1;
        put_be(out, 8, 4);
        put_be(out, (uint64_t)micros, 8);
        return 0;
    }
    default:
        PyErr_Format(PyExc_ValueError, "column %zd: unknown column kind %c", column, kind);
        return -1;
    }
    PyErr_Format(PyExc_TypeError, "column %zd (kind %c): cannot store a %s", column, kind,
                 Py_TYPE(value)->tp_name);
    return -1;
}

static const char SIGNATURE[] = "PGCOPY\n\377\r\n\0\0\0\0\0\0\0\0\0"; /* with flags and extension length */
#define SIGNATURE_LENGTH 19

static PyObject *
copy_binary(PyObject *module, PyObject *args)
{
    PyObject *rows;
    const char *kinds;
    Py_ssize_t columns;
    if (!PyArg_ParseTuple(args, "O!y#:copy_binary", &PyList_Type, &rows, &kinds, &columns))
        return NULL;
    if (columns > INT16_MAX) {
        PyErr_SetString(PyExc_ValueError, "too many columns");
        return NULL;
    }
    Py_ssize_t count = PyList_GET_SIZE(rows);
    Out out = {NULL, NULL, 0, SIGNATURE_LENGTH + 2 + count * (2 + columns * 12)};
    out.bytes = PyBytes_FromStringAndSize(NULL, out.capacity);
    if (out.bytes == NULL)
        return NULL;
    out.data = PyBytes_AS_STRING(out.bytes);
    memcpy(out.data, SIGNATURE, SIGNATURE_LENGTH);
    out.length = SIGNATURE_LENGTH;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *row = PyList_GET_ITEM(rows, i);
        if (!PyTuple_Check(row) || PyTuple_GET_SIZE(row) != columns) {
            PyErr_Format(PyExc_TypeError, "row %zd: a tuple of %zd values expected", i, columns);
            goto error;
        }
        if (out_reserve(&out, 2) < 0)
            goto error;
        put_be(&out, (uint64_t)columns, 2);
        for (Py_ssize_t column = 0; column < columns; column++) {
            if (put_field(&out, kinds[column], PyTuple_GET_ITEM(row, column), column) < 0)
                goto error;
        }
    }
    if (out_reserve(&out, 2) < 0)
        goto error;
    put_be(&out, 0xffff, 2); /* the trailer: a field count of -1 */
    if (_PyBytes_Resize(&out.bytes, out.length) < 0)
        return NULL;
    return out.bytes;

error:
    Py_XDECREF(out.bytes);
    return NULL;
}

static PyMethodDef methods[] = {
    {"layout", layout, METH_VARARGS, "Where tally finds and puts each rollup figure."},
    {"tally", tally, METH_VARARGS, "Add a group's rows to its rollup figures."},
    {"sort_rows", sort_rows, METH_VARARGS, "Rows in (request_id, environment_id or 0) order, in place."},
    {"group_rows", group_rows, METH_VARARGS, "Stored rows by their rollup key."},
    {"parse_records", parse_records, METH_VARARGS, "Each record's CallInput, the rejected ones' errors, the flag states."},
    {"rows_of", rows_of, METH_VARARGS, "The ingest loop: each new call's CallRow, and the duplicates."},
    {"copy_binary", copy_binary, METH_VARARGS, "Rows in PostgreSQL's binary COPY format."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT, "telemetry._speedups", "Telemetry ingest's per-call loop and COPY rows, in C.",
    -1, methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyDateTime_IMPORT;
    if (PyDateTimeAPI == NULL)
        return NULL;
    if ((empty_text = PyUnicode_FromString("")) == NULL || (zero = PyLong_FromLong(0)) == NULL)
        return NULL;
    if ((rollup.counters_name = PyUnicode_InternFromString("counters")) == NULL ||
        (rollup.cost_sq_name = PyUnicode_InternFromString("cost_sq")) == NULL ||
        (rollup.histogram_name = PyUnicode_InternFromString("histogram")) == NULL ||
        (rollup.counts_name = PyUnicode_InternFromString("counts")) == NULL)
        return NULL;
    for (int name = 0; name < A_COUNT; name++) {
        if (attribute_names[name] == NULL &&
            (attribute_names[name] = PyUnicode_InternFromString(ATTRIBUTE_NAMES[name])) == NULL)
            return NULL;
    }
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    PyObject *call_fields = names_tuple(CALL_FIELDS);
    if (PyModule_AddObject(module, "CALL_FIELDS", call_fields) < 0) {
        Py_XDECREF(call_fields);
        Py_DECREF(module);
        return NULL;
    }
    PyObject *row_fields = names_tuple(ROW_FIELDS);
    if (PyModule_AddObject(module, "ROW_FIELDS", row_fields) < 0) {
        Py_XDECREF(row_fields);
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
