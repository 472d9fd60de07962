/* nnc_model.h: the C ABI of a model compiled by `nnc build --emit obj`.
 *
 * The object file holds the model's inference code, compiled ahead of time
 * by nnc, its trained weights, and this runtime. Link it with a C compiler:
 *
 *     cc -O2 app.c model.o -lm -pthread -o app
 *
 * A model takes samples of its inputs (one per field of the dataset it
 * reads; their shapes and element types below) and returns, per sample, its output (any shape) and what the
 * experiment's loss says it means: for class scores each class's
 * probability and the most likely class, for a binary output each value's
 * probability and 0/1, for anything else the values. Calls never read or write outside the buffers they are
 * given, sized as documented. A model instance is not thread-safe: create
 * one per thread. Every function below besides nnc_create/nnc_destroy/
 * nnc_predict* is a pure query of constants.
 *
 * Threads: a call with at least two of the model's biggest batches per
 * thread is split across threads, each on its own buffers; the results are
 * the same for any thread count. The count is the NNC_THREADS environment
 * variable when nnc_create runs, else every online core. Link with -pthread
 * (a no-op on current glibc).
 *
 * Symbols: every public name starts with `nnc_`, so one program can link
 * one model.
 */
#ifndef NNC_MODEL_H
#define NNC_MODEL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct nnc_model nnc_model;

/* Return codes. */
enum {
    NNC_OK = 0,
    NNC_E_NOMEM = -1, /* out of memory */
    NNC_E_VALUE = -2, /* an input value the model's input type cannot hold */
    NNC_E_ARG = -3    /* a NULL model or input, or a one-input call to a model of several */
};

/* Element types of the model's inputs (nnc_input_dtype_of). */
enum { NNC_F32 = 0, NNC_I32 = 1, NNC_U8 = 2, NNC_BOOL = 3 };

/* What the model's output means (nnc_output_kind), from the experiment's
 * loss: cross_entropy, bce_with_logits, bce, anything else. */
enum { NNC_CLASS_SCORES = 0, NNC_BINARY_LOGITS = 1, NNC_PROBABILITIES = 2, NNC_VALUES = 3 };

/* A model with its buffers allocated; NULL when out of memory. */
nnc_model *nnc_create(void);
void nnc_destroy(nnc_model *m);

/* The model's inputs: nnc_inputs() of them, in the order the dataset
 * declares its fields, each named after its field. Input `i` of one
 * sample: nnc_input_size_of(i) elements, row-major, of shape
 * nnc_input_dim_of(i, 0) x ... x nnc_input_dim_of(i, nnc_input_rank_of(i) - 1)
 * (rank 0: one value). Out of range: NULL, 0 or -1. */
size_t nnc_inputs(void);
const char *nnc_input_name(size_t i);
size_t nnc_input_size_of(size_t i);
size_t nnc_input_rank_of(size_t i);
size_t nnc_input_dim_of(size_t i, size_t axis);
int nnc_input_dtype_of(size_t i);
/* The same of input 0: the one input of most models. */
size_t nnc_input_size(void);
size_t nnc_input_rank(void);
size_t nnc_input_dim(size_t axis); /* 0 for an axis >= the rank */
int nnc_input_dtype(void);
/* The output of one sample: nnc_output_size() floats, row-major, of shape
 * nnc_output_dim(0) x ... (the model's output without its batch axis). */
size_t nnc_output_size(void);
size_t nnc_output_rank(void);
size_t nnc_output_dim(size_t axis); /* 0 for an axis >= the rank */
int nnc_output_kind(void);
/* Classes of each score vector (the last axis of class scores; 2 for a
 * binary output). */
size_t nnc_classes(void);
/* Classes each sample gets: one per score vector of class scores
 * (nnc_output_size() / nnc_classes()), one per value of a binary output,
 * 0 for NNC_VALUES. */
size_t nnc_positions(void);
/* Probabilities each sample gets: the softmax of its one score vector,
 * the sigmoid of binary logits, a bce model's own output; else 0. */
size_t nnc_probs_size(void);
/* The name of class `i` when the training data named its classes (a CSV
 * label column of names), else NULL. */
const char *nnc_class_name(size_t i);

/* The index of the first of `count` values that the type of input `i`
 * cannot hold (NaN or infinite; for integer types also fractional or out
 * of range, e.g. outside 0..255 for NNC_U8), or -1 when all are valid.
 * nnc_check: of input 0. For an input `i` the model has not, 0 (when
 * count > 0). */
long long nnc_check_of(size_t i, const float *x, size_t count);
long long nnc_check(const float *x, size_t count);

/* Predicts `n` samples of a one-input model (a model of several takes
 * nnc_predict_inputs). `x`: n * nnc_input_size() values, converted to the
 * input type (checked first: NNC_E_VALUE, and nothing written, when
 * nnc_check finds a bad value). `probs` (n * nnc_probs_size() floats) and
 * `classes` (n * nnc_positions() ints; the first largest score, or 1 for a
 * binary value above even odds) may each be NULL. Returns NNC_OK or an
 * error code. */
int nnc_predict(nnc_model *m, const float *x, size_t n, float *probs, int32_t *classes);

/* As nnc_predict, also writing the model's output as it is to `output`
 * (n * nnc_output_size() floats; may be NULL). */
int nnc_predict_output(nnc_model *m, const float *x, size_t n, float *output, float *probs, int32_t *classes);

/* As nnc_predict, with `x` already in the input type (nnc_input_dtype):
 * e.g. the bytes of n 28x28 images for NNC_U8; no conversion, no copy
 * beyond the model's own buffers. NNC_BOOL values must be 0 or 1. */
int nnc_predict_raw(nnc_model *m, const void *x, size_t n, float *probs, int32_t *classes);
int nnc_predict_raw_output(nnc_model *m, const void *x, size_t n, float *output, float *probs, int32_t *classes);

/* A model of several inputs: `x[i]` holds input i of the n samples
 * (n * nnc_input_size_of(i) values), as floats (nnc_predict_inputs, each
 * checked as nnc_predict's) or already in the input's type
 * (nnc_predict_raw_inputs, as nnc_predict_raw's). Any number of inputs,
 * one included. */
int nnc_predict_inputs(nnc_model *m, const float *const *x, size_t n, float *output, float *probs, int32_t *classes);
int nnc_predict_raw_inputs(nnc_model *m, const void *const *x, size_t n, float *output, float *probs,
                           int32_t *classes);

/* A message for a return code. */
const char *nnc_strerror(int code);

#ifdef __cplusplus
}
#endif

#endif
