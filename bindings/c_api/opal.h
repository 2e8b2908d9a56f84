/* Opal's C ABI: build an optimizer from a spec, hand it parameters, step it, checkpoint it.
 *
 * Every function returns an opal_status. After a failing call, opal_last_error() gives a
 * message for people (for a bad spec: the rendered diagnostics, file:line:col with a caret);
 * it belongs to the calling thread and stays valid until that thread's next failing call.
 * No C++ exception crosses this interface, and a failing call changes nothing.
 *
 * Lifecycle: opal_create, then opal_add_param for every parameter, then opal_step as often as
 * needed. The parameter list is fixed by the first call that needs it (step, save, load, state,
 * route); adding a parameter after that is OPAL_ERROR_STATE. One optimizer must not be used
 * from two threads at once (a second concurrent opal_step is refused with OPAL_ERROR_ARGUMENT
 * and changes nothing); different optimizers may. Two parameters whose memory overlaps are
 * OPAL_ERROR_ARGUMENT at the first step.
 */
#ifndef OPAL_H
#define OPAL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define OPAL_API __attribute__((visibility("default")))
#else
#define OPAL_API
#endif

#define OPAL_ABI_VERSION 1

typedef enum opal_status {
  OPAL_OK = 0,
  OPAL_ERROR_SPEC = 1,        /* the spec does not compile; the message has the diagnostics */
  OPAL_ERROR_ARGUMENT = 2,    /* a bad argument: null pointer, bad shape, duplicate name, no route */
  OPAL_ERROR_NOT_FOUND = 3,   /* no such parameter, state slot or hyperparameter */
  OPAL_ERROR_IO = 4,          /* a file that cannot be read or written */
  OPAL_ERROR_CHECKPOINT = 5,  /* a checkpoint that is corrupt or does not fit this optimizer */
  OPAL_ERROR_UNSUPPORTED = 6, /* a dtype or device this build cannot step */
  OPAL_ERROR_STATE = 7,       /* a call out of order (a parameter added after the first step) */
  OPAL_ERROR_INTERNAL = 8,    /* a bug in Opal: please report it with the message */
  OPAL_ERROR_NONFINITE = 9    /* a NaN or Inf under the "raise" policy; the step was undone */
} opal_status;

typedef enum opal_dtype { OPAL_F32 = 0, OPAL_F16 = 1, OPAL_BF16 = 2, OPAL_F64 = 3 } opal_dtype;
typedef enum opal_device { OPAL_CPU = 0, OPAL_CUDA = 1 } opal_device;

/* opal_save flags */
#define OPAL_SAVE_PARAMS 1u /* also store the parameters' values (restored by opal_load) */

typedef struct opal_optimizer opal_optimizer;

OPAL_API const char* opal_version(void);
OPAL_API int opal_abi_version(void);
OPAL_API const char* opal_last_error(void);
OPAL_API const char* opal_status_name(opal_status status);

/* `spec` is a stdlib optimizer's name ("adamw"), a path to a .opal file, or spec text.
 * `optimizer` picks one optimizer of a file that defines several; NULL for the only one. */
OPAL_API opal_status opal_create(const char* spec, const char* optimizer, opal_optimizer** out);
/* The same with the state's storage given as an argument, as a route's `state(...)` says it:
 * "q8", "q8(128)", "bf16", "bf16, stochastic", "f32, master". It stores every route whose spec
 * says none; NULL or "" keeps the spec's. A bad text is OPAL_ERROR_SPEC. */
OPAL_API opal_status opal_create_stored(const char* spec, const char* optimizer, const char* state, opal_optimizer** out);
OPAL_API void opal_destroy(opal_optimizer* opt);

/* A parameter: its name (routes match it, checkpoints key by it), its shape (ndim 0 for a
 * scalar; trailing dimensions past the first are flattened for matrix work), dtype and device
 * of its memory, and pointers to its values and gradient. A NULL pointer makes the optimizer
 * own zeroed memory, reachable with opal_param_data (CPU, f32 only). OPAL_F32, OPAL_BF16 and
 * OPAL_F16 are stepped in place (the gradient in the same dtype, unless opal_bind_grad says
 * otherwise; arithmetic is f32 in registers, the parameter's store rounds: opal_set_rounding), on
 * OPAL_CPU (host pointers) or OPAL_CUDA (device pointers: the optimizer runs on the device they
 * point into, e.g. cuda:LOCAL_RANK, found from the pointers; every parameter of one optimizer on
 * the same device). Calls never leave the caller's current CUDA device changed. OPAL_F64,
 * CUDA where this build has no CUDA backend or the machine no device, or host memory given as
 * OPAL_CUDA, is OPAL_ERROR_UNSUPPORTED with the reason. */
OPAL_API opal_status opal_add_param(opal_optimizer* opt, const char* name, int ndim, const int64_t* shape, opal_dtype dtype, opal_device device,
                                    void* data, void* grad);
/* What a parameter added by opal_add_param is in its model, for specs that route by role
 * (`embedding, head: adamw(...)`): "embedding", "head" (the output projection), "norm", "bias",
 * "conv", or "" for none (the default). Call it before the first call that uses the parameter
 * list. An unknown role is OPAL_ERROR_ARGUMENT, an unknown parameter OPAL_ERROR_NOT_FOUND, a
 * call after the list was fixed OPAL_ERROR_STATE; each changes nothing. */
OPAL_API opal_status opal_set_param_role(opal_optimizer* opt, const char* name, const char* role);
/* Points a parameter at new memory (a host that reallocates its gradients). A NULL `grad`
 * leaves the parameter out of the following steps until a gradient is bound again. */
OPAL_API opal_status opal_bind_param(opal_optimizer* opt, const char* name, void* data, void* grad);
/* Points a parameter's gradient at new memory holding `dtype` elements (OPAL_F32, OPAL_BF16,
 * OPAL_F16; any combination with the parameter's dtype): a trainer that accumulates gradients in
 * f32 for a bf16 model. NULL leaves the parameter out of the following steps. */
OPAL_API opal_status opal_bind_grad(opal_optimizer* opt, const char* name, void* grad, opal_dtype dtype);
/* How 16-bit parameter writes round: "nearest" (to nearest even, the default) or "stochastic"
 * (bf16: up with probability equal to the fraction cut off, from bits keyed by seed, step,
 * parameter name and element: reproducible, and the same on every backend). Weight decay and
 * small updates below bf16's resolution vanish rounded to nearest and survive stochastically.
 * `seed` also keys the noise of specs that use randn. Any time; an unknown mode is
 * OPAL_ERROR_ARGUMENT. */
OPAL_API opal_status opal_set_rounding(opal_optimizer* opt, const char* mode, uint64_t seed);
/* Nonzero: every bf16 and f16 parameter gets an f32 master copy (state slot "master"): the
 * optimizer steps the copy and stores it, rounded, into the parameter, so that updates below
 * the parameter's resolution accumulate. Before the first call that uses the parameter list
 * (after it: OPAL_ERROR_STATE). The copy is taken from the parameter's memory at that first
 * call; a parameter written by the caller after it (weights loaded, a layer reset) needs its copy
 * written too (opal_write_state(opt, name, "master", ...)), or the next step stores the old copy
 * over it. */
OPAL_API opal_status opal_set_master_weights(opal_optimizer* opt, int on);
/* A parameter sharded by rows across processes (FSDP's dim-0 shards): the one added as `name`
 * holds indices [row, row + shape[0]) of dim 0 of a parameter whose whole shape is `whole_shape`
 * (as many dims as added; only dim 0 may differ). `owner` nonzero on the one process that steps
 * the parameter's whole matrix where its route needs it (Newton-Schulz, bases, factored
 * statistics). Such an optimizer steps with opal_step_phase, not opal_step. Before the list is
 * fixed (after: OPAL_ERROR_STATE); a bad shard is OPAL_ERROR_ARGUMENT naming it. */
OPAL_API opal_status opal_set_param_shard(opal_optimizer* opt, const char* name, const int64_t* whole_shape, int64_t row, int owner);
/* The phases of a step with sharded parameters, in order (passed as int: another value is
 * OPAL_ERROR_ARGUMENT). Between them the host moves each sharded parameter's exchanges: after
 * LOCAL, every process's `local` bytes into the owner's `whole` at byte row * unit_bytes (a
 * gather); after WHOLE, the owner's `whole` back: each process its rows from row * unit_bytes
 * (`split`), or all of it (not split: a broadcast). A phase out of order is OPAL_ERROR_ARGUMENT
 * and changes nothing. */
typedef enum opal_phase { OPAL_PHASE_LOCAL = 0, OPAL_PHASE_WHOLE = 1, OPAL_PHASE_FINISH = 2 } opal_phase;
typedef struct opal_exchange {
  unsigned buffer; /* 0 the parameter, 1 its gradient, then scratch of the route */
  int split;
  void* local;
  size_t local_bytes;
  void* whole; /* NULL except on the owner */
  size_t whole_bytes;
  size_t unit_bytes; /* bytes per index of dim 0 (split) */
} opal_exchange;
OPAL_API opal_status opal_step_phase(opal_optimizer* opt, int phase, void* stream);
OPAL_API opal_status opal_num_exchanges(opal_optimizer* opt, const char* param, int after, size_t* out);
OPAL_API opal_status opal_get_exchange(opal_optimizer* opt, const char* param, int after, size_t index, opal_exchange* out);

/* f32 parameters only (another dtype is OPAL_ERROR_ARGUMENT naming it). */
OPAL_API opal_status opal_param_data(opal_optimizer* opt, const char* name, float** data, float** grad, int64_t* numel);

/* One update of every parameter from its gradient. For CUDA parameters the step is queued on
 * `stream` (a cudaStream_t; NULL: Opal's own) and the call returns before it has run; it must
 * be NULL for CPU ones (else OPAL_ERROR_UNSUPPORTED). */
OPAL_API opal_status opal_step(opal_optimizer* opt, void* stream);
OPAL_API opal_status opal_step_count(opal_optimizer* opt, int64_t* out);
/* A parameter's own step count: the steps it took part in (a parameter without a gradient sits
 * a step out and its count stays), as torch counts per parameter. Its bias corrections and
 * schedules use it. */
OPAL_API opal_status opal_param_step_count(opal_optimizer* opt, const char* param, int64_t* out);

/* NaN/Inf handling: "off" (default), "raise" (opal_step undoes the step and returns
 * OPAL_ERROR_NONFINITE naming the parameter and the stage), "skip" (the step is undone for every
 * parameter and counted in opal_skipped_steps), "zero" (the offending gradient is zeroed and that
 * parameter steps with it). The checks are fused into the kernels; "off" runs none. */
OPAL_API opal_status opal_set_nonfinite(opal_optimizer* opt, const char* policy);
OPAL_API opal_status opal_skipped_steps(opal_optimizer* opt, int64_t* out);
/* Puts the last step back, as "skip" does (every parameter that stepped, its state, the step
 * counts; under "skip" counted in opal_skipped_steps): for a host that learns after the step that the whole
 * step must go, e.g. another process met a NaN. Only the last step, taken under a policy other
 * than "off", and only until a parameter, state or count is written: otherwise
 * OPAL_ERROR_ARGUMENT, changing nothing. */
OPAL_API opal_status opal_undo_step(opal_optimizer* opt);

/* Update statistics (the seed paper's Figure 1), off by default: on (`on` non-zero), each step
 * records per parameter the update's RMS and, for a matrix, its largest singular value over
 * their mean. It copies every parameter to the host before and after the step and runs an SVD
 * there: for studies, not for speed. Refused with parameters sharded by rows. */
OPAL_API opal_status opal_set_diagnostics(opal_optimizer* opt, int on);
/* The last step's statistics as JSON lines, one object per parameter: {"param", "step",
 * "update_rms", and for a matrix "sv_max", "sv_mean", "sv_ratio"}. Empty
 * when diagnostics are off, or before a step; a step taken with them off clears them. Valid
 * until the next call of this function on `opt`. */
OPAL_API opal_status opal_update_stats(opal_optimizer* opt, const char** json);

/* Hyperparameters are run-time values: setting one never recompiles. A value that is not finite,
 * lies outside float32's range or outside a range the spec declares (`beta = 0.9 in [0, 1)`: the
 * message names it) is OPAL_ERROR_ARGUMENT and changes nothing. */
OPAL_API opal_status opal_set_hparam(opal_optimizer* opt, const char* name, double value);
OPAL_API opal_status opal_get_hparam(opal_optimizer* opt, const char* name, double* out);
OPAL_API opal_status opal_num_hparams(opal_optimizer* opt, size_t* out);
OPAL_API opal_status opal_hparam_name(opal_optimizer* opt, size_t index, const char** out);

/* Checkpoints (safetensors; state keyed by parameter and slot name). Saving is atomic. Loading
 * validates the whole file first; on error nothing changes. `report` (may be NULL) receives a
 * sentence saying what was restored and, after a spec change, what was initialized or dropped;
 * it stays valid until the next call on `opt`. */
OPAL_API opal_status opal_save(opal_optimizer* opt, const char* path, unsigned flags);
OPAL_API opal_status opal_load(opal_optimizer* opt, const char* path, const char** report);

/* State slots of a parameter ("momentum.m", "adapt.v"), their memory and shape (at most 8
 * dimensions). Strings returned stay valid until the optimizer is destroyed. opal_state views
 * an f32 slot's host memory; a slot stored otherwise (bf16, q8) is OPAL_ERROR_ARGUMENT. */
OPAL_API opal_status opal_num_slots(opal_optimizer* opt, const char* param, size_t* out);
OPAL_API opal_status opal_slot_name(opal_optimizer* opt, const char* param, size_t index, const char** out);
OPAL_API opal_status opal_state(opal_optimizer* opt, const char* param, const char* slot, float** data, int64_t* numel);
OPAL_API opal_status opal_state_shape(opal_optimizer* opt, const char* param, const char* slot, int* ndim, int64_t shape[8]);
/* A slot's values as f32, copied whatever its storage and backend: bf16 widened, a q8 slot
 * dequantized with its scales (its scales slot, "<slot>.absmax", reads as the scales). `count`
 * must be the slot's element count (the product of opal_state_shape's), else
 * OPAL_ERROR_ARGUMENT. opal_write_state sets a slot from f32 values, rounded to nearest for bf16
 * and quantized for q8 (its scales written too); a q8 scales slot takes the scales as given. */
OPAL_API opal_status opal_read_state(opal_optimizer* opt, const char* param, const char* slot, float* out, int64_t count);
OPAL_API opal_status opal_write_state(opal_optimizer* opt, const char* param, const char* slot, const float* values, int64_t count);
/* The route a parameter took ("matrix", "other>vector"). */
OPAL_API opal_status opal_route(opal_optimizer* opt, const char* param, const char** out);

#ifdef __cplusplus
}
#endif

#endif /* OPAL_H */
